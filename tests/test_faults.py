"""Faults and bad input at the command line: the real `embridge` commands in temporary folders.

Every case checks that the command exits non-zero, prints one `error:` line naming the file,
key, row or value, shows no traceback from inside FAISS, Arrow or torch, and leaves nothing
half-written behind.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from embridge.store import MANIFEST, read_manifest
from embridge.store.synth import SynthConfig, write_synthetic

from tests.manifests import edit_manifest
from tests.pipeline_repo import ROOT, env

EMBRIDGE = [sys.executable, "-m", "stages"]


def embridge(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*EMBRIDGE, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env(), timeout=600)


def refused(res: subprocess.CompletedProcess, *needles: str) -> str:
    """Assert a clean refusal: exit 1, an `error:` line holding every needle, no traceback."""
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout, res.stderr
    err = res.stderr.strip().splitlines()[-1]
    assert err.startswith("error: "), res.stderr
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.fixture
def tables(tmp_path):
    root = tmp_path / "tables"
    write_synthetic(root, SynthConfig(n=240, dim=16, latent_dim=4, seed=1))
    return root


# ----------------------------------------------------------------------------- 1. interrupted extraction


def _prepare_tiny(raw: Path, tmp_path: Path) -> Path:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "prepare": {"images_per_class": 40, "espeak_languages": ["en-us"], "espeak_variants": ["m1", "f1"],
                    "espeak_rates": [170], "espeak_pitches": [50]},
        "extract": {"rows_per_shard": 16, "batch_sizes": {"image": 16}},
    }))
    res = embridge("prepare", "--params", params, "--out", raw)
    assert res.returncode == 0, res.stderr
    return params


@pytest.mark.slow
def test_killed_extraction_resumes_and_matches_an_uninterrupted_run(tmp_path):
    raw = tmp_path / "raw"
    params = _prepare_tiny(raw, tmp_path)
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert embridge("extract", "--modality", "image", "--raw", raw, "--out", full, "--params", params,
                    "--no-progress").returncode == 0
    n_shards = len(read_manifest(full).shards)
    assert n_shards == 25  # 400 images, 16 rows per shard

    proc = subprocess.Popen([*EMBRIDGE, "extract", "--modality", "image", "--raw", str(raw), "--out", str(killed),
                             "--params", str(params), "--no-progress"], env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "part-00003.parquet").exists():
        assert proc.poll() is None and time.time() < deadline, "extraction ended before it could be interrupted"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: the worst case
    proc.wait()
    assert not (killed / MANIFEST).exists()  # an incomplete table is never trusted
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in killed.glob("part-*.parquet")}
    assert 4 <= len(kept) < n_shards
    with pytest.raises(Exception, match=f"{MANIFEST}: missing"):
        read_manifest(killed)

    res = embridge("extract", "--modality", "image", "--raw", raw, "--out", killed, "--params", params, "--no-progress")
    assert res.returncode == 0, res.stderr
    for name, stamp in kept.items():  # finished shards were kept, not rewritten
        p = killed / name
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == stamp, name
    assert sorted(p.name for p in killed.iterdir()) == sorted(p.name for p in full.iterdir())  # no temp files left
    for p in full.iterdir():
        assert (killed / p.name).read_bytes() == p.read_bytes(), p.name


# ----------------------------------------------------------------------------- 2. corrupted artifacts


def test_truncated_shard_is_refused_and_no_map_is_written(tables, tmp_path):
    shard = tables / "audio" / "part-00000.parquet"
    shard.write_bytes(shard.read_bytes()[:-200])
    out = tmp_path / "maps" / "procrustes"
    refused(embridge("fit", "--method", "procrustes", "--tables", tables, "--out", out), str(shard), "corrupt or truncated")
    assert not out.exists()
    refused(embridge("validate", tables / "audio"), str(shard))


def test_shard_rows_not_matching_the_manifest(tables, tmp_path):
    def more_rows(m):
        m["shards"][0]["num_rows"] += 5
        m["num_rows"] += 5

    edit_manifest(tables / "image", more_rows)
    out = tmp_path / "m.json"
    refused(embridge("evaluate", "--tables", tables, "--method", "raw", "--out", out),
            "part-00000.parquet", f"holds 240 rows but {MANIFEST} records 245")
    assert not out.exists()


def test_manifest_lying_about_the_dimension(tables, tmp_path):
    edit_manifest(tables / "text", lambda m: m.update(dim=32))
    refused(embridge("fit", "--method", "linear", "--tables", tables, "--out", tmp_path / "map"),
            str(tables / "text" / "part-00000.parquet"), "dimension 16", "dim = 32")


def test_truncated_map_state_is_refused(tables, tmp_path):
    out = tmp_path / "map"
    assert embridge("fit", "--method", "procrustes", "--tables", tables, "--out", out).returncode == 0
    state = out / "state.safetensors"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    metrics = tmp_path / "m.json"
    refused(embridge("evaluate", "--tables", tables, "--map", out, "--out", metrics), str(state))
    assert not metrics.exists()


# ----------------------------------------------------------------------------- 3. bad imports


def _save(path: Path, array) -> Path:
    np.save(path, array, allow_pickle=array.dtype == object)
    return path


GOOD = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)


def _with(**cells):
    X = GOOD.copy()
    for key, value in cells.items():
        r, c = map(int, key[1:].split("_"))
        X[r, c] = value
    return X


@pytest.mark.parametrize(
    "array,needles",
    [
        (_with(r3_1=np.nan), ["row 3", "NaN or Inf"]),
        (_with(r5_0=np.inf), ["row 5", "NaN or Inf"]),
        (np.where(np.arange(20)[:, None] == 7, 0, GOOD).astype(np.float32), ["row 7", "all-zero"]),
        (GOOD[:0], ["no rows"]),
        (GOOD[:, 0], ["expected a 2-D array", "(20,)"]),
        (np.array([np.ones(3), np.ones(2)], dtype=object), ["never unpickled"]),
    ],
    ids=["nan", "inf", "zero-row", "empty", "1-d", "ragged-objects"],
)
def test_bad_import_arrays(tmp_path, array, needles):
    f = _save(tmp_path / "emb.npy", array)
    out = tmp_path / "out"
    refused(embridge("import", "--modality", "audio", "--embeddings", f, "--out", out), str(f), *needles)
    assert not out.exists()


def test_bad_import_side_files(tmp_path):
    emb = _save(tmp_path / "emb.npy", GOOD)
    labels = _save(tmp_path / "labels.npy", np.arange(19))
    refused(embridge("import", "--modality", "a", "--embeddings", emb, "--labels", labels, "--out", tmp_path / "o"),
            "19 labels for 20 embedding rows")
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(["a", "b", "a"] + [f"x{i}" for i in range(17)]))
    refused(embridge("import", "--modality", "a", "--embeddings", emb, "--ids", ids, "--out", tmp_path / "o"),
            "duplicate id 'a' at rows 0 and 2")
    refused(embridge("import", "--modality", "a", "--embeddings", tmp_path / "missing.npy", "--out", tmp_path / "o"),
            "missing.npy: file does not exist")
    assert not (tmp_path / "o").exists()


def test_object_array_is_never_unpickled(tmp_path):
    marker = tmp_path / "side-effect"
    code = (f"import numpy as np, os\nclass E:\n    def __reduce__(self):\n        return (os.mkdir, ({str(marker)!r},))\n"
            f"np.save({str(tmp_path / 'evil.npy')!r}, np.array([E()], dtype=object), allow_pickle=True)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    refused(embridge("import", "--modality", "a", "--embeddings", tmp_path / "evil.npy", "--out", tmp_path / "o"),
            "never unpickled")
    assert not marker.exists()


# ----------------------------------------------------------------------------- 4. bad parameters


def _params(tmp_path: Path, **changes) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in changes.items():
        node, keys = params, dotted.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(params))
    return p


BAD_PARAMS = [
    ({"fit__emergentbridge__lamda": 0.5}, ["fit.emergentbridge", "unknown key 'lamda'", "did you mean 'lam'"]),
    ({"bind__epochs": "ten"}, ["bind.epochs = 'ten'", "expected an integer"]),
    ({"pairs__pairs_per_class": -3}, ["pairs_per_class = -3", "expected >= 0"]),
    ({"anchor": "smell"}, ["anchor = 'smell'", "not one of the modalities"]),
    ({"pairs__train": ["image-text", "depth-text"]}, ["pairs.train", "'depth'", "does not exist"]),
    ({"device": "cuda"}, ["device = 'cuda'", "no CUDA GPU"]),
    ({"evaluat": {"kmax": 5}}, ["unknown top-level key 'evaluat'", "did you mean 'evaluate'"]),
]


@pytest.mark.parametrize("changes,needles", BAD_PARAMS, ids=[list(c)[0] for c, _ in BAD_PARAMS])
@pytest.mark.parametrize("stage", ["bind", "fit", "evaluate", "sweep"])
def test_bad_params_are_refused_before_any_work(tables, tmp_path, changes, needles, stage):
    import torch

    if changes.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    params = _params(tmp_path, **changes)
    out = tmp_path / "out"
    args = {
        "bind": ["bind", "--features", tables, "--out", out],
        "fit": ["fit", "--method", "emergentbridge", "--tables", tables, "--out", out],
        "evaluate": ["evaluate", "--tables", tables, "--method", "raw", "--out", out],
        "sweep": ["sweep", "--pairs-per-class", 2, "--features", tables, "--out", out],
    }[stage]
    refused(embridge(*args, "--params", params), str(params), *needles)
    assert not out.exists()


# method arguments are checked by the stages that import torch (bind on); prepare/extract stay torch-free
FIRST_STAGE = [case for case in BAD_PARAMS if "fit__emergentbridge__lamda" not in case[0] and "device" not in case[0]]


@pytest.mark.parametrize("changes,needles", FIRST_STAGE, ids=[list(c)[0] for c, _ in FIRST_STAGE])
def test_bad_params_stop_even_the_first_stage(tmp_path, changes, needles):
    """prepare and extract check the global keys and every section too, so a typo anywhere stops
    `dvc repro` at its first stage."""
    params = _params(tmp_path, **changes)
    res = embridge("prepare", "--params", params, "--out", tmp_path / "raw")
    refused(res, str(params), *needles)
    assert not (tmp_path / "raw").exists()


def test_missing_folder_and_unknown_method(tmp_path):
    refused(embridge("validate", tmp_path / "nothing-here"), "nothing-here: not a folder")
    res = embridge("fit", "--method", "nonexistent", "--tables", tmp_path, "--out", tmp_path / "o")
    refused(res, "method 'nonexistent' does not exist")

