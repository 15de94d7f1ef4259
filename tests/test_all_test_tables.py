"""Training-free evaluation of tables without a train split (import -> validate -> evaluate agree),
the .npy key / 3-D array traps of `embridge import`, and collapse's removed `renormalize` option."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from embridge.errors import ConfigError, InputError
from embridge.evaluation import evaluate
from embridge.methods import get_method
from embridge.stages.cli import cli
from embridge.store import load_tables
from embridge.store.importer import ImportSpec, import_embeddings

N, D = 120, 16


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def all_test(tmp_path):
    """Two modalities imported with every row in split 'test' (a labelled, instance-paired eval set)."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((N, D))
    labels = np.arange(N) % 4
    np.save(tmp_path / "labels.npy", labels)
    (tmp_path / "split.txt").write_text("test\n" * N)
    (tmp_path / "pairs.txt").write_text("".join(f"p{i}\n" for i in range(N)))
    for m, noise in (("image", 0.3), ("text", 0.3)):
        np.save(tmp_path / f"{m}.npy", (base + noise * rng.standard_normal((N, D))).astype(np.float32))
        r = _invoke("import", "--modality", m, "--embeddings", tmp_path / f"{m}.npy", "--labels", tmp_path / "labels.npy",
                    "--split", tmp_path / "split.txt", "--pair-ids", tmp_path / "pairs.txt", "--out", tmp_path / "t" / m)
        assert r.exit_code == 0, r.output + str(r.exception)
    return tmp_path


def test_import_validate_evaluate_raw_on_an_all_test_table(all_test):
    r = _invoke("validate", all_test / "t")
    assert r.exit_code == 0 and r.output.count("ok ") == 2, (r.output, r.exception)
    out = all_test / "raw.json"
    r = _invoke("evaluate", "--tables", all_test / "t", "--method", "raw", "--pairs", "image-text", "--out", out)
    assert r.exit_code == 0, (r.output, r.exception)
    assert "zero-shot skipped" in r.stderr
    metrics = json.loads(out.read_text())
    assert metrics["zeroshot"]["image"]["text"] is None and metrics["notes"]
    # the numbers are the real ones: R@1 of image->text by brute force
    t = load_tables(all_test / "t")
    A = t["image"].X / np.linalg.norm(t["image"].X, axis=1, keepdims=True)
    B = t["text"].X / np.linalg.norm(t["text"].X, axis=1, keepdims=True)
    want = np.mean(np.argmax(A @ B.T, axis=1) == np.arange(N))
    assert metrics["retrieval"]["image->text"]["R@1"] == pytest.approx(want, abs=1e-6)
    assert metrics["alignment"]["image|text"]["cka"] > 0.5


def test_collapse_with_precomputed_means_on_an_all_test_table(all_test):
    t = load_tables(all_test / "t")
    mu = {m: np.random.default_rng(1).standard_normal(D) * 0.1 for m in t}
    np.savez(all_test / "means.npz", **mu)
    col = get_method("collapse", means=str(all_test / "means.npz")).fit(t, "text", [("image", "text")])
    Xn = t["image"].X / np.linalg.norm(t["image"].X, axis=1, keepdims=True)
    want = (Xn - mu["image"]) / np.linalg.norm(Xn - mu["image"], axis=1, keepdims=True)
    np.testing.assert_allclose(col.transform(t["image"].X, "image"), want, atol=1e-5)
    assert evaluate(t, col, [("image", "text")])["retrieval"]["image->text"]["R@1"] >= 0
    with pytest.raises(InputError, match="no rows in split 'train'.*training-free"):
        get_method("collapse").fit(t, "text", [("image", "text")])  # its means need train rows
    with pytest.raises(InputError, match="no mean for modality 'text'"):
        np.savez(all_test / "half.npz", image=mu["image"])
        get_method("collapse", means=str(all_test / "half.npz")).fit(t, "text", [])


def test_import_refuses_what_validate_refuses(tmp_path):
    np.save(tmp_path / "e.npy", np.ones((6, 3), dtype=np.float32) + np.eye(6, 3, dtype=np.float32))
    (tmp_path / "split.txt").write_text("train\n" * 6)
    with pytest.raises(InputError, match=r"split\.txt: no row in split 'test'"):
        import_embeddings(ImportSpec("image", str(tmp_path / "e.npy"), str(tmp_path / "t"), split=str(tmp_path / "split.txt")))


def test_npy_key_is_refused_naming_the_key(tmp_path):
    np.save(tmp_path / "e.npy", np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32))
    with pytest.raises(InputError, match=r"e\.npy: a \.npy file holds one array and has no keys, so ':emb'"):
        import_embeddings(ImportSpec("image", f"{tmp_path / 'e.npy'}:emb", str(tmp_path / "t")))


def test_3d_array_error_says_how_to_select_a_slice(tmp_path):
    np.save(tmp_path / "e.npy", np.ones((10, 3, 4), dtype=np.float32))
    with pytest.raises(InputError, match=r"3-D array of shape \(10, 3, 4\); select one slice.*X\[:, 0, :\]"):
        import_embeddings(ImportSpec("image", str(tmp_path / "e.npy"), str(tmp_path / "t")))


def test_collapse_renormalize_option_is_gone():
    """Issue 14, cause 6: `renormalize: false` had no effect (evaluation re-normalizes every output)."""
    with pytest.raises(ConfigError, match="renormalize"):
        get_method("collapse", renormalize=False)
