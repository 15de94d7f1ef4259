"""`embridge import`: a user's own embeddings into an embedding table (no pickles, ever)."""

import click


@click.command("import")
@click.option("--modality", required=True, help="Modality name of these embeddings (e.g. audio, image, depth).")
@click.option("--embeddings", required=True, help="FILE[:KEY] with an (n, d) array: .npy, .npz:ARRAY, .parquet:COLUMN, .safetensors:TENSOR.")
@click.option("--labels", default=None, help="FILE[:KEY] with one class index or class name per row (.npy/.npz/.parquet/.safetensors/.txt/.csv).")
@click.option("--class-names", default=None, type=click.Path(), help="Text file with one class name per line, for integer labels.")
@click.option("--ids", default=None, help="FILE[:KEY] with one unique id per row (default: <modality>-<row>).")
@click.option("--pair-ids", default=None, help="FILE[:KEY] with a pair id per row (empty = unpaired); equal ids across modalities are true pairs.")
@click.option("--split", default=None, help="FILE[:KEY] with 'train', 'val' or 'test' per row (else --test-fraction).")
@click.option("--test-fraction", default=0.2, show_default=True, help="Share of rows put in test (stratified by label when labels exist).")
@click.option("--val-fraction", default=0.0, show_default=True, help="Share of rows put in val (for choosing a method's settings), when there is no --split.")
@click.option("--seed", default=0, show_default=True, help="Seed of the train/test split.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True, help="Storage dtype.")
@click.option("--encoder", default="imported", show_default=True, help="Name of the model that made the embeddings (recorded in the manifest).")
@click.option("--out", required=True, type=click.Path(), help="Output table folder, e.g. features/audio.")
def cli(**kw):
    """Turn your own embeddings (ImageBind, LanguageBind, CLIP, ...) into an embedding table.

    Every row is checked (NaN/Inf, zero vectors, duplicate ids, lengths of the label/id/split
    files) before anything is written.
    """
    from embridge.store.importer import ImportSpec, import_embeddings

    m = import_embeddings(ImportSpec(**kw))
    click.echo(f"wrote {kw['out']}: {m.modality}, {m.num_rows} rows x {m.dim} ({m.dtype})")
