"""Ray benchmark, evaluation: the full retrieval metric set with the local scan against the same scan
split over 1 and 2 Ray workers (query blocks), in one run, on one local Ray instance.

Prints wall time, speed-up over local and scaling efficiency (speed-up / workers). On a 2-core
machine the local scan already uses both cores (one BLAS thread per core), so this measures the
overhead of Ray (object store transfer of the gallery, task start-up), not a gain: the gain needs
more cores or more machines than one scan can use.

    python bench/ray_eval.py                       # 20k queries x 60k gallery x 256, class relevance
    python bench/ray_eval.py --nq 5000 --nb 20000  # quicker
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np


def data(nq: int, nb: int, d: int, classes: int, seed: int):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, d)).astype(np.float32)
    lq, lb = rng.integers(0, classes, nq), rng.integers(0, classes, nb)
    xq = centers[lq] + 1.5 * rng.standard_normal((nq, d)).astype(np.float32)
    xb = centers[lb] + 1.5 * rng.standard_normal((nb, d)).astype(np.float32)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    return xq, xb, lq.astype(np.int64), lb.astype(np.int64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nq", type=int, default=20_000)
    ap.add_argument("--nb", type=int, default=60_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2, help="best of this many runs per executor")
    args = ap.parse_args()

    import ray
    from embridge.evaluation.distributed import RayScan
    from embridge.evaluation.metrics import retrieval_metrics
    from embridge.evaluation.relevance import RowKeys

    xq, xb, lq, lb = data(args.nq, args.nb, args.dim, args.classes, 0)
    q, b = RowKeys(lq, np.full(len(lq), -1)), RowKeys(lb, np.full(len(lb), -1))
    cpus = os.cpu_count() or 1
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    runs = {"local": None, "ray, 1 worker": RayScan(workers=1), "ray, 2 workers": RayScan(workers=2)}
    best, metrics = {}, {}
    for _ in range(args.repeat):  # interleaved, so a busy moment hits every executor alike
        for name, scan in runs.items():
            t = time.perf_counter()
            metrics[name] = retrieval_metrics(xq, xb, q, b, scan=scan)
            best[name] = min(best.get(name, np.inf), time.perf_counter() - t)
    ray.shutdown()
    same = all(metrics[n] == metrics["local"] for n in runs)
    print(f"evaluation {args.nq} x {args.nb} x {args.dim}, {args.classes} classes, {cpus} cores, best of {args.repeat}")
    print("| executor | wall s | speed-up vs local | scaling efficiency |")
    print("|---|---:|---:|---:|")
    for name in runs:
        workers = 1 if name == "local" else int(name.split(", ")[1].split()[0])
        s = best["local"] / best[name]
        print(f"| {name} | {best[name]:.2f} | {s:.2f}x | {s / workers:.2f} |")
    print(f"metrics identical across executors: {same}")


if __name__ == "__main__":
    main()
