"""Ray executors (one module, one local Ray instance of 2 CPUs for all of them): evaluation's scan
split over Ray workers must give the single-process metrics; extraction on Ray actors must write
the local executor's table byte for byte, resume after its driver is killed, and survive a killed
worker."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")

from embridge.encoders import ENCODERS, register  # noqa: E402
from embridge.encoders.minilm import MiniLML6  # noqa: E402
from embridge.encoders.runner import ExtractConfig, extract  # noqa: E402
from embridge.encoders.shards import shard_path, shard_status  # noqa: E402
from embridge.errors import ConfigError, InputError  # noqa: E402
from embridge.evaluation.distributed import RayScan  # noqa: E402
from embridge.evaluation.metrics import per_query  # noqa: E402
from embridge.evaluation.relevance import RowKeys  # noqa: E402
from embridge.evaluation.runner import EvaluateConfig, dumps, evaluate  # noqa: E402
from embridge.methods import get_method  # noqa: E402
from embridge.store import MANIFEST, read_manifest, read_table  # noqa: E402
from embridge.store.synth import SynthConfig, make_synthetic  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _keys(rng, n, classes, pair_share, pair_ids):
    return RowKeys(rng.integers(0, classes, n).astype(np.int64),
                   np.where(rng.random(n) < pair_share, rng.integers(0, pair_ids, n), -1).astype(np.int64))


def _unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("split", ["queries", "gallery"])
def test_ray_scan_equals_local_scan(cluster, split):
    """Every per-query output of the Ray scan equals the fused single-process scan: ranks, relevant
    counts and top-k ids exactly, AP and scores to float rounding."""
    rng = np.random.default_rng(7)
    xq, xb = _unit(rng, 1500, 32), _unit(rng, 2500, 32)
    q, b = _keys(rng, 1500, 10, 0.3, 400), _keys(rng, 2500, 10, 0.3, 400)
    ref = per_query(xq, xb, q, b, kmax=10)
    got = RayScan(split=split, workers=2).per_query(xq, xb, q, b, kmax=10)
    np.testing.assert_array_equal(got["rank"], ref["rank"])
    np.testing.assert_array_equal(got["m"], ref["m"])
    np.testing.assert_array_equal(got["I"], ref["I"])
    np.testing.assert_allclose(got["ap"], ref["ap"], atol=1e-5, equal_nan=True)
    np.testing.assert_allclose(got["D"], ref["D"], atol=1e-6)


def test_gallery_split_ties_count_against_the_query(cluster):
    """Duplicate gallery rows, one relevant copy and one not: the pessimistic rule puts the relevant
    copy second (R@1 0, MRR 0.5, AP 0.5) with the gallery split across two workers."""
    rng = np.random.default_rng(3)
    base = _unit(rng, 40, 16)
    xb = np.concatenate([base, base])  # row i and row 40 + i are identical
    b = RowKeys(np.r_[np.arange(40), np.arange(40) + 1000].astype(np.int64), np.full(80, -1, np.int64))
    q = RowKeys(np.arange(40, dtype=np.int64), np.full(40, -1, np.int64))
    got = RayScan(split="gallery", workers=2).per_query(base, xb, q, b, kmax=5)
    np.testing.assert_array_equal(got["rank"], np.full(40, 2.0))
    np.testing.assert_allclose(got["ap"], np.full(40, 0.5))


def test_evaluate_with_ray_executor_equals_local(cluster):
    """`evaluate.executor: ray` on a synthetic table of 20k x 20k test rows writes the same metrics
    (every written decimal) as the local scan."""
    tables, _ = make_synthetic(SynthConfig(modalities=["image", "text"], anchor="text", n=26_000,
                                           test_fraction=0.8, dim=32, latent_dim=8, seed=1))
    assert all(int((t.split == "test").sum()) >= 20_000 for t in tables.values())
    method = get_method("raw").fit(tables, "text", [("image", "text")])
    local = evaluate(tables, method, [("image", "text")], EvaluateConfig())
    remote = evaluate(tables, method, [("image", "text")], EvaluateConfig(executor="ray", ray_workers=2))
    assert dumps(remote["retrieval"]) == dumps(local["retrieval"])
    assert remote["retrieval"]["image->text"]["queries"] >= 20_000


# ----------------------------------------------------------------------------- extraction

WORDS = "zero one two three four five six seven eight nine".split()
ROWS, PER_SHARD = 40, 8  # 5 shards


class SlowMiniLM(MiniLML6):
    """The real MiniLM, slowed down (so that a driver can be killed between two shards), and able to
    kill its own worker process the first time it meets row KILL_AT (once: a marker file)."""

    name = "test-slow-minilm"
    delay = 0.0
    kill_marker: str | None = None
    kill_text = "sentence 16 about the digit six"  # the first row of shard 2

    def _encode(self, texts):
        if self.kill_marker and self.kill_text in texts and not os.path.exists(self.kill_marker):
            Path(self.kill_marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)  # this worker dies mid-shard
        time.sleep(self.delay)
        return super()._encode(texts)


@pytest.fixture(scope="module")
def slow_encoder():
    """Registered here only; shipped to the Ray workers by value (they cannot import tests/)."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    register(SlowMiniLM)
    yield SlowMiniLM
    ENCODERS.pop(SlowMiniLM.name, None)
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def texts_csv(tmp_path_factory):
    """40 texts with labels, pair ids and splits: 5 shards of 8 rows."""
    path = tmp_path_factory.mktemp("texts") / "texts.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "text", "label", "pair_id", "split"])
        w.writeheader()
        for i in range(ROWS):
            w.writerow({"id": f"t{i}", "text": f"sentence {i} about the digit {WORDS[i % 10]}", "label": WORDS[i % 10],
                        "pair_id": f"p{i}", "split": "test" if i % 5 == 0 else "train"})
    return path


