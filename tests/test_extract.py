"""The extract stage: offline, valid tables, byte-identical reruns, resume after an interruption, errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from embridge.config.schema import build_dataclass
from embridge.data import CLASS_NAMES, PrepareConfig, prepare
from embridge.encoders import ENCODERS
from embridge.encoders.runner import ExtractConfig, extract
from embridge.errors import ConfigError, InputError
from embridge.store import MANIFEST, read_manifest, read_table
from embridge.store.validate import validate_table

# one thread: in a pytest process that has run torch, sklearn and CTranslate2, several OpenMP
# runtimes share two cores and multi-threaded CTranslate2 can become several times slower
THREADS = 1
TINY = dict(
    images_per_class=3, espeak_languages=["en-us"], espeak_variants=["m1", "f3", "klatt"],
    espeak_rates=[170], espeak_pitches=[50], templates=["{word}", "the digit {digit}", "someone saying {word}"],
)


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("raw")
    prepare(PrepareConfig(**TINY), out, seed=0, log=lambda *_: None)
    return out


def shard_bytes(table_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(table_dir.iterdir())}


def test_extracts_all_modalities_offline(raw_dir, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network access attempted during extraction")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    expect = {"image": ("efficientnet-lite0", 1280, 30), "audio": ("whisper-tiny.en", 384, 30), "text": ("all-minilm-l6-v2", 384, 30)}
    cfg = ExtractConfig(options={"efficientnet-lite0": {"image_size": 64}})
    for modality, (encoder, dim, n) in expect.items():
        m = extract(modality, raw_dir, tmp_path / modality, cfg, progress=False)
        assert (m.encoder, m.dim, m.num_rows, m.class_names) == (encoder, dim, n, CLASS_NAMES)
        assert set(ENCODERS[encoder].packages) <= set(m.versions)
        assert validate_table(tmp_path / modality).num_rows == n
        t = read_table(tmp_path / modality)
        assert t.X.dtype == np.float32 and set(t.split) == {"train", "test"}
        assert np.array_equal(t.labels, np.tile(np.arange(10), 3)) or modality == "image"


def test_audio_stage_runs_without_torch_and_without_network(raw_dir, tmp_path):
    """`embridge extract --modality audio` in its own process: no torch import, sockets blocked."""
    code = (
        "import socket, sys\n"
        "def no_net(*a, **k): raise OSError('network access attempted')\n"
        "socket.socket.connect = no_net\n"
        f"sys.argv = ['embridge', 'extract', '--modality', 'audio', '--raw', {str(raw_dir)!r}, '--out', {str(tmp_path / 'audio')!r}, '--no-progress']\n"
        "from embridge.stages.cli import main\n"
        "main()\n"
        "assert 'torch' not in sys.modules, 'torch was imported in the audio process'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_PROXY") and not k.endswith("_proxy")}
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert validate_table(tmp_path / "audio").encoder == "whisper-tiny.en"


@pytest.mark.parametrize("modality", ["audio", "text", "image"])
def test_two_extractions_are_byte_identical(raw_dir, tmp_path, modality):
    cfg = ExtractConfig(rows_per_shard=8, batch_sizes={modality: 4}, threads=THREADS,
                        options={"efficientnet-lite0": {"image_size": 64}})
    extract(modality, raw_dir, tmp_path / "a", cfg, progress=False)
    extract(modality, raw_dir, tmp_path / "b", cfg, progress=False)
    a, b = shard_bytes(tmp_path / "a"), shard_bytes(tmp_path / "b")
    assert list(a) == [MANIFEST, "part-00000.parquet", "part-00001.parquet", "part-00002.parquet", "part-00003.parquet"]
    assert a == b


class Counter:
    """Wraps an encoder class's _encode: counts encoded rows, and can fail after some calls."""

    def __init__(self, monkeypatch, name, fail_after=None):
        self.rows, self.calls, self.fail_after = 0, 0, fail_after
        cls = ENCODERS[name]
        original = cls._encode

        def wrapped(enc, batch):
            if self.fail_after is not None and self.calls >= self.fail_after:
                raise KeyboardInterrupt
            self.calls += 1
            self.rows += len(batch)
            return original(enc, batch)

        monkeypatch.setattr(cls, "_encode", wrapped)


