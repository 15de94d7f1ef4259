"""The sixteen cases of "no silent wrong result, no lost file" (issue 16), each driven through the
real `embridge` command on small synthetic tables. Numbers in the test names are the issue's cases."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from embridge.store import MANIFEST, read_manifest, read_table
from embridge.store.synth import SynthConfig, write_synthetic

from tests.manifests import edit_manifest
from tests.pipeline_repo import env
from tests.test_faults import EMBRIDGE, embridge, refused


@pytest.fixture
def tables(tmp_path):
    root = tmp_path / "tables"
    write_synthetic(root, SynthConfig(n=240, dim=16, latent_dim=4, seed=1))
    return root


def ok(res: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert res.returncode == 0, (res.stdout, res.stderr)
    return res


def export(table_dir: Path, out: Path) -> dict[str, Path]:
    """A table's columns as import input files: emb.npy, labels.npy, ids.txt, split.txt, pairs.txt."""
    out.mkdir(parents=True, exist_ok=True)
    t = read_table(table_dir)
    np.save(out / "emb.npy", t.X)
    np.save(out / "labels.npy", t.labels)
    (out / "ids.txt").write_text("\n".join(t.ids) + "\n")
    (out / "split.txt").write_text("\n".join(t.split) + "\n")
    (out / "pairs.txt").write_text("\n".join(p or "" for p in t.pair_ids) + "\n")
    return {k: out / f for k, f in (("emb", "emb.npy"), ("labels", "labels.npy"), ("ids", "ids.txt"),
                                    ("split", "split.txt"), ("pairs", "pairs.txt"))}


def reimport(files: dict[str, Path], modality: str, out: Path, *extra, pairs: Path | None = None):
    return embridge("import", "--modality", modality, "--embeddings", files["emb"], "--labels", files["labels"],
                    "--ids", files["ids"], "--split", files["split"], "--pair-ids", pairs or files["pairs"],
                    "--out", out, *extra)


def faulty(fault: str, *args) -> subprocess.CompletedProcess:
    """Run `embridge ARGS` in a process where `fault` (Python code) was run first: fault injection."""
    code = f"{fault}\nimport sys\nsys.argv = ['embridge', *{list(map(str, args))!r}]\nfrom embridge.stages.cli import main\nmain()\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env(), timeout=600)


# a full disk: every fsync (each atomic write flushes before its rename) fails with ENOSPC
DISK_FULL = "import errno, os\ndef _full(fd):\n    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\nos.fsync = _full"


# ----------------------------------------------------------------------------- silent wrong results


def test_01_folder_name_and_manifest_modality_disagree(tables, tmp_path):
    files = export(tables / "audio", tmp_path / "src")
    ok(reimport(files, "audio", tables / "image"))  # the slip: audio rows into tables/image
    out = tmp_path / "map"
    refused(embridge("fit", "--method", "procrustes", "--tables", tables, "--out", out), "image", "'audio'")
    assert not out.exists()
    refused(embridge("evaluate", "--tables", tables, "--method", "raw", "--out", tmp_path / "m.json"), "image", "'audio'")
    refused(embridge("validate", tables), str(tables / "image"), "'audio'")


