"""Training-noise benchmark: ms per call of `embridge.methods.noise` against torch.randn, in one run.

Sides, for --rows x --dim float32 numbers (emergentbridge's bridge noise is batch_size x d a step):
- randn: `noise.randn` (its C kernel where built, `noise.USE_C`), torch.randn on a CPU generator
  (serial Mersenne Twister), and noise.py's numpy version (the path without the C kernel);
- add: `noise.add_noise(X, sigma, gen)` (one pass) against torch's `X + sigma * torch.randn(...)`
  and `X + sigma * noise.randn(...)` (three passes; the same bits as add_noise, checked here).
Best of --repeat rounds of --calls calls each, the sides interleaved. One thread (the training
loops' noise is drawn between products; torch.randn is serial on the CPU anyway), with freed memory
kept as `embridge fit` keeps it (embridge.config.malloc).

    python bench/noise.py
Prints a table of ms per call and the ratio to torch; writes bench/results/noise.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from counting import cpu_name  # bench/counting.py, beside this script
from embridge.config.malloc import keep_freed_memory
from embridge.methods import noise

HERE = Path(__file__).resolve().parent


def ms_per_call(fn, calls: int) -> float:
    """Mean ms of `calls` calls of fn after one warm-up call (one round; main keeps the best round)."""
    fn()
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls * 1e3


def switched(module, name: str, value, fn):
    """fn as a callable run with module.name set to value, and set back after (e.g. a module's USE_C
    off, to time its numpy path beside its C kernel)."""
    def run():
        before = getattr(module, name)
        setattr(module, name, value)
        try:
            return fn()
        finally:
            setattr(module, name, before)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--sigma", type=float, default=0.1)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "noise.json")
    args = ap.parse_args()
    keep_freed_memory()  # as the training commands run (no page faults on each fresh 4 MiB tensor)
    torch.set_num_threads(1)
    shape = (args.rows, args.dim)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(shape, generator=g)

    numpy_randn = switched(noise, "USE_C", False, lambda: noise.randn(shape, g))

    same = torch.equal(noise.add_noise(X, args.sigma, torch.Generator().manual_seed(1)),
                       X + args.sigma * noise.randn(shape, torch.Generator().manual_seed(1)))
    if not same:
        raise SystemExit("add_noise differs from X + sigma * randn: the kernel's rounding is not torch's")
    sides = {
        "randn": {"ours": lambda: noise.randn(shape, g), "torch": lambda: torch.randn(shape, generator=g),
                  "ours, numpy": numpy_randn},
        "add": {"ours": lambda: noise.add_noise(X, args.sigma, g),
                "torch": lambda: X + args.sigma * torch.randn(shape, generator=g),
                "ours, three passes": lambda: X + args.sigma * noise.randn(shape, g)},
    }
    res = {"rows": args.rows, "dim": args.dim, "c_kernel": noise.USE_C, "cpu": cpu_name(),
           "torch": torch.__version__}
    print(f"{args.rows:,} x {args.dim} float32, one thread, ms a call (best of {args.repeat} x {args.calls}); "
          f"C kernel: {noise.USE_C}")
    print("| op | side | ms | / torch |\n|---|---|---:|---:|")
    for op, fns in sides.items():
        times = {name: float("inf") for name in fns}
        for _ in range(args.repeat):  # interleaved rounds
            for name, fn in fns.items():
                calls = max(1, args.calls // 10) if "numpy" in name else args.calls
                times[name] = min(times[name], ms_per_call(fn, calls))
        res[op] = {name: {"ms": ms, "over_torch": ms / times["torch"]} for name, ms in times.items()}
        for name, ms in times.items():
            print(f"| {op} | {name} | {ms:.2f} | {ms / times['torch']:.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