def _cfg(**kw) -> ExtractConfig:
    return ExtractConfig(**{"rows_per_shard": PER_SHARD, "batch_sizes": {"text": 4}, "threads": 1, **kw})


def table_files(table_dir: Path) -> dict[str, bytes]:
    """Every file of a table (shards and manifest) by name; temp files would show up too."""
    return {p.name: p.read_bytes() for p in sorted(Path(table_dir).iterdir())}


def assert_same_table(got: Path, ref: Path) -> None:
    a, b = read_table(got), read_table(ref)
    np.testing.assert_array_equal(a.X, b.X)
    for col in ("id", "label", "pair_id", "split"):
        assert a.meta[col].to_list() == b.meta[col].to_list(), col
    assert table_files(got) == table_files(ref)  # every Parquet byte (fingerprints included) and the manifest


@pytest.fixture(scope="module")
def local_table(texts_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "text"
    extract("text", texts_csv, out, _cfg(), progress=False)
    return out


def test_extract_on_ray_is_byte_identical_to_local(cluster, texts_csv, local_table, tmp_path):
    lines = []
    out = tmp_path / "text"
    m = extract("text", texts_csv, out, _cfg(executor="ray", ray_workers=2), progress=False, log=lines.append)
    assert m.num_rows == ROWS and len(m.shards) == ROWS // PER_SHARD
    assert any("5 shard(s) to encode on 2 Ray actor(s)" in x for x in lines), lines
    assert_same_table(out, local_table)
    # a rerun finds every shard done: nothing goes to Ray
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    lines.clear()
    extract("text", texts_csv, out, _cfg(executor="ray"), progress=False, log=lines.append)
    assert lines == ["text: resuming, 5 of 5 shard(s) already encoded"]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")} == before
    assert_same_table(out, local_table)


def _driver(args: list[str], cwd: Path) -> subprocess.Popen:
    """`embridge extract` in a child process (its own session: its local Ray instance dies with it),
    with the test encoder registered, 0.5 s per batch."""
    code = ("import sys\n"
            f"sys.path.insert(0, {str(REPO)!r})\n"
            "from tests import test_ray as t\n"
            "import ray, embridge.encoders as e\n"
            "ray.cloudpickle.register_pickle_by_value(t)\n"
            "t.SlowMiniLM.delay = 0.5\n"
            "e.register(t.SlowMiniLM)\n"
            f"sys.argv = ['embridge', 'extract', *{args!r}]\n"
            "from embridge.stages.cli import main\n"
            "main()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # never the test's cluster
    return subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _session_alive(sid: int) -> list[int]:
    """Processes still in session `sid` (the killed driver's Ray processes, if any survived)."""
    alive = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.getsid(int(d.name)) == sid:
                    alive.append(int(d.name))
            except OSError:
                pass
    return alive


def test_driver_sigkill_then_rerun_resumes(slow_encoder, texts_csv, tmp_path):
    """SIGKILL of the driver after its first shard; the rerun schedules only the missing shards and
    ends with the table an uninterrupted local run writes. No shard under its final name is ever partial."""
    ref = tmp_path / "local"
    extract("text", texts_csv, ref, _cfg(batch_sizes={"text": 8}, encoders={"text": SlowMiniLM.name}), progress=False)
    out = tmp_path / "ray"
    args = ["--modality", "text", "--dataset", str(texts_csv), "--out", str(out), "--encoder", SlowMiniLM.name,
            "--params", str(tmp_path / "params.yaml"), "--no-progress", "--executor", "ray", "--ray-workers", "1"]
    (tmp_path / "params.yaml").write_text(f"extract:\n  rows_per_shard: {PER_SHARD}\n  threads: 1\n  batch_sizes: {{text: 8}}\n")
    plan_of = lambda: read_manifest(ref).extra  # noqa: E731
    proc = _driver(args, tmp_path)
    seen = {}
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("part-*.parquet")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray instance it started
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 30
    while _session_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _session_alive(proc.pid), "the killed driver left Ray processes behind"
    shards = sorted(out.glob("part-*.parquet"))
    assert 1 <= len(shards) < ROWS // PER_SHARD and not (out / MANIFEST).exists()
    from embridge.encoders.shards import ShardPlan

    extra = plan_of()
    plan = ShardPlan(ROWS, PER_SHARD, 8, extra["fingerprint"])
    for p in shards:  # every file under a final name is a whole shard of this plan
        k = int(p.stem.split("-")[1])
        seen[p.name] = p.stat().st_mtime_ns
        assert shard_status(shard_path(out, k), plan, k) == (PER_SHARD, [])
    proc = _driver(args[:-2] + ["--ray-workers", "2"], tmp_path)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    n = len(seen)
    assert f"text: resuming, {n} of 5 shard(s) already encoded" in stdout, stdout
    assert f"text: {5 - n} shard(s) to encode on" in stdout, stdout
    assert {name: (out / name).stat().st_mtime_ns for name in seen} == seen  # kept shards untouched
    assert_same_table(out, ref)


def test_killed_worker_is_retried(cluster, slow_encoder, texts_csv, tmp_path, monkeypatch):
    """A worker SIGKILLs itself in the middle of shard 2 (once); Ray restarts its actor and reruns
    the shard; the table equals the local run of the same encoder without the kill."""
    cfg = lambda **kw: _cfg(encoders={"text": SlowMiniLM.name}, **kw)  # noqa: E731
    ref = tmp_path / "local"
    extract("text", texts_csv, ref, cfg(), progress=False)
    marker = tmp_path / "killed"
    monkeypatch.setattr(SlowMiniLM, "kill_marker", str(marker))
    out = tmp_path / "ray"
    extract("text", texts_csv, out, cfg(executor="ray", ray_workers=2), progress=False)
    assert marker.exists()  # the kill happened, and the run still finished
    assert_same_table(out, ref)


class PidMiniLM(MiniLML6):
    """An encoder whose settings depend on the process: a worker's differ from the driver's."""

    name = "test-pid-minilm"

    def config(self):
        return {"pid": os.getpid()}


def test_worker_with_another_encoder_is_refused(cluster, slow_encoder, texts_csv, tmp_path):
    """A node that would load the encoder otherwise than the driver fingerprinted it (device auto
    resolved elsewhere, other package versions) stops the run before writing a shard."""
    register(PidMiniLM)
    try:
        with pytest.raises(ConfigError, match=r"differs from the driver's \(encoder_config.pid: "):
            extract("text", texts_csv, tmp_path / "t", _cfg(encoders={"text": PidMiniLM.name}, executor="ray"), progress=False)
    finally:
        ENCODERS.pop(PidMiniLM.name, None)
    assert not list((tmp_path / "t").glob("part-*"))


def test_worker_errors_read_as_local_ones(cluster, tmp_path):
    """A missing file with on_error stop: the same error (file, row) from a Ray actor as from a local
    run, an EmbridgeError the CLI prints on one line, not a RayTaskError."""
    from PIL import Image

    rows = []
    (tmp_path / "img").mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        if i != 9:
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(tmp_path / "img" / f"{i}.png")
        rows.append({"path": f"img/{i}.png", "label": WORDS[i % 2]})
    with open(tmp_path / "images.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label"])
        w.writeheader()
        w.writerows(rows)
    cfg = lambda **kw: ExtractConfig(rows_per_shard=4, batch_sizes={"image": 4}, threads=1,  # noqa: E731
                                     options={"efficientnet-lite0": {"image_size": 32}}, **kw)
    with pytest.raises(InputError) as local:
        extract("image", tmp_path / "images.csv", tmp_path / "a", cfg(), progress=False)
    with pytest.raises(InputError) as remote:
        extract("image", tmp_path / "images.csv", tmp_path / "b", cfg(executor="ray", ray_workers=2), progress=False)
    assert type(remote.value) is type(local.value)
    assert str(remote.value) == str(local.value)
    assert "img/9.png" in str(remote.value) and "row 9" in str(remote.value)
    assert not (tmp_path / "b" / MANIFEST).exists()


def test_ray_config_errors(tmp_path, monkeypatch, texts_csv):
    """Bad Ray settings are one-line errors: an unreachable address, a bad count, Ray not installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    res = subprocess.run([sys.executable, "-m", "embridge.stages.cli", "extract", "--modality", "text", "--dataset", str(texts_csv),
                          "--out", str(tmp_path / "t"), "--no-progress", "--executor", "ray", "--ray-address", "127.0.0.1:1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "error: ray: cannot reach a Ray cluster at 127.0.0.1:1" in res.stderr
    with pytest.raises(ConfigError, match="ray_workers"):
        _cfg(executor="ray", ray_workers=-1).check()
    with pytest.raises(ConfigError, match="executor"):
        _cfg(executor="dask").check()
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
    with pytest.raises(ConfigError, match="pip install"):
        _cfg(executor="ray").check()


def test_actor_options_never_exceed_the_cluster():
    """More actors than the cluster can place would leave their shards waiting forever."""
    from embridge.encoders.distributed import actor_options

    assert actor_options(2, 0, 0) == (2, {"num_cpus": 1})
    assert actor_options(2, 0, 4) == (2, {"num_cpus": 1})
    assert actor_options(2, 0, 1) == (1, {"num_cpus": 2})
    assert actor_options(16, 2, 0) == (2, {"num_gpus": 1, "num_cpus": 8})
    assert actor_options(16, 2, 8) == (2, {"num_gpus": 1, "num_cpus": 8})
