"""Every bad input of design section 3 is refused with the file, column and row named,
through the library and through `embridge validate`."""


import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from embridge.errors import InputError
from embridge.stages.cli import cli
from embridge.store import MANIFEST, TableWriter, read_table, schema, to_arrow, write_manifest_dict
from embridge.store.checks import check_matrix
from embridge.store.validate import validate_table

from tests.manifests import edit_manifest


def _write(root, X=None, ids=None, split=None, n=40, d=6):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, d)).astype(np.float32) if X is None else X
    n = len(X)
    ids = [f"id{i}" for i in range(n)] if ids is None else ids
    split = ["test" if i % 4 == 0 else "train" for i in range(n)] if split is None else split
    with TableWriter(root, "audio", X.shape[1], rows_per_shard=25) as w:
        w.write(ids, split, X, label=np.arange(n) % 3)
    return root


def _rewrite_shard(root, index, table):
    pq.write_table(table, root / f"part-{index:05d}.parquet")


def _expect(root, pattern, require_splits=("train", "test")):
    with pytest.raises(InputError, match=pattern):
        validate_table(root, require_splits=require_splits)
    res = CliRunner().invoke(cli, ["validate", str(root)])
    assert res.exit_code != 0
    assert isinstance(res.exception, InputError) and res.exception.__traceback__ is not None
    return str(res.exception)


def test_good_table_passes(tmp_path):
    m = validate_table(_write(tmp_path / "t"))
    assert m.num_rows == 40
    res = CliRunner().invoke(cli, ["validate", str(tmp_path / "t")])
    assert res.exit_code == 0 and "40 rows x 6" in res.output


@pytest.mark.parametrize("value,what", [(np.nan, "NaN or Inf"), (np.inf, "NaN or Inf"), (0.0, "all-zero")])
def test_bad_values_named_by_file_row_and_id(tmp_path, value, what):
    X = np.random.default_rng(0).standard_normal((40, 6)).astype(np.float32)
    if value == 0.0:
        X[31] = 0.0
    else:
        X[31, 2] = value
    root = _write(tmp_path / "t", X=X)
    msg = _expect(root, what)
    # row 31 is row 6 of the second shard (25 rows per shard)
    assert "part-00001.parquet" in msg and "row 6" in msg and "'id31'" in msg and "'embedding'" in msg


def test_duplicate_ids_named_with_both_rows(tmp_path):
    ids = [f"id{i}" for i in range(40)]
    ids[30] = "id3"
    msg = _expect(_write(tmp_path / "t", ids=ids), "duplicate id 'id3'")
    assert "part-00001.parquet" in msg and "part-00000.parquet, row 3" in msg


def test_dimension_differing_from_manifest(tmp_path):
    root = _write(tmp_path / "t")
    edit_manifest(root, lambda m: m.update(dim=8))
    _expect(root, f"dimension 6, but {MANIFEST} says dim = 8")


def test_empty_split_and_bad_split_value(tmp_path):
    _expect(_write(tmp_path / "a", split=["train"] * 40), "split 'test' has no rows")
    split = ["train"] * 40
    split[7] = "valid"
    _expect(_write(tmp_path / "b", split=split), "row 7: value 'valid'; expected one of")


def test_truncated_and_corrupt_shards(tmp_path):
    root = _write(tmp_path / "t")
    p = root / "part-00001.parquet"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    msg = _expect(root, "corrupt or truncated")
    assert "part-00001.parquet" in msg
    (root / "part-00000.parquet").write_bytes(b"not parquet at all")
    _expect(root, "part-00000.parquet: corrupt or truncated")


def test_missing_shard_and_row_count_mismatch(tmp_path):
    root = _write(tmp_path / "t")
    t = pq.read_table(root / "part-00001.parquet")
    _rewrite_shard(root, 1, t.slice(0, 10))
    _expect(root, f"holds 10 rows but {MANIFEST} records 15")
    (root / "part-00001.parquet").unlink()
    _expect(root, "does not exist")


def test_missing_column_and_wrong_dtype(tmp_path):
    root = _write(tmp_path / "t")
    t = pq.read_table(root / "part-00000.parquet")
    _rewrite_shard(root, 0, t.drop_columns(["split"]))
    _expect(root, "missing column 'split'")
    root = _write(tmp_path / "u")
    t = pq.read_table(root / "part-00000.parquet")
    emb64 = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(25 * 6) + 1.0, pa.float64()), 6)
    _rewrite_shard(root, 0, t.set_column(4, "embedding", emb64))
    _expect(root, "column 'embedding' has type fixed_size_list<[a-z]+: double>")
    root = _write(tmp_path / "v")
    t = pq.read_table(root / "part-00000.parquet")
    _rewrite_shard(root, 0, t.set_column(2, "label", pa.array([str(i) for i in range(25)])))
    _expect(root, "column 'label' has type string, expected int32")


def test_empty_table_and_missing_manifest(tmp_path):
    root = _write(tmp_path / "t")
    edit_manifest(root, lambda m: m.update(num_rows=0, shards=[]))
    _expect(root, "the table is empty")
    (root / MANIFEST).unlink()
    _expect(root, f"{MANIFEST}: missing")
    (root / MANIFEST).write_text("{not json")
    _expect(root, f"{MANIFEST}: not a readable Parquet manifest")
    pq.write_table(schema(6).empty_table(), root / MANIFEST)  # a Parquet file, but no manifest in its footer
    _expect(root, "no embridge manifest in its footer metadata")
    write_manifest_dict(root, {"dim": 6, "dtype": "float32"})
    _expect(root, re.escape("missing key(s) ['modality', 'num_rows', 'shards']"))


def test_read_table_validates_by_default(tmp_path):
    X = np.ones((40, 6), np.float32)
    X[2, 0] = np.nan
    root = _write(tmp_path / "t", X=X)
    with pytest.raises(InputError, match="row 2"):
        read_table(root)


def test_check_matrix_cases():
    X = np.ones((5, 3), np.float32)
    assert check_matrix(X, "x") is X
    with pytest.raises(InputError, match="expected a 2-D array"):
        check_matrix(np.ones(3), "x")
    with pytest.raises(InputError, match="no rows"):
        check_matrix(np.ones((0, 3)), "x")
    with pytest.raises(InputError, match="dimension 3, expected 4"):
        check_matrix(X, "x", dim=4)
    Y = X.copy()
    Y[4, 1] = np.inf
    with pytest.raises(InputError, match="row 4 \\(id 'e'\\) holds NaN or Inf"):
        check_matrix(Y, "x", ids=list("abcde"))


def test_to_arrow_checks_lengths():
    with pytest.raises(InputError, match="column 'split' has 2 rows but the embeddings have 3"):
        to_arrow(["a", "b", "c"], ["train", "test"], np.ones((3, 2)))
    assert to_arrow(["a"], ["train"], np.ones((1, 2))).schema == schema(2)
