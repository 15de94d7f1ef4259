"""`embridge import`: a user's own embeddings into an embedding table (no pickles, ever)."""

import click
from embridge.stages.options import echo


@click.command("import")
@click.option("--modality", required=True, help="Modality name of these embeddings (e.g. audio, image, depth).")
@click.option("--embeddings", required=True, help="FILE[:KEY] with an (n, d) array: .npy, .npz:ARRAY, .parquet:COLUMN, .safetensors:TENSOR; "
              "or a folder or glob of shards (clip-retrieval's img_emb/img_emb_<i>.npy, Parquet), read in order, streaming.")
@click.option("--metadata", default=None, help="Shards: folder or glob of metadata_<i>.parquet (default: the sibling metadata/ of clip-retrieval's layout).")
@click.option("--embeddings-column", default=None, help="Shards: the vector column of Parquet shards (default: embedding).")
@click.option("--id-column", default=None, help="Shards: metadata column with a unique id per row (e.g. image_path).")
@click.option("--label-column", default=None, help="Shards: metadata column with a class index or name per row.")
@click.option("--pair-id-column", default=None, help="Shards: metadata column with a pair id per row (equal ids across modalities are true pairs).")
@click.option("--split-column", default=None, help="Shards: metadata column with train/val/test per row (else --test-fraction).")
@click.option("--labels", default=None, help="FILE[:KEY] with one class index or class name per row (.npy/.npz/.parquet/.safetensors/.txt/.csv).")
@click.option("--class-names", default=None, type=click.Path(), help="Text file with one class name per line: integer label c is the c-th name; string labels are matched by name.")
@click.option("--ids", default=None, help="FILE[:KEY] with one unique id per row (default: <modality>-<row>).")
@click.option("--pair-ids", default=None, help="FILE[:KEY] with a pair id per row (empty = unpaired); equal ids across modalities are true pairs.")
@click.option("--split", default=None, help="FILE[:KEY] with 'train', 'val' or 'test' per row (else --test-fraction).")
@click.option("--test-fraction", default=0.2, show_default=True, help="Share of rows put in test (stratified by label when labels exist).")
@click.option("--val-fraction", default=0.0, show_default=True, help="Share of rows put in val (for choosing a method's settings), when there is no --split.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the train/test split.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True, help="Storage dtype.")
@click.option("--encoder", default="imported", show_default=True, help="Name of the model that made the embeddings (recorded in the manifest).")
@click.option("--out", required=True, type=click.Path(), help="Output table folder, e.g. features/audio (replaced whole once the new table is complete).")
@click.option("--overwrite", is_flag=True, help="Replace an --out folder that holds files embridge did not write there (they are deleted).")
def cli(**kw):
    """Turn your own embeddings (ImageBind, LanguageBind, CLIP, ...) into an embedding table.

    Every row is checked (NaN/Inf, zero vectors, duplicate ids, lengths of the label/id/split
    files) before anything is written.
    """
    from embridge.store.importer import ImportSpec, import_embeddings

    m = import_embeddings(ImportSpec(**kw))
    echo(f"wrote {kw['out']}: {m.modality}, {m.num_rows} rows x {m.dim} ({m.dtype})")
