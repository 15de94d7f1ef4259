"""`embridge import`: every format, labels/ids/pairs/splits, and each bad input refused by name."""

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from embridge.errors import InputError
from embridge.stages.cli import cli
from embridge.store import read_table
from embridge.store.importer import ImportSpec, import_embeddings, stratified_split
from safetensors.numpy import save_file

N, D = 60, 8


@pytest.fixture
def X():
    return np.random.default_rng(0).standard_normal((N, D)).astype(np.float32)


def _run(*args):
    return CliRunner().invoke(cli, ["import", *map(str, args)])


def _write_format(tmp_path, X, fmt):
    if fmt == "npy":
        p = tmp_path / "e.npy"
        np.save(p, X)
        return str(p)
    if fmt == "npz":
        p = tmp_path / "e.npz"
        np.savez(p, other=np.zeros(3), emb=X)
        return f"{p}:emb"
    if fmt == "parquet":
        p = tmp_path / "e.parquet"
        pq.write_table(pa.table({"vec": pa.array(list(X)), "x": np.arange(N)}), p)
        return f"{p}:vec"
    p = tmp_path / "e.safetensors"
    save_file({"emb": X, "b": np.zeros(2, np.float32)}, str(p))
    return f"{p}:emb"


@pytest.mark.parametrize("fmt", ["npy", "npz", "parquet", "safetensors"])
def test_each_format_round_trips(tmp_path, X, fmt):
    spec = _write_format(tmp_path, X, fmt)
    res = _run("--modality", "depth", "--embeddings", spec, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    t = read_table(tmp_path / "out")
    order = np.argsort(t.ids)  # default ids are depth-<row>, so sorting restores input order
    np.testing.assert_array_equal(t.X[order], X)
    assert t.modality == "depth"


def test_labels_ids_pairs_and_stratified_split(tmp_path, X):
    np.save(tmp_path / "e.npy", X)
    labels = np.array(["cat", "dog", "owl"] * 20)
    (tmp_path / "labels.txt").write_text("\n".join(labels) + "\n")
    np.save(tmp_path / "ids.npy", np.array([f"clip{i}" for i in range(N)]))
    (tmp_path / "pairs.txt").write_text("\n".join(f"p{i}" if i % 2 else "" for i in range(N)))
    res = _run("--modality", "audio", "--embeddings", tmp_path / "e.npy", "--labels", tmp_path / "labels.txt",
               "--ids", tmp_path / "ids.npy", "--pair-ids", tmp_path / "pairs.txt",
               "--test-fraction", 0.25, "--seed", 4, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    t = read_table(tmp_path / "out")
    assert t.class_names == ["cat", "dog", "owl"]
    assert list(t.ids) == [f"clip{i}" for i in range(N)]
    assert t.pair_ids[0] is None and t.pair_ids[1] == "p1"
    for c in range(3):  # 20 rows per class -> exactly 5 in test for each class
        assert ((t.labels == c) & (t.split == "test")).sum() == 5


def test_explicit_split_file(tmp_path, X):
    np.save(tmp_path / "e.npy", X)
    (tmp_path / "split.txt").write_text("\n".join("test" if i < 10 else "train" for i in range(N)))
    assert _run("--modality", "a", "--embeddings", tmp_path / "e.npy", "--split", tmp_path / "split.txt",
                "--out", tmp_path / "o").exit_code == 0
    assert (read_table(tmp_path / "o").split == "test").sum() == 10


def test_stratified_split_is_seeded():
    y = np.arange(100) % 4
    a, b = stratified_split(y, 100, 0.2, 1), stratified_split(y, 100, 0.2, 1)
    assert (a == b).all() and (a == "test").sum() == 20
    assert (stratified_split(y, 100, 0.2, 2) != a).any()


@pytest.mark.parametrize(
    "make,pattern",
    [
        (lambda X: X.__setitem__((7, 3), np.nan) or X, "row 7 .*NaN or Inf"),
        (lambda X: X.__setitem__((9, 0), -np.inf) or X, "row 9 .*NaN or Inf"),
        (lambda X: X.__setitem__(11, 0.0) or X, "row 11 .*all-zero vector"),
        (lambda X: X[:0], "no rows"),
        (lambda X: X[:, 0], "expected a 2-D array of shape \\(n, d\\), got shape \\(60,\\)"),
    ],
)
def test_bad_arrays_are_refused_and_nothing_written(tmp_path, X, make, pattern):
    np.save(tmp_path / "e.npy", make(X.copy()))
    res = _run("--modality", "a", "--embeddings", tmp_path / "e.npy", "--out", tmp_path / "o")
    assert res.exit_code != 0
    assert isinstance(res.exception, InputError)
    assert re.search(pattern, str(res.exception)), str(res.exception)
    assert not (tmp_path / "o").exists()


def test_object_npy_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    np.save(tmp_path / "evil.npy", np.array([Evil()], dtype=object), allow_pickle=True)
    np.save(tmp_path / "ragged.npy", np.array([[1.0, 2.0], [3.0]], dtype=object), allow_pickle=True)
    for name in ("evil.npy", "ragged.npy"):
        with pytest.raises(InputError, match="never unpickled"):
            import_embeddings(ImportSpec("a", str(tmp_path / name), str(tmp_path / "o")))
    assert not marker.exists()


def test_ragged_parquet_names_the_row(tmp_path):
    pq.write_table(pa.table({"v": [[1.0, 2.0], [1.0, 2.0], [3.0]]}), tmp_path / "r.parquet")
    with pytest.raises(InputError, match="row 2: vector of length 1, expected 2"):
        import_embeddings(ImportSpec("a", f"{tmp_path / 'r.parquet'}:v", str(tmp_path / "o")))


def test_wrong_lengths_duplicates_and_missing_files(tmp_path, X):
    np.save(tmp_path / "e.npy", X)
    np.save(tmp_path / "short.npy", np.arange(N - 1))
    e = str(tmp_path / "e.npy")
    with pytest.raises(InputError, match="59 labels for 60 embedding rows"):
        import_embeddings(ImportSpec("a", e, str(tmp_path / "o"), labels=str(tmp_path / "short.npy")))
    (tmp_path / "ids.txt").write_text("\n".join(["x"] * 2 + [f"i{i}" for i in range(N - 2)]))
    with pytest.raises(InputError, match="duplicate id 'x' at rows 0 and 1"):
        import_embeddings(ImportSpec("a", e, str(tmp_path / "o"), ids=str(tmp_path / "ids.txt")))
    with pytest.raises(InputError, match="nope.npy: file does not exist"):
        import_embeddings(ImportSpec("a", str(tmp_path / "nope.npy"), str(tmp_path / "o")))
    np.savez(tmp_path / "two.npz", a=X, b=X)
    with pytest.raises(InputError, match="holds 2 arrays"):
        import_embeddings(ImportSpec("a", str(tmp_path / "two.npz"), str(tmp_path / "o")))
    with pytest.raises(InputError, match="no array named 'c'; available: \\['a', 'b'\\]"):
        import_embeddings(ImportSpec("a", f"{tmp_path / 'two.npz'}:c", str(tmp_path / "o")))
    np.save(tmp_path / "neg.npy", -np.ones(N, int))
    with pytest.raises(InputError, match="label at row 0 is -1"):
        import_embeddings(ImportSpec("a", e, str(tmp_path / "o"), labels=str(tmp_path / "neg.npy")))
    assert not (tmp_path / "o").exists()


def test_failed_reimport_keeps_the_existing_table(tmp_path, X):
    np.save(tmp_path / "e.npy", X)
    import_embeddings(ImportSpec("a", str(tmp_path / "e.npy"), str(tmp_path / "o")))
    bad = X.copy()
    bad[0, 0] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(InputError):
        import_embeddings(ImportSpec("a", str(tmp_path / "bad.npy"), str(tmp_path / "o")))
    assert len(read_table(tmp_path / "o")) == N  # nothing lost
