"""Counting-kernel benchmark: ns per score of `embridge.evaluation.counting.count_rows` (the compiled
kernel the fused scan counts with) against the scan's other paths on the same tile, in one run.

One tile of --rows x --width standard-normal scores, thresholds (relevant scores) drawn one standard
deviation higher, as in retrieval, for each --relevant count m; or, with --data (a folder of
`bench/eval.py`'s: xq.npy, xb.npy, lq.npy, lb.npy), the tile of its first --rows queries against
gallery rows [--width, 2 * --width), thresholds each query's same-class scores over the whole
gallery (class relevance, their entries in the tile masked to -inf, as in the scan); it then also
prints, per score, the thresholds it passes and the comparisons each kernel makes (`comparison_stats`).
Sides:
- kernel: as the scan runs it: rows of m <= counting.C_COMPARE_MAX thresholds in the AVX-512 C
  kernel where it is built and runs (`counting.USE_C`), the grid above; in C, rows of more than
  counting.C_TREE_MIN thresholds place each score in a tree of their thresholds, the others compare;
- C compare, C tree (where the C kernel runs): every row of the tile by comparisons, or in the tree;
- numba: the path without the C kernel: comparison rows (m <= counting.COMPARE_KERNEL_MAX) in
  numba, the grid above;
- numpy compare (`np.count_nonzero` per threshold, what the scan runs for m <= scan.COMPARE_MAX
  without numba) and numpy sort (each row sorted, thresholds found by binary search: the scan
  without numba); the numpy sides are the scan's own (`scan.count_at_or_above`, numba off).
Best of --repeat each, the sides interleaved; every result is checked against the others.

    python bench/counting.py
    python bench/counting.py --relevant 1 60 200 --repeat 5
    python bench/counting.py --data /tmp/embridge-bench-eval-d512-3000x60000
Prints a table; writes bench/results/counting.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from unittest import mock

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


def real_tile(data: Path, rows: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scores of the first `rows` queries against gallery rows [width, 2 * width) (S, their
    same-class entries -inf), and per query its same-class scores over the whole gallery, sorted
    (T, +inf padded) with their counts M."""
    from embridge.evaluation.relevance import RowKeys, relevance

    xq, xb = np.load(data / "xq.npy", mmap_mode="r")[:rows], np.load(data / "xb.npy", mmap_mode="r")
    lq, lb = np.load(data / "lq.npy")[:rows], np.load(data / "lb.npy")
    if len(xb) < 2 * width:
        raise SystemExit(f"{data}: {len(xb):,} gallery rows, fewer than 2 x --width = {2 * width:,}")
    full = np.asarray(xq, dtype=np.float32) @ np.asarray(xb, dtype=np.float32).T
    same = relevance(RowKeys(lq, np.full(rows, -1)), RowKeys(lb, np.full(len(lb), -1)))  # as bench/eval.py's labels
    M = same.sum(axis=1).astype(np.int64)
    T = np.full((rows, max(1, int(M.max()))), np.inf, dtype=np.float32)
    for i in range(rows):
        T[i, : M[i]] = np.sort(full[i][same[i]])
    S = np.ascontiguousarray(np.where(same, np.float32(-np.inf), full)[:, width : 2 * width])
    return S, T, M