def test_resume_continues_from_the_first_missing_shard(raw_dir, tmp_path, monkeypatch):
    cfg = ExtractConfig(rows_per_shard=8, batch_sizes={"audio": 4}, threads=THREADS)  # 30 rows: shards of 8, 8, 8, 6
    full = tmp_path / "full"
    extract("audio", raw_dir, full, cfg, progress=False)

    # an interrupted run (after 5 batches = 2 whole shards + 1 batch) keeps whole shards, no manifest
    part = tmp_path / "part"
    Counter(monkeypatch, "whisper-tiny.en", fail_after=5)
    with pytest.raises(KeyboardInterrupt):
        extract("audio", raw_dir, part, cfg, progress=False)
    assert sorted(p.name for p in part.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    monkeypatch.undo()
    before = {p.name: p.stat().st_mtime_ns for p in part.iterdir()}
    counter = Counter(monkeypatch, "whisper-tiny.en")
    extract("audio", raw_dir, part, cfg, progress=False)
    assert counter.rows == 30 - 16  # continued from shard 2
    assert {n: (part / n).stat().st_mtime_ns for n in before} == before  # finished shards untouched
    assert shard_bytes(part) == shard_bytes(full)

    # delete the manifest and the last shard: the rerun rewrites only that shard, same bytes
    (full / MANIFEST).unlink()
    (full / "part-00003.parquet").unlink()
    counter.rows = 0
    extract("audio", raw_dir, full, cfg, progress=False)
    assert counter.rows == 6 and shard_bytes(full) == shard_bytes(part)

    # a different setting changes the fingerprint: every shard is encoded again
    counter.rows = 0
    extract("audio", raw_dir, full, ExtractConfig(rows_per_shard=8, batch_sizes={"audio": 8}, threads=THREADS), progress=False)
    assert counter.rows == 30
    assert read_manifest(full).extra["batch_size"] == 8


def test_stage_cli_with_params(raw_dir, tmp_path):
    from embridge.stages.extract import cli

    params = tmp_path / "params.yaml"
    params.write_text("seed: 0\nextract:\n  rows_per_shard: 16\n  batch_sizes: {text: 7}\n")
    res = CliRunner().invoke(cli, ["--modality", "text", "--raw", str(raw_dir), "--out", str(tmp_path / "text"),
                                   "--params", str(params), "--no-progress"])
    assert res.exit_code == 0, res.output
    m = validate_table(tmp_path / "text")
    assert [s.num_rows for s in m.shards] == [16, 14] and m.extra["batch_size"] == 7
    res = CliRunner().invoke(cli, ["--modality", "text", "--raw", str(tmp_path / "nowhere"), "--out", str(tmp_path / "t2")])
    assert isinstance(res.exception, InputError) and "nowhere" in str(res.exception)
    res = CliRunner().invoke(cli, ["--modality", "text", "--raw", str(raw_dir), "--out", str(tmp_path / "t3"),
                                   "--encoder", "whisper-tiny.en"])
    assert isinstance(res.exception, ConfigError) and "not 'text'" in str(res.exception)


@pytest.mark.parametrize(
    "section, match",
    [
        ({"rows_per_shard": 0}, "rows_per_shard"),
        ({"batch_sizes": {"video": "8"}}, "batch_sizes.video"),  # any modality name; a count
        ({"datasets": {"image": {"path": "x", "encoders": "clip"}}}, r"datasets.image: unknown key\(s\) \['encoders'\]"),
        ({"datasets": {"depth": {"path": "x"}}}, "modality 'depth' has no default encoder"),
        ({"datasets": {"photo": {"path": "x", "encoder": "clip"}}}, "name the tower with `kind`"),
        ({"precision": "fp8"}, "precision"),
        ({"on_error": "ignore"}, "on_error"),
        ({"batch_sizes": {"image": 0}}, "batch_sizes.image"),
        ({"threads": -1}, "threads"),
        ({"encoders": {"image": "resnet"}}, "resnet"),
        ({"options": {"efficientnet-lite0": {"img_size": 96}}}, "did you mean 'image_size'"),
        ({"options": {"whisper-tiny.en": {"compute_type": 3}}}, "compute_type"),
        ({"batchsize": 8}, "batch_sizes"),
    ],
)
def test_config_errors(section, match):
    with pytest.raises(ConfigError, match=match):
        build_dataclass(ExtractConfig, section, "params.yaml: extract")