def test_02_class_names_map_labels_by_name(tmp_path):
    rng = np.random.default_rng(0)
    emb = tmp_path / "emb.npy"
    np.save(emb, rng.standard_normal((30, 4)).astype(np.float32))
    names = ["cat", "bee", "ant"]
    labels = [names[i] for i in rng.integers(0, 3, 30)]
    (tmp_path / "labels.txt").write_text("\n".join(labels) + "\n")
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    out = tmp_path / "t"
    ok(embridge("import", "--modality", "a", "--embeddings", emb, "--labels", tmp_path / "labels.txt",
                "--class-names", tmp_path / "names.txt", "--out", out))
    t = read_table(out)
    assert t.class_names == names
    assert [t.class_names[i] for i in t.labels] == labels  # every row keeps its own class

    ints = [10, 2, 7] * 10  # integers in a .txt stay integers: "10" is class 10, not the first string
    (tmp_path / "ints.txt").write_text("\n".join(map(str, ints)) + "\n")
    ok(embridge("import", "--modality", "a", "--embeddings", emb, "--labels", tmp_path / "ints.txt", "--out", tmp_path / "u"))
    assert read_table(tmp_path / "u").labels.tolist() == ints

    (tmp_path / "labels.txt").write_text("\n".join(labels[:5] + ["wasp"] + labels[6:]) + "\n")
    refused(embridge("import", "--modality", "a", "--embeddings", emb, "--labels", tmp_path / "labels.txt",
                     "--class-names", tmp_path / "names.txt", "--out", tmp_path / "v"), "row 5", "'wasp'", "names.txt")
    assert not (tmp_path / "v").exists()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_03_state_from_another_run_is_refused(tables, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    ok(embridge("fit", "--method", "procrustes", "--tables", tables, "--out", a, "--pairs-per-class", 20))
    ok(embridge("fit", "--method", "procrustes", "--tables", tables, "--out", b, "--anchor", "image"))  # another map of the same method
    assert _sha(a / "state.safetensors") != _sha(b / "state.safetensors")
    shutil.copy(b / "state.safetensors", a / "state.safetensors")  # what two writers to one --out left behind
    metrics = tmp_path / "m.json"
    refused(embridge("evaluate", "--tables", tables, "--map", a, "--out", metrics), str(a / "state.safetensors"), "config.json")
    assert not metrics.exists()


def test_03_concurrent_fits_and_imports_leave_one_whole_result(tables, tmp_path):
    out = tmp_path / "map"
    for trial in range(3):
        procs = [subprocess.Popen([*EMBRIDGE, "fit", "--method", "procrustes", "--tables", str(tables), "--out", str(out),
                                   "--pairs-per-class", str(ppc)], env=env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for ppc in (20, 3, 7)]
        for p in procs:
            _, err = p.communicate(timeout=600)
            assert p.returncode == 0 or "another embridge" in err, err
        config = json.loads((out / "config.json").read_text())
        assert config["state_sha256"] == _sha(out / "state.safetensors"), trial
        assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []  # no temp folders left
    files = export(tables / "audio", tmp_path / "src")
    procs = [subprocess.Popen([*EMBRIDGE, "import", "--modality", "audio", "--embeddings", str(files["emb"]),
                               "--out", str(tmp_path / "imp"), "--dtype", dtype], env=env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for dtype in ("float32", "float16", "float32")]
    for p in procs:
        p.communicate(timeout=600)
    ok(embridge("validate", tmp_path / "imp", "--require-splits", ""))


def test_04_state_tensors_must_be_those_the_config_implies(tables, tmp_path):
    from safetensors.numpy import load_file, save_file

    m = tmp_path / "map"
    ok(embridge("fit", "--method", "procrustes", "--tables", tables, "--out", m))
    state_path, config_path = m / "state.safetensors", m / "config.json"
    good = load_file(str(state_path))

    def rewrite(state):  # a state rewritten and its hash updated: only the tensor check can catch it
        save_file(state, str(state_path))
        config = json.loads(config_path.read_text())
        config["state_sha256"] = _sha(state_path)
        config_path.write_text(json.dumps(config))

    rewrite({k: v for k, v in good.items() if not k.startswith("map/audio/")})
    refused(embridge("evaluate", "--tables", tables, "--map", m, "--out", tmp_path / "m.json"), str(state_path), "map/audio/W")
    rewrite({**good, "mean/audio": np.zeros(16, np.float32)})
    refused(embridge("evaluate", "--tables", tables, "--map", m, "--out", tmp_path / "m.json"), str(state_path), "mean/audio")
    rewrite({**good, "map/image/W": np.zeros((16, 8), np.float32)})
    refused(embridge("evaluate", "--tables", tables, "--map", m, "--out", tmp_path / "m.json"), "map/image/W", "(16, 8)", "(16, 16)")
    assert not (tmp_path / "m.json").exists()


def test_05_evaluate_pairs_must_match_the_map(tables, tmp_path):
    m = tmp_path / "map"
    ok(embridge("fit", "--method", "procrustes", "--tables", tables, "--pairs", "audio-image,image-text", "--out", m))
    out = tmp_path / "m.json"
    refused(embridge("evaluate", "--tables", tables, "--map", m, "--pairs", "image-text,audio-text", "--out", out),
            "--pairs", "audio-image")
    assert not out.exists()
    ok(embridge("evaluate", "--tables", tables, "--map", m, "--out", out))  # without --pairs: the map's pairs
    metrics = json.loads(out.read_text())
    assert metrics["retrieval"]["audio->image"]["paired"] and not metrics["retrieval"]["audio->text"]["paired"]


def test_06_incomplete_table_is_an_error(tables, tmp_path):
    (tables / "audio" / MANIFEST).unlink()  # what an interrupted import leaves: shards, no manifest
    refused(embridge("validate", tables), str(tables / "audio"), "incomplete")
    out = tmp_path / "m.json"
    refused(embridge("evaluate", "--tables", tables, "--method", "raw", "--out", out), str(tables / "audio"))
    assert not out.exists()


def test_07_pair_ids_that_match_nothing_or_repeat(tables, tmp_path):
    files = export(tables / "audio", tmp_path / "src")
    pairs = tmp_path / "src" / "other-pairs.txt"
    pairs.write_text("\n".join(f"zz{i}" for i in range(240)) + "\n")
    ok(reimport(files, "audio", tables / "audio", pairs=pairs))
    refused(embridge("fit", "--method", "procrustes", "--tables", tables, "--out", tmp_path / "map"),
            "audio", "240 pair ids", "no other modality")
    refused(embridge("evaluate", "--tables", tables, "--method", "raw", "--out", tmp_path / "m.json"), "audio", "240 pair ids")

    dup = ["p1", "p2", "p1"] + [f"q{i}" for i in range(237)]
    pairs.write_text("\n".join(dup) + "\n")
    refused(reimport(files, "audio", tmp_path / "t2", pairs=pairs), "duplicate pair id 'p1'", "rows 0 and 2")
    assert not (tmp_path / "t2").exists()


@pytest.mark.parametrize(
    "dtype,array,needles",
    [
        ("float16", np.full((4, 3), 1e5), ["float16", "row 0"]),
        ("float32", np.full((4, 3), 1e39), ["float32", "row 0"]),
        ("float16", np.full((4, 3), 1e-9), ["float16", "all-zero"]),
        ("float32", np.ones((4, 3)) + 1j, ["complex"]),
    ],
    ids=["f16-overflow", "f64-overflow", "f16-underflow", "complex"],
)
def test_08_import_refuses_values_the_dtype_cannot_hold(tmp_path, dtype, array, needles):
    f = tmp_path / "emb.npy"
    np.save(f, array)
    out = tmp_path / "out"
    refused(embridge("import", "--modality", "a", "--embeddings", f, "--dtype", dtype, "--out", out), str(f), *needles)
    assert not out.exists()


def _params_text(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(textwrap.dedent(text))
    return p


@pytest.mark.parametrize(
    "method,key,value",
    [("emergentbridge", "lr", ".inf"), ("emergentbridge", "lam", ".nan"), ("emergentbridge", "sigma_p", "-.inf"),
     ("linear", "alpha", ".nan"), ("cca", "ridge", ".inf"), ("procrustes", "corrupt_sigma", ".nan"),
     ("linear", "alpha", "-1.0")],
)
def test_09_float_parameters_must_be_finite_and_in_range(tables, tmp_path, method, key, value):
    params = _params_text(tmp_path, f"fit:\n  {method}:\n    {key}: {value}\n")
    out = tmp_path / "map"
    refused(embridge("fit", "--method", method, "--tables", tables, "--params", params, "--out", out),
            str(params), f"fit.{method}.{key}")
    assert not out.exists()


def test_09_synth_noise_nan(tmp_path):
    out = tmp_path / "s"
    refused(embridge("synth", "--out", out, "--noise", "nan", "--n", 50, "--dim", 8, "--latent-dim", 2), "noise", "nan")
    assert not out.exists()


@pytest.mark.parametrize("text,needles", [
    ("seed: 1\nanchor: text\nseed: 2\n", ["'seed'", "line 1", "line 3"]),
    ("bind: {method: projection, method: passthrough}\n", ["'method'", "line 1"]),
])
def test_10_duplicate_yaml_keys_are_refused(tables, tmp_path, text, needles):
    params = _params_text(tmp_path, text)
    refused(embridge("evaluate", "--tables", tables, "--method", "raw", "--params", params, "--out", tmp_path / "m.json"),
            str(params), "duplicate key", *needles)


# ----------------------------------------------------------------------------- lost files


def test_11_import_never_overwrites_its_input_or_foreign_files(tmp_path, tables):
    mydata = tmp_path / "mydata"
    mydata.mkdir()
    src = mydata / "part-00000.parquet"
    shutil.copy(tables / "audio" / "part-00000.parquet", src)
    before = src.read_bytes()
    refused(embridge("import", "--modality", "audio", "--embeddings", f"{src}:embedding", "--out", mydata), str(src), "input")
    refused(embridge("import", "--modality", "audio", "--embeddings", f"{src}:embedding", "--out", mydata, "--overwrite"),
            str(src), "input")
    assert src.read_bytes() == before and sorted(os.listdir(mydata)) == ["part-00000.parquet"]

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    refused(embridge("import", "--modality", "audio", "--embeddings", f"{src}:embedding", "--out", other),
            str(other), "notes.txt", "--overwrite")
    assert (other / "notes.txt").read_text() == "mine"


def test_11_bind_output_is_never_its_input(tables, tmp_path):
    before = {p: p.read_bytes() for p in tables.rglob("*.parquet")}
    refused(embridge("bind", "--features", tables, "--out", tables, "--method", "passthrough"), str(tables), "input")
    refused(embridge("bind", "--features", tables, "--out", tables / "audio", "--method", "passthrough"), "input")
    assert {p: p.read_bytes() for p in tables.rglob("*.parquet")} == before


def test_11_bind_per_seed_outputs_keep_foreign_files(tables, tmp_path):
    """With a budget (one bind per seed), each seed's <out>/seed-<s>/<m> is checked before any work."""
    params = tmp_path / "params.yaml"
    params.write_text("seeds: [0, 1]\ndevice: cpu\npairs: {train: [image-text, audio-text], pairs_per_class: 2}\n"
                      "bind: {epochs: 1}\nsweep: {pairs_per_class: [1], methods: [raw]}\n")
    ok(embridge("pairs", "--features", tables, "--params", params, "--out", tmp_path / "pairs"))
    mine = tmp_path / "unified" / "seed-1" / "audio"
    mine.mkdir(parents=True)
    (mine / "part-00000.parquet").write_text("mine")  # a user's file that a table writer would replace
    refused(embridge("bind", "--features", tables, "--budget", tmp_path / "pairs" / "2", "--params", params,
                     "--out", tmp_path / "unified"), str(mine), "part-00000.parquet")
    assert (mine / "part-00000.parquet").read_text() == "mine" and not (tmp_path / "unified" / "seed-0").exists()


def test_12_failed_reimport_keeps_the_previous_table(tables, tmp_path):
    files = export(tables / "audio", tmp_path / "src")
    out = tmp_path / "t"
    ok(reimport(files, "audio", out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    res = faulty("import embridge.store.writer as w, errno, os\n"
                 "def _full(*a, **k):\n    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\nw.write_shard = _full",
                 "import", "--modality", "audio", "--embeddings", files["emb"], "--out", out)
    refused(res, "No space left on device")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_13_paths_from_data_are_confined(tmp_path, tables):
    root = tmp_path / "root"
    for name in ("../../escaped", str(tmp_path / "abs")):
        refused(embridge("synth", "--out", root / "s", "--modalities", f"image,{name},text", "--n", 50, "--dim", 8,
                         "--latent-dim", 2), "modality name")
    assert not root.exists() and not (tmp_path / "escaped").exists() and not (tmp_path / "abs").exists()
    refused(embridge("import", "--modality", "../x", "--embeddings", tmp_path / "none.npy", "--out", tmp_path / "o"),
            "modality name")

    edit_manifest(tables / "text", lambda m: m["shards"][0].update(file="../audio/part-00000.parquet"))
    refused(embridge("validate", tables / "text"), MANIFEST, "../audio/part-00000.parquet")


# ----------------------------------------------------------------------------- crashes and resources


def test_14_output_paths_are_checked_before_any_work(tables, tmp_path):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    refused(embridge("fit", "--method", "procrustes", "--tables", tables, "--out", afile), str(afile))
    refused(embridge("evaluate", "--tables", tables, "--method", "raw", "--out", tables), str(tables))
    refused(embridge("import", "--modality", "a", "--embeddings", tmp_path / "none.npy", "--out", afile), str(afile))
    refused(embridge("synth", "--out", afile, "--n", 50, "--dim", 8, "--latent-dim", 2), str(afile))
    refused(embridge("report", "--metrics", tmp_path, "--out", afile), str(afile))
    assert afile.read_text() == "x"
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    refused(embridge("fit", "--method", "procrustes", "--tables", tables, "--out", folder), str(folder), "keep.txt")
    assert sorted(os.listdir(folder)) == ["keep.txt"]


def test_14_full_disk_is_one_error_line(tables, tmp_path):
    m = tmp_path / "map"
    ok(embridge("fit", "--method", "procrustes", "--tables", tables, "--out", m))
    ok(embridge("evaluate", "--tables", tables, "--map", m, "--out", tmp_path / "metrics" / "procrustes.json"))
    cases = [
        ("synth", "--out", tmp_path / "s", "--n", 50, "--dim", 8, "--latent-dim", 2),
        ("import", "--modality", "a", "--embeddings", export(tables / "audio", tmp_path / "src")["emb"], "--out", tmp_path / "i"),
        ("fit", "--method", "procrustes", "--tables", tables, "--out", tmp_path / "m2"),
        ("evaluate", "--tables", tables, "--map", m, "--out", tmp_path / "e.json"),
        ("report", "--metrics", tmp_path / "metrics", "--out", tmp_path / "r"),
    ]
    for args in cases:
        refused(faulty(DISK_FULL, *args), "No space left on device")
    assert not (tmp_path / "m2").exists() and not (tmp_path / "e.json").exists()


@pytest.mark.parametrize("text,needles", [
    ("seed: -1\n", ["seed = -1"]),
    ("seed: 1000000000000000000000000000000\n", ["seed = 1000000000000000000000000000000"]),
    ("fit: {procrustes: 5}\n", ["fit.procrustes", "5"]),
])
def test_14_bad_params_are_one_error_line(tables, tmp_path, text, needles):
    params = _params_text(tmp_path, text)
    refused(embridge("fit", "--method", "procrustes", "--tables", tables, "--params", params, "--out", tmp_path / "o"),
            str(params), *needles)


def test_14_bad_inputs_are_one_error_line(tables, tmp_path):
    mpath = edit_manifest(tables / "text", lambda m: m.update(class_names=5))
    refused(embridge("validate", tables / "text"), str(mpath), "class_names")

    emb = export(tables / "audio", tmp_path / "src")["emb"]
    refused(embridge("import", "--modality", "a", "--embeddings", emb, "--labels", tmp_path / "src" / "labels.npy",
                     "--class-names", tmp_path / "nope.txt", "--out", tmp_path / "o"), "nope.txt")
    refused(embridge("validate", tables / "audio", "--require-splits", "foo"), "--require-splits", "'foo'")

    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "x.json").write_text(json.dumps({"method": "x", "retrieval": [], "zeroshot": {}, "gap": {}}))
    refused(embridge("report", "--metrics", metrics, "--out", tmp_path / "r"), str(metrics / "x.json"), "retrieval")


def test_15_error_messages_are_capped(tables, tmp_path):
    lol = '["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'
    bomb = "seed:\n  - &a " + lol + "\n"  # a billion laughs in 475 bytes: 9**9 strings when quoted whole
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        bomb += f"  - &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
    params = _params_text(tmp_path, bomb)
    res = subprocess.run(["bash", "-c", f"ulimit -v 4000000; {' '.join(EMBRIDGE)} fit --method procrustes "
                          f"--tables {tables} --params {params} --out {tmp_path / 'o'}"],
                         capture_output=True, text=True, env=env(), timeout=300)
    err = refused(res, str(params), "seed")
    assert len(res.stderr) < 2000, len(res.stderr)
    assert len(err) < 1000

    emb = export(tables / "audio", tmp_path / "src")["emb"]
    labels = np.zeros(240, dtype=np.int64)
    labels[7] = 2**40
    np.save(tmp_path / "big.npy", labels)
    refused(embridge("import", "--modality", "a", "--embeddings", emb, "--labels", tmp_path / "big.npy", "--out", tmp_path / "o"),
            "row 7", str(2**40))


def test_16_float_in_exponent_notation_is_accepted(tables, tmp_path):
    params = _params_text(tmp_path, "fit:\n  cycle_mlp:\n    lr: 1e-3\n    epochs: 2\n")
    m = tmp_path / "map"
    ok(embridge("fit", "--method", "cycle_mlp", "--tables", tables, "--params", params, "--out", m))
    assert json.loads((m / "config.json").read_text())["params"]["lr"] == 0.001
    assert read_manifest(tables / "text").modality == "text"
