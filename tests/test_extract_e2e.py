"""End to end with the real `dvc repro` on a user's dataset of real files (PNG, WAV, CSV, ImageFolder),
set up by editing params.yaml only (`extract.datasets`): once with a tiny CLIP saved locally for
image and text through bind passthrough, once with the built-in encoders on the same files; and
examples/own-data's dvc.yaml and params.yaml in a project that holds nothing of embridge's source."""

from __future__ import annotations

import json
import shutil

import pytest
from embridge.data import CLASS_NAMES
from embridge.store import read_table
from embridge.store.validate import validate_table

from tests.pipeline_repo import dvc, git, make_example_repo, make_repo, stages_run
from tests.tiny_models import tiny_clip
from tests.user_data import build

pytestmark = pytest.mark.slow
pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")


def user_repo(tmp_path, overrides) -> Path:  # noqa: F821
    repo = make_repo(tmp_path / "repo", overrides)
    data = build(tmp_path / "src")
    for name in ("images", "folder", "fsdd"):
        shutil.copytree(tmp_path / "src" / name, repo / "userdata" / name)
    for name in ("images.csv", "audio.csv", "texts.csv", "texts_plain.csv"):
        shutil.copy(tmp_path / "src" / name, repo / "userdata" / name)
    git("add", "userdata", cwd=repo)
    git("commit", "-q", "-m", "user data", cwd=repo)
    return repo, data


def test_repro_on_user_files_with_a_local_tiny_clip_and_passthrough(tmp_path):
    clip = tiny_clip(tmp_path / "models" / "clip")
    overrides = {
        "modalities": ["image", "text"],
        "pairs": {"train": ["image-text"], "pairs_per_class": 2},
        "extract": {"class_names": CLASS_NAMES, "datasets": {
            "image": {"path": "userdata/images.csv", "encoder": "clip", "model": str(clip)},
            "text": {"path": "userdata/texts.csv", "encoder": "clip", "model": str(clip)}}},
        "bind": {"method": "passthrough"},
        "methods": ["raw", "procrustes"],
        "sweep": {"pairs_per_class": [1], "methods": ["raw", "procrustes"]},
    }
    repo, _ = user_repo(tmp_path, overrides)
    res = dvc("repro", cwd=repo)
    ran = stages_run(res.stdout)
    assert {"extract@image", "extract@text", "bind", "fit@raw", "evaluate@procrustes", "report"} <= ran
    for m in ("image", "text"):
        t = validate_table(repo / "features" / m)
        assert (t.encoder, t.dim) == ("clip", 16)
    img = read_table(repo / "features" / "image")
    assert img.meta["pair_id"][0] == "p0" and set(img.split) == {"train", "test"}
    metrics = json.loads((repo / "metrics" / "procrustes.json").read_text())
    assert metrics["retrieval"]["image->text"]["paired"] is True
    assert 0 <= metrics["retrieval"]["image->text"]["R@1"] <= 1
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "results", cwd=repo)
    assert stages_run(dvc("repro", cwd=repo).stdout) == set()  # nothing reruns


def test_repro_on_user_files_with_the_builtin_encoders(tmp_path):
    overrides = {"extract": {"class_names": CLASS_NAMES, "val_fraction": 0.25, "datasets": {
        "image": {"path": "userdata/folder"}, "audio": {"path": "userdata/fsdd"}, "text": {"path": "userdata/texts_plain.csv"}}}}
    repo, data = user_repo(tmp_path, overrides)
    dvc("repro", cwd=repo)
    expect = {"image": ("efficientnet-lite0", 30), "audio": ("whisper-tiny.en", 30), "text": ("all-minilm-l6-v2", 30)}
    for m, (encoder, n) in expect.items():
        t = validate_table(repo / "features" / m)
        assert (t.encoder, t.num_rows) == (encoder, n) and read_table(repo / "features" / m).manifest.extra["dataset"].startswith("userdata")
    metrics = json.loads((repo / "metrics" / "emergentbridge.json").read_text())
    assert metrics["retrieval"]["audio->image"]["paired"] is False


def test_examples_own_data_pipeline_in_a_users_project(tmp_path):
    """The README's recipe for examples/own-data: copy its dvc.yaml and params.yaml into a new project,
    put the files under mydata/, point extract.datasets at them, dvc repro. A changed file reruns
    only its modality's extraction and what depends on it."""
    clip = tiny_clip(tmp_path / "models" / "clip")
    build(tmp_path / "src")
    overrides = {
        "seeds": [0], "device": "cpu",
        "extract": {"class_names": CLASS_NAMES, "val_fraction": 0.0, "device": "cpu", "datasets": {
            "image": {"path": "mydata/images.csv", "encoder": "clip", "model": str(clip)},
            "text": {"path": "mydata/texts.csv", "encoder": "clip", "model": str(clip)}}},
        "evaluate": {"bootstrap": 50},
        "tune": {"cca": {"ridge": [0.01]}, "linear": {"alpha": [0.01]}},  # the CSVs bring their train/test split, no val
        "sweep": {"pairs_per_class": [1], "methods": ["raw", "procrustes"]},
    }
    repo = make_example_repo(tmp_path / "project", overrides)
    for name in ("images", "images.csv", "texts.csv"):
        src = tmp_path / "src" / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, repo / "mydata" / name)
    assert not (repo / "pipeline").exists() and not (repo / "stages").exists()
    ran = stages_run(dvc("repro", cwd=repo).stdout)
    assert ran == {"extract@image", "extract@text", "pairs", "bind", "sweep@1", "report",
                   *(f"{s}@{m}" for s in ("fit", "evaluate") for m in ("raw", "collapse", "procrustes", "cca", "linear"))}
    for m in ("image", "text"):
        assert validate_table(repo / "features" / m).encoder == "clip"
    metrics = json.loads((repo / "metrics" / "procrustes.json").read_text())
    assert metrics["retrieval"]["image->text"]["paired"] is True
    assert json.loads((repo / "live" / "fit" / "raw" / "metrics.json").read_text()) == {}
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "results", cwd=repo)
    assert stages_run(dvc("repro", cwd=repo).stdout) == set()
    n_text = len(read_table(repo / "features" / "text").ids)
    with open(repo / "mydata" / "texts.csv", "a") as f:  # one more caption: the extractions rerun (they share mydata/)
        f.write("extra-0,a handwritten seven,seven,test,\n")
    ran = stages_run(dvc("repro", cwd=repo).stdout)
    assert {"extract@text", "report"} <= ran and len(read_table(repo / "features" / "text").ids) == n_text + 1
