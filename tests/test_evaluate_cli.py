"""`embridge evaluate` on a folder of imported tables: R@1 equals a direct numpy computation."""

import json

import numpy as np
import pytest
from embridge.errors import ConfigError, InputError
from embridge.evaluation.runner import EvaluateConfig, dumps, evaluate
from embridge.methods import get_method
from embridge.stages.cli import cli
from embridge.store import TableWriter, load_tables

N, D = 150, 16


@pytest.fixture(scope="module")
def tables_dir(tmp_path_factory):
    """audio and image, 150 instances each, pair_id p<i>, labels 0..4; image rows in shuffled order."""
    root = tmp_path_factory.mktemp("imported")
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((N, D)).astype(np.float32)
    labels = rng.integers(0, 5, N)
    split = np.where(rng.random(N) < 0.4, "test", "train")
    perm = rng.permutation(N)
    for m, rows, noise in (("audio", np.arange(N), 0.9), ("image", perm, 0.9)):
        X = latent[rows] + noise * rng.standard_normal((N, D)).astype(np.float32)
        with TableWriter(root / m, m, dim=D, class_names=[f"c{c}" for c in range(5)]) as w:
            w.write([f"{m}{i}" for i in rows], split[rows], X, label=labels[rows], pair_id=[f"p{i}" for i in rows])
    return root


def run(*args):
    cli.main(list(args), standalone_mode=False)


def direct_r1(tables_dir, q, g):
    """R@1 by hand: normalize the test rows, argmax of the cosine matrix, compare pair ids."""
    t = load_tables(tables_dir)
    a, b = t[q].select_split("test"), t[g].select_split("test")
    A = a.X / np.linalg.norm(a.X, axis=1, keepdims=True)
    B = b.X / np.linalg.norm(b.X, axis=1, keepdims=True)
    top = np.argmax(A @ B.T, axis=1)
    return float(np.mean(b.pair_ids[top] == a.pair_ids))


def test_evaluate_raw_r1_equals_numpy(tables_dir, tmp_path):
    out = tmp_path / "metrics" / "raw.json"
    run("evaluate", "--tables", str(tables_dir), "--method", "raw", "--anchor", "image", "--out", str(out))
    m = json.loads(out.read_text())
    assert m["method"] == "raw" and set(m) >= {"retrieval", "zeroshot", "gap"}
    for q, g in (("audio", "image"), ("image", "audio")):
        r = m["retrieval"][f"{q}->{g}"]
        assert r["paired"] is False
        assert r["R@1"] == pytest.approx(direct_r1(tables_dir, q, g), abs=1e-6)
        assert 0 < r["R@1"] <= r["R@5"] <= r["R@10"] <= 1
        assert r["R@1"] <= r["MRR"] <= r["R@10"]
    gap = m["gap"]["audio|image"]
    assert gap["pairs"] == "instance" and gap["mutual_knn"] > gap["mutual_knn_shuffled"]
    assert set(m["zeroshot"]["audio"]["image"]) == {"top1", "top5"}


def test_byte_identical_reruns_and_map_folder(tables_dir, tmp_path):
    args = ["--tables", str(tables_dir), "--pairs", "audio-image"]
    run("evaluate", *args, "--method", "raw", "--anchor", "audio", "--out", str(tmp_path / "a.json"))
    run("evaluate", *args, "--method", "raw", "--anchor", "audio", "--out", str(tmp_path / "b.json"))
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    get_method("raw").fit(load_tables(tables_dir), "audio", [("audio", "image")]).save(tmp_path / "maps" / "raw")
    run("evaluate", *args, "--map", str(tmp_path / "maps" / "raw"), "--out", str(tmp_path / "c.json"))
    a, c = json.loads((tmp_path / "a.json").read_text()), json.loads((tmp_path / "c.json").read_text())
    assert a["retrieval"] == c["retrieval"] and a["retrieval"]["audio->image"]["paired"] is True


def test_params_file_sets_the_config(tables_dir, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("seed: 3\nanchor: image\npairs:\n  train: []\nevaluate:\n  kmax: 5\n  ks: [1, 5]\n")
    out = tmp_path / "m.json"
    run("evaluate", "--tables", str(tables_dir), "--method", "raw", "--params", str(params), "--out", str(out))
    m = json.loads(out.read_text())
    assert m["config"]["kmax"] == 5 and m["config"]["seed"] == 3
    assert set(m["retrieval"]["audio->image"]) == {"paired", "R@1", "R@5", "MRR", "mAP", "queries", "gallery",
                                                    "seed_std", "ci", "vs_raw", "groups", "too_small"}
    params.write_text("evaluate:\n  kmaxx: 5\n")
    with pytest.raises(ConfigError, match="unknown key 'kmaxx'.*did you mean 'kmax'"):
        run("evaluate", "--tables", str(tables_dir), "--method", "raw", "--params", str(params), "--out", str(out))


def test_cli_errors(tables_dir, tmp_path):
    out = str(tmp_path / "x.json")
    with pytest.raises(ConfigError, match="names modality 'text', which does not exist"):
        run("evaluate", "--tables", str(tables_dir), "--method", "raw", "--pairs", "audio-text", "--out", out)
    with pytest.raises(ConfigError, match="--map MAPDIR"):
        run("evaluate", "--tables", str(tables_dir), "--out", out)
    with pytest.raises(ConfigError, match="anchor 'text' has no table"):
        run("evaluate", "--tables", str(tables_dir), "--method", "raw", "--out", out)
    with pytest.raises(InputError, match="not a fitted method folder"):
        run("evaluate", "--tables", str(tables_dir), "--map", str(tmp_path), "--out", out)


class Identity:
    """A transform of our own: identity, or a crop to `dims[modality]` columns."""

    name = "identity"

    def __init__(self, dims=None):
        self.dims = dims or {}

    def transform(self, X, modality):
        return X[:, : self.dims.get(modality, X.shape[1])]


def test_library_evaluate_with_own_transform(tables_dir):
    tables = load_tables(tables_dir)
    cfg = EvaluateConfig(ks=[1], kmax=3, zeroshot_ks=[1])
    m = evaluate(tables, Identity(), [], cfg)
    assert m["method"] == "identity"
    assert m["retrieval"]["audio->image"]["R@1"] == pytest.approx(direct_r1(tables_dir, "audio", "image"), abs=1e-6)
    assert dumps(m) == dumps(evaluate(tables, Identity(), [], cfg))
    with pytest.raises(InputError, match="different dimensions"):
        evaluate(tables, Identity({"audio": 8}), [], cfg)
    with pytest.raises(ConfigError, match="kmax"):
        evaluate(tables, Identity(), [], EvaluateConfig(ks=[1, 20], kmax=10))
    only_train = {k: t.select_split("train") for k, t in tables.items()}
    with pytest.raises(InputError, match="no rows in split 'test'"):
        evaluate(only_train, Identity(), [], cfg)
