"""Counting-kernel benchmark: ns per score of `embridge.evaluation.counting.count_rows` (the compiled
kernel the fused scan counts with) against the scan's numpy paths on the same tile, in one run.

One tile of --rows x --width standard-normal scores, thresholds (relevant scores) drawn one standard
deviation higher, as in retrieval, for each --relevant count m: the kernel (comparison passes for
m <= counting.COMPARE_KERNEL_MAX, the grid above), the numpy comparison path (`np.count_nonzero`
per threshold, what the scan runs for m <= scan.COMPARE_MAX) and the numpy sort path (each row
sorted, thresholds found by binary search: the scan without numba). Best of --repeat each, the
sides interleaved; every result is checked against the others. The numpy sides are the scan's own
(`scan.count_at_or_above` with numba switched off).

    python bench/counting.py
    python bench/counting.py --relevant 1 60 200 --repeat 5
Prints a table; writes bench/results/counting.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--relevant", type=int, nargs="+", default=[1, 4, 16, 60, 96, 97, 200])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "counting.json")
    args = ap.parse_args()

    from embridge.evaluation import counting, scan
    from threadpoolctl import threadpool_limits

    if not counting.HAVE_NUMBA:
        raise SystemExit("numba is not installed: the kernel cannot run")
    rng = np.random.default_rng(0)
    S = rng.standard_normal((args.rows, args.width)).astype(np.float32)
    n = S.size

    def numpy_path(compare_max: int):
        """scan.count_at_or_above on its numpy paths (numba off): comparisons for m <= compare_max,
        else the row sort and binary searches."""

        def run(T, M):
            saved = scan.USE_NUMBA, scan.COMPARE_MAX
            scan.USE_NUMBA, scan.COMPARE_MAX = False, compare_max
            try:
                return scan.count_at_or_above(S, T, M)
            finally:
                scan.USE_NUMBA, scan.COMPARE_MAX = saved

        return run

    def kernel(T, M):
        out = np.zeros(T.shape, dtype=np.int64)
        counting.count_rows(S, T, M, out)
        return out

    rows = []
    with threadpool_limits(1):  # one thread, as each scan worker
        for m in args.relevant:
            T = np.sort(rng.standard_normal((args.rows, m)).astype(np.float32) + 1, axis=1)
            M = np.full(args.rows, m, dtype=np.int64)
            sides = {"kernel": kernel, "numpy compare": numpy_path(m), "numpy sort": numpy_path(0)}
            results = {k: f(T, M) for k, f in sides.items()}  # warm (numba loads)
            ref = results["numpy sort"]
            for k, r in results.items():
                if not np.array_equal(r, ref):
                    raise SystemExit(f"m = {m}: {k} counts differ from the sort path's")
            best = dict.fromkeys(sides, float("inf"))
            for _ in range(args.repeat):
                for k, f in sides.items():
                    t = time.perf_counter()
                    f(T, M)
                    best[k] = min(best[k], time.perf_counter() - t)
            rows.append({"relevant": m, "path": "compare" if m <= counting.COMPARE_KERNEL_MAX else "grid",
                         **{f"{k} ns/score": best[k] / n * 1e9 for k in sides}})
    print(f"tile {args.rows} x {args.width}, one thread, best of {args.repeat} ({cpu_name()})")
    print("| relevant m | kernel path | kernel ns/score | numpy compare | numpy sort | best numpy / kernel |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in rows:
        k, c, s = r["kernel ns/score"], r["numpy compare ns/score"], r["numpy sort ns/score"]
        print(f"| {r['relevant']} | {r['path']} | {k:.2f} | {c:.2f} | {s:.2f} | {min(c, s) / k:.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpu": cpu_name(), "rows": args.rows, "width": args.width, "repeat": args.repeat,
                                    "results": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
