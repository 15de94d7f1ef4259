"""Row-pass benchmark: `embridge.rows`'s C passes against their numpy versions, in one run.

For a --rows x --dim float32 table (the training commands normalize every table they read, and check
every table for NaN/Inf and zero rows; `evaluate` checks its queries and gallery inside the timed scan):
- l2_normalize: rows / their float64 norm, as float32 (`embridge.methods.base.l2_normalize`);
- collapse: C^3's collapse, normalize - mean, re-normalized (`embridge.methods.c3.collapse_rows`);
- bad_rows: the NaN/Inf and all-zero rows (`embridge.store.checks.bad_rows`).
Each side with `rows.USE_C` on (the C kernel where built) and off (numpy's passes, the code before
the kernel), on the row threads the functions use, with freed memory kept as `embridge fit` keeps it
(embridge.config.malloc). The two sides' results are compared bit for bit first. Best of --repeat
rounds of --calls calls each, the sides interleaved.

    python bench/rows.py
Prints a table of ms per call and the ratio C / numpy; writes bench/results/rows.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from counting import cpu_name  # bench/counting.py, beside this script
from embridge import rows
from embridge.config.malloc import keep_freed_memory
from embridge.methods.base import ROW_THREADS, l2_normalize
from embridge.methods.c3 import collapse_rows, modality_mean
from embridge.store.checks import bad_rows
from noise import ms_per_call, switched  # bench/noise.py, beside this script

HERE = Path(__file__).resolve().parent


def with_c(use_c: bool, fn):
    return switched(rows, "USE_C", use_c, fn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "rows.json")
    args = ap.parse_args()
    if not rows.USE_C:
        raise SystemExit("embridge._rowsc is not built here: nothing to compare")
    keep_freed_memory()
    X = np.random.default_rng(0).standard_normal((args.rows, args.dim)).astype(np.float32)
    mean = modality_mean(X)
    ops = {"l2_normalize": lambda: l2_normalize(X), "collapse": lambda: collapse_rows(X, mean, True),
           "bad_rows": lambda: bad_rows(X)}
    for op, fn in ops.items():
        c, py = with_c(True, fn)(), with_c(False, fn)()
        same = (all(np.array_equal(a, b) for a, b in zip(c, py, strict=True)) if op == "bad_rows"
                else c.tobytes() == py.tobytes())
        if not same:
            raise SystemExit(f"{op}: the C and numpy results differ")
    res = {"rows": args.rows, "dim": args.dim, "row_threads": ROW_THREADS, "cpu": cpu_name(), "ops": {}}
    print(f"{args.rows:,} x {args.dim} float32, ms a call (best of {args.repeat} x {args.calls}), "
          f"{ROW_THREADS} row threads; C and numpy give the same bits")
    print("| op | C | numpy | C / numpy |\n|---|---:|---:|---:|")
    for op, fn in ops.items():
        times = {"c": float("inf"), "numpy": float("inf")}
        for _ in range(args.repeat):  # interleaved rounds
            for side in times:
                times[side] = min(times[side], ms_per_call(with_c(side == "c", fn), args.calls))
        res["ops"][op] = {**times, "ratio": times["c"] / times["numpy"]}
        print(f"| {op} | {times['c']:.1f} | {times['numpy']:.1f} | {times['c'] / times['numpy']:.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
