"""`embridge import` on clip-retrieval's output: a folder or glob of img_emb_<i>.npy shards with
metadata/metadata_<i>.parquet, in shard-number order, streaming; embedding-reader's Parquet shards."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from embridge.errors import InputError
from embridge.stages.cli import cli
from embridge.store import MANIFEST, TableWriter, read_table
from embridge.store import shards as shards_mod
from embridge.store.importer import ImportSpec, import_embeddings

SIZES = [5, 9, 3, 7, 4, 6, 8, 2, 5, 7, 3, 6]  # 12 shards: img_emb_10 and _11 must come after img_emb_9


def clip_retrieval_output(root, d=16, seed=0):
    """Write clip-retrieval's clip_inference layout; return the rows in order (X, image paths, labels)."""
    rng = np.random.default_rng(seed)
    (root / "img_emb").mkdir(parents=True)
    (root / "metadata").mkdir()
    Xs, paths, labels = [], [], []
    for i, n in enumerate(SIZES):
        X = rng.standard_normal((n, d)).astype(np.float16)  # clip-retrieval writes float16
        np.save(root / "img_emb" / f"img_emb_{i}.npy", X)
        p = [f"images/{i:03d}_{j}.jpg" for j in range(n)]
        lab = [f"class{(7 * i + j) % 4}" for j in range(n)]
        pq.write_table(pa.table({"image_path": p, "caption": [f"a photo {x}" for x in p], "label": lab}),
                       root / "metadata" / f"metadata_{i}.parquet")
        Xs.append(X)
        paths += p
        labels += lab
    return np.concatenate(Xs).astype(np.float32), paths, labels


@pytest.mark.parametrize("form", ["folder", "glob"])
def test_clip_retrieval_folder_in_shard_order(tmp_path, form):
    X, paths, labels = clip_retrieval_output(tmp_path / "out")
    emb = str(tmp_path / "out" / "img_emb") if form == "folder" else str(tmp_path / "out" / "img_emb" / "img_emb_*.npy")
    res = CliRunner().invoke(cli, ["import", "--modality", "image", "--embeddings", emb, "--id-column", "image_path",
                                   "--label-column", "label", "--pair-id-column", "image_path",
                                   "--out", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    t = read_table(tmp_path / "t")
    assert t.meta["id"].to_list() == paths  # every row, in the order of the shard numbers
    np.testing.assert_array_equal(t.X, X)
    names = sorted(set(labels))
    assert [names[i] for i in t.labels] == labels and t.manifest.class_names == names
    assert t.meta["pair_id"].to_list() == paths
    assert set(t.meta["split"].to_list()) == {"train", "test"}


def test_streams_in_bounded_chunks(tmp_path, monkeypatch):
    X, paths, _ = clip_retrieval_output(tmp_path / "out")
    monkeypatch.setattr(shards_mod, "CHUNK_ROWS", 4)
    seen, loads = [], []
    real_write, real_load = TableWriter.write, np.load

    def write(self, ids, split, Xc, **kw):
        seen.append(len(Xc))
        return real_write(self, ids, split, Xc, **kw)

    def load(path, *a, **kw):
        loads.append(kw.get("mmap_mode"))
        return real_load(path, *a, **kw)

    monkeypatch.setattr(TableWriter, "write", write)
    monkeypatch.setattr(shards_mod.np, "load", load)
    import_embeddings(ImportSpec(modality="image", embeddings=str(tmp_path / "out" / "img_emb"), out=str(tmp_path / "t"),
                                 id_column="image_path"))
    assert max(seen) <= 4 and sum(seen) == len(X)  # never more than a chunk converted at once
    assert loads and set(loads) == {"r"}  # shards are memory-mapped, not read whole
    np.testing.assert_array_equal(read_table(tmp_path / "t").X, X)


def test_embedding_reader_parquet_shards(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "emb").mkdir()
    rows = []
    for i, n in enumerate([4, 6, 5]):
        X = rng.standard_normal((n, 8)).astype(np.float32)
        ids = [f"s{i}-{j}" for j in range(n)]
        emb = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), 8)
        pq.write_table(pa.table({"embedding": emb, "key": ids}), tmp_path / "emb" / f"emb_{i}.parquet")
        rows.append((X, ids))
    m = import_embeddings(ImportSpec(modality="text", embeddings=str(tmp_path / "emb"), out=str(tmp_path / "t"),
                                     id_column="key"))
    t = read_table(tmp_path / "t")
    assert m.num_rows == 15 and t.meta["id"].to_list() == [i for _, ids in rows for i in ids]
    np.testing.assert_array_equal(t.X, np.concatenate([X for X, _ in rows]))


def test_shard_errors_name_the_file(tmp_path):
    clip_retrieval_output(tmp_path / "out")
    meta = tmp_path / "out" / "metadata" / "metadata_3.parquet"
    pq.write_table(pa.table({"image_path": ["x"]}), meta)
    with pytest.raises(InputError, match="metadata_3.parquet: 1 metadata rows for 7 embedding rows"):
        import_embeddings(ImportSpec(modality="image", embeddings=str(tmp_path / "out" / "img_emb"), out=str(tmp_path / "t")))
    with pytest.raises(InputError, match="no embedding shards"):
        import_embeddings(ImportSpec(modality="image", embeddings=str(tmp_path / "nothing" / "*.npy"), out=str(tmp_path / "t")))
    bad = np.ones((3, 16), np.float16)
    bad[1, 2] = np.nan
    np.save(tmp_path / "out" / "img_emb" / "img_emb_3.npy", bad)
    pq.write_table(pa.table({"image_path": ["a", "b", "c"], "label": ["x", "y", "z"]}), meta)
    with pytest.raises(InputError, match="img_emb_3.npy"):
        import_embeddings(ImportSpec(modality="image", embeddings=str(tmp_path / "out" / "img_emb"), out=str(tmp_path / "t")))
    assert not (tmp_path / "t" / MANIFEST).exists()
