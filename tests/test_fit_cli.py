"""`embridge fit` on a folder of tables: params.yaml globals + fit.<method>, flags override."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from embridge.errors import ConfigError
from embridge.methods import load_method
from embridge.stages.fit import cli
from embridge.store import load_tables

PARAMS = """seed: 4
device: cpu
anchor: text
pairs:
  train: [image-text, audio-text]
  pairs_per_class: 7
fit:
  procrustes: {center: false}
  emergentbridge: {epochs: 2, proxy_epochs: 2, hidden: 8}
"""


def run(args):
    return CliRunner().invoke(cli, args, catch_exceptions=True)


def test_fit_reads_params_and_writes_map(synth_dir, tmp_path):
    (tmp_path / "params.yaml").write_text(PARAMS)
    out = tmp_path / "maps" / "procrustes"
    res = run(["--method", "procrustes", "--tables", str(synth_dir), "--params", str(tmp_path / "params.yaml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["params"]["center"] is False and cfg["params"]["seed"] == 4 and cfg["params"]["pairs_per_class"] == 7
    assert cfg["anchor"] == "text" and cfg["dims"] == {"audio": 32, "image": 32, "text": 32}
    assert (out / "state.safetensors").is_file()
    m = load_method(out)
    X = load_tables(synth_dir)["audio"].X[:5]
    assert m.transform(X, "audio").shape == (5, 32)


def test_flags_override_params(synth_dir, tmp_path):
    (tmp_path / "params.yaml").write_text(PARAMS)
    out = tmp_path / "eb"
    res = run(["--method", "emergentbridge", "--tables", str(synth_dir), "--params", str(tmp_path / "params.yaml"),
               "--seed", "9", "--pairs", "image-text,audio-text", "--pairs-per-class", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["params"]["seed"] == 9 and cfg["params"]["pairs_per_class"] == 3 and cfg["params"]["epochs"] == 2


def test_fit_without_params_file(synth_dir, tmp_path):
    res = run(["--method", "cca", "--tables", str(synth_dir), "--anchor", "text", "--pairs", "image-text,audio-text",
               "--out", str(tmp_path / "cca")])
    assert res.exit_code == 0, res.output
    m = load_method(tmp_path / "cca")
    assert np.all(np.diff(m.correlations_["image"]) <= 1e-12)


def test_unknown_key_in_fit_block(synth_dir, tmp_path):
    (tmp_path / "params.yaml").write_text(PARAMS.replace("center: false", "centre: false"))
    res = run(["--method", "procrustes", "--tables", str(synth_dir), "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "x")])
    assert isinstance(res.exception, ConfigError) and "centre" in str(res.exception)


@pytest.mark.parametrize("pairs,match", [("image-depth", "depth"), ("image", "two modality names")])
def test_bad_pairs(synth_dir, tmp_path, pairs, match):
    res = run(["--method", "linear", "--tables", str(synth_dir), "--pairs", pairs, "--out", str(tmp_path / "x")])
    assert isinstance(res.exception, ConfigError) and match in str(res.exception)


def test_unknown_method(synth_dir, tmp_path):
    res = run(["--method", "nope", "--tables", str(synth_dir), "--out", str(tmp_path / "x")])
    assert isinstance(res.exception, ConfigError) and "procrustes" in str(res.exception)