def comparison_stats(S: np.ndarray, T: np.ndarray, M: np.ndarray, every: int) -> dict:
    """Per score of the tile, replayed in numpy: thresholds it is >= (the least any comparison
    counting could make), comparisons numba's passes make (every threshold below its chunk's
    maximum), and those the C kernel makes (compacting each 512-score chunk every `every`
    thresholds to the scores >= the next one), with the scores it compacts."""
    passed = numba = ours = compacted = 0
    for i in range(len(S)):
        Ti, row = T[i, : M[i]], S[i]
        passed += int(np.searchsorted(Ti, row, side="right").sum())
        for c0 in range(0, len(row), 512):
            cur = row[c0 : c0 + 512]
            jn = int(np.searchsorted(Ti, cur.max(), side="right"))
            numba += jn * len(cur)
            lo = 0
            while jn > lo:
                p = min(lo + every, jn)
                ours += len(cur) * (p - lo)
                if p >= jn:
                    break
                compacted += len(cur)
                cur, lo = cur[cur >= Ti[p]], p
    n = S.size
    return {"thresholds passed": passed / n, "numba comparisons": numba / n, "C comparisons": ours / n,
            "C scores compacted": compacted / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--relevant", type=int, nargs="+", default=[1, 4, 16, 60, 96, 97, 200])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--data", type=Path, help="a bench/eval.py data folder: its real tile and class thresholds")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "counting.json")
    args = ap.parse_args()

    from embridge.evaluation import counting, scan
    from threadpoolctl import threadpool_limits

    if not counting.HAVE_NUMBA:
        raise SystemExit("numba is not installed: the kernel cannot run")
    rng = np.random.default_rng(0)
    if args.data is None:
        S = rng.standard_normal((args.rows, args.width)).astype(np.float32)
    else:
        S, real_T, real_M = real_tile(args.data, args.rows, args.width)
    n = S.size

    def numpy_path(compare_max: int):
        """scan.count_at_or_above on its numpy paths (numba off): comparisons for m <= compare_max,
        else the row sort and binary searches."""

        def run(T, M):
            with mock.patch.multiple(scan, USE_NUMBA=False, COMPARE_MAX=compare_max):
                return scan.count_at_or_above(S, T, M)

        return run

    def kernel_path(use_c: bool, tree_min: int | None = None):
        tree_min = counting.C_TREE_MIN if tree_min is None else tree_min

        def run(T, M):
            with mock.patch.multiple(counting, USE_C=use_c, C_TREE_MIN=tree_min):
                out = np.zeros(T.shape, dtype=np.int64)
                counting.count_rows(S, T, M, out)
                return out

        return run

    rows = []
    with threadpool_limits(1):  # one thread, as each scan worker
        for m in [None] if args.data is not None else args.relevant:
            if m is None:  # the real tile: each row its own count
                T, M = real_T, real_M
                m = int(M.max())
            else:
                T = np.sort(rng.standard_normal((args.rows, m)).astype(np.float32) + 1, axis=1)
                M = np.full(args.rows, m, dtype=np.int64)
            sides = {"kernel": kernel_path(counting.USE_C), "numba": kernel_path(False),
                     "numpy compare": numpy_path(m), "numpy sort": numpy_path(0)}
            if counting.USE_C:
                sides.update({"C compare": kernel_path(True, 1 << 30), "C tree": kernel_path(True, 0)})
            results = {k: f(T, M) for k, f in sides.items()}  # warm (numba loads)
            ref = results["numpy sort"]
            for k, r in results.items():
                if not np.array_equal(r, ref):
                    raise SystemExit(f"m = {m}: {k} counts differ from the sort path's")
            best = dict.fromkeys(sides, float("inf"))
            for r in range(args.repeat):  # the order reversed every other repeat (the later side finds warmer caches)
                for k, f in list(sides.items())[:: 1 if r % 2 == 0 else -1]:
                    t = time.perf_counter()
                    f(T, M)
                    best[k] = min(best[k], time.perf_counter() - t)
            numba = "compare" if m <= counting.COMPARE_KERNEL_MAX else "grid"
            c_path = "tree" if float(M.mean()) > counting.C_TREE_MIN else "compare"
            path = f"{c_path}, C" if counting.USE_C and m <= counting.C_COMPARE_MAX else f"{numba}, numba"
            rows.append({"relevant": m if args.data is None else float(M.mean()), "path": path, "numba path": numba,
                         **{f"{k} ns/score": best[k] / n * 1e9 for k in sides}})
    where = "synthetic" if args.data is None else f"{args.data} (class relevance, m = per-row mean)"
    stats = None
    if args.data is not None:
        stats = comparison_stats(S, real_T, real_M, counting.COMPACT_EVERY)
        print("per score: " + ", ".join(f"{k} {v:.2f}" for k, v in stats.items()))
    print(f"tile {args.rows} x {args.width}, {where}, one thread, best of {args.repeat} ({cpu_name()})")
    print("| relevant m | kernel path | kernel ns/score | numba path | numba | numpy compare | numpy sort | numba / kernel "
          "| C compare | C tree | C compare / C tree |")
    print("|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        k, b = r["kernel ns/score"], r["numba ns/score"]
        c, s = r["numpy compare ns/score"], r["numpy sort ns/score"]
        cc, ct = r.get("C compare ns/score"), r.get("C tree ns/score")
        tail = f"| {cc:.2f} | {ct:.2f} | {cc / ct:.2f} |" if cc is not None else "| - | - | - |"
        print(f"| {r['relevant']:.4g} | {r['path']} | {k:.2f} | {r['numba path']} | {b:.2f} | {c:.2f} | {s:.2f} "
              f"| {b / k:.2f} " + tail)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpu": cpu_name(), "rows": args.rows, "width": args.width, "repeat": args.repeat,
                                    "data": None if args.data is None else str(args.data), "c_kernel": counting.USE_C,
                                    "compact_every": counting.COMPACT_EVERY, "tree_min": counting.C_TREE_MIN,
                                    "per_score": stats, "results": rows},
                                   indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
