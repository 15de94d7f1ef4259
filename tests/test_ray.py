"""Ray executors (one module, one local Ray instance of 2 CPUs for all of them): evaluation's scan
split over Ray workers must give the single-process metrics."""

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")

from embridge.evaluation.distributed import RayScan  # noqa: E402
from embridge.evaluation.metrics import per_query  # noqa: E402
from embridge.evaluation.relevance import RowKeys  # noqa: E402
from embridge.evaluation.runner import EvaluateConfig, dumps, evaluate  # noqa: E402
from embridge.methods import get_method  # noqa: E402
from embridge.store.synth import SynthConfig, make_synthetic  # noqa: E402


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
