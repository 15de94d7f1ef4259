"""Fitting benchmark: closed-form maps against SciPy / scikit-learn, and training throughput.

- procrustes: `embridge.methods.procrustes.orthogonal_procrustes` against
  `scipy.linalg.orthogonal_procrustes` on the same (n, d) pairs: time (best of --repeat,
  interleaved) and the largest difference between the two W;
- cca: `embridge.methods.cca.cca_solve` (one whitened SVD) against
  `sklearn.cross_decomposition.CCA` (iterative NIPALS with deflation) on 20k x 512 pairs:
  time and the canonical correlations (ours with a negligible ridge, 1e-6, so both solve plain CCA);
  sklearn's correlations are those of its x/y scores per component;
- throughput (train rows per second, data resident on the device) of `bind` (projection head),
  `cycle_mlp` and `emergentbridge`, fitted for --epochs epochs on synthetic tables, and the
  fraction of the matmul floor: their matmul FLOPs (counted by torch) at the fastest fp32 matmul
  measured on the device (torch.mm, and on the CPU oneDNN's linear op, which `embridge.gemm` trains
  with), and the fraction of torch.mm's rate alone; and where each best fit's time went: its
  oneDNN products (wall seconds and in-fit GFLOP/s) and everything else (`MatmulClock`).

Data: `embridge.store.synth.make_synthetic` (C^3 geometry, seeded, in memory, no Parquet).

    python bench/fit.py                          # as in the issue
    python bench/fit.py --quick                  # small sizes
    python bench/fit.py --device cuda            # throughput on the GPU
    python bench/fit.py --only training --before /tmp/before   # and another `embridge` side by side
Writes bench/results/fit.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from embridge.config.malloc import keep_freed_memory
from embridge.config.openmp import openmp_waits

# the OpenMP waits of `embridge fit` (a few microseconds of spinning; embridge.config.openmp), set
# before torch loads; OMP_WAIT_POLICY or GOMP_SPINCOUNT in the environment win
openmp_waits("short_spin")

HERE = Path(__file__).resolve().parent


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def synth(n: int, dim: int, modalities: list[str], seed: int = 0, rotate: bool = True,
          latent_dim: int = 64, noise: float = 0.5):
    from embridge.store.synth import SynthConfig, make_synthetic

    cfg = SynthConfig(modalities=modalities, anchor="text", n=n, dim=dim, latent_dim=latent_dim, n_classes=10,
                      noise=noise, rotate=rotate, seed=seed)
    return make_synthetic(cfg)[0]


def bench_procrustes(n: int, dim: int, repeat: int) -> dict:
    from embridge.methods.procrustes import orthogonal_procrustes
    from scipy.linalg import orthogonal_procrustes as scipy_procrustes

    # 8 latent dimensions and noise 2.0 give 8 well-separated canonical correlations (about 0.96
    # down to 0.80, the 9th at 0.31), so sklearn's NIPALS converges and the comparison is fair;
    # with 64 nearly equal correlations (latent 64, noise 0.5) it stopped at max_iter, out of order
    t = synth(n, dim, ["image", "text"], latent_dim=8, noise=2.0)
    X, Y = t["image"].X.astype(np.float64), t["text"].X.astype(np.float64)
    ours, scipy_ = [], []
    for _ in range(repeat):  # interleaved
        s, (W, _S, _r) = timed(lambda: orthogonal_procrustes(X, Y))
        ours.append(s)
        s, (R, _scale) = timed(lambda: scipy_procrustes(X, Y))
        scipy_.append(s)
    return {"n": n, "dim": dim, "dtype": "float64", "ours_seconds": ours, "scipy_seconds": scipy_,
            "ours_best": min(ours), "scipy_best": min(scipy_), "speedup_vs_scipy": min(scipy_) / min(ours),
            "max_abs_diff_W": float(np.abs(W - R).max())}


def bench_cca(n: int, dim: int, k: int, max_iter: int, repeat: int) -> dict:
    from embridge.methods.cca import cca_solve
    from sklearn.cross_decomposition import CCA as SkCCA

    # 8 latent dimensions and noise 2.0 give 8 well-separated canonical correlations (about 0.96
    # down to 0.80, the 9th at 0.31), so sklearn's NIPALS converges and the comparison is fair;
    # with 64 nearly equal correlations (latent 64, noise 0.5) it stopped at max_iter, out of order
    t = synth(n, dim, ["image", "text"], latent_dim=8, noise=2.0)
    X, Y = t["image"].X.astype(np.float64), t["text"].X.astype(np.float64)
    ours = []
    for _ in range(repeat):
        s, (_A, _B, rho, *_rest) = timed(lambda: cca_solve(X, Y, k, 1e-6))
        ours.append(s)
    sk = SkCCA(n_components=k, max_iter=max_iter, scale=False)
    s_sk, _ = timed(lambda: sk.fit(X, Y))
    U, V = sk.transform(X, Y)
    rho_sk = np.array([np.corrcoef(U[:, j], V[:, j])[0, 1] for j in range(k)])
    iters = [int(i) for i in getattr(sk, "n_iter_", [])]
    return {"n": n, "dim": dim, "n_components": k, "sklearn_max_iter": max_iter, "sklearn_n_iter": iters,
            "ours_seconds": ours, "ours_best": min(ours), "sklearn_seconds": s_sk,
            "speedup_vs_sklearn": s_sk / min(ours), "rho_ours": rho.tolist(), "rho_sklearn": rho_sk.tolist(),
            "max_abs_diff_rho": float(np.abs(np.abs(rho_sk) - rho).max())}


def _onednn_linear():
    """torch's oneDNN linear op (a @ b.T), or None where this torch lacks it. Looked up here, not
    through `embridge.gemm`, so that `--before` can time a package that predates it."""
    import torch

    try:
        if torch.backends.mkldnn.is_available():
            op = torch.ops.mkldnn._linear_pointwise
            x = torch.ones(2, 3)
            if torch.equal(op(x, x, None, "none", [], ""), torch.full((2, 2), 3.0)):
                return lambda a, b: op(a, b, None, "none", [], "")
    except (AttributeError, RuntimeError):
        pass
    return None


def _linear_flops(a_shape, b_shape) -> int:
    """FLOPs of the oneDNN linear op a @ b.T, a: (m, k), b: (n, k): 2 m k n."""
    return 2 * a_shape[0] * a_shape[1] * b_shape[0]


def _count_onednn_flops() -> None:
    """Teach FlopCounterMode the oneDNN linear op, which `embridge.gemm` runs."""
    import torch
    from torch.utils.flop_counter import register_flop_formula

    if _onednn_linear() is not None:
        register_flop_formula(torch.ops.mkldnn._linear_pointwise)(
            lambda a, b, *args, out_shape=None, **kwargs: _linear_flops(a, b))


def matmul_rates(device: str, n: int = 1024, repeat: int = 20) -> dict[str, float]:
    """Measured fp32 matmul rates (GFLOP/s) on the device, best of `repeat` n x n x n products each:
    torch.mm, and on the CPU oneDNN's linear op where torch has it. The floor is the faster."""
    import torch

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    kinds = {"torch.mm": lambda: a @ b}
    onednn = _onednn_linear() if device == "cpu" else None
    if onednn is not None:
        kinds["onednn"] = lambda: onednn(a, b)
    rates = {}
    for kind, fn in kinds.items():
        best = float("inf")
        for _ in range(repeat):
            if device != "cpu":
                torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            if device != "cpu":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
        rates[kind] = 2 * n**3 / best / 1e9
    return rates


class MatmulClock:
    """Wall seconds spent inside `embridge.gemm`'s oneDNN products during a CPU fit (the training
    products all go through `gemm.onednn_linear`, a module global looked up at each call, so one
    wrapper sees them), and their FLOPs: the split of a fit into its matmuls and everything else,
    without torch.profiler (whose per-op overhead inflates the small elementwise ops several times
    over). Inactive (None figures) where the package has no `gemm.onednn_linear` or it is unused."""

    def __init__(self) -> None:
        self.seconds, self.flops, self.calls = 0.0, 0.0, 0

    def __enter__(self) -> MatmulClock:
        try:
            from embridge import gemm
        except ImportError:
            gemm = None
        self._gemm = gemm if getattr(gemm, "onednn_linear", None) is not None else None
        if self._gemm is not None:
            real = self._real = self._gemm.onednn_linear

            def timed(a, b, bias=None):
                t = time.perf_counter()
                out = real(a, b, bias)
                self.seconds += time.perf_counter() - t
                self.flops += _linear_flops(a.shape, b.shape)
                self.calls += 1
                return out

            self._gemm.onednn_linear = timed
        return self

    def __exit__(self, *exc) -> None:
        if self._gemm is not None:
            self._gemm.onednn_linear = self._real

    def split(self, fit_seconds: float) -> dict | None:
        if not self.calls:
            return None
        return {"matmul_seconds": self.seconds, "other_seconds": fit_seconds - self.seconds, "matmul_calls": self.calls,
                "matmul_gflops_in_fit": self.flops / self.seconds / 1e9}


def _fit_result(flops: float, secs: list[float], around: list[dict], epochs: int, n_train: int,
                splits: list[dict | None] | None = None) -> dict:
    """One method's figures: best fit time, against the best rate seen around its fits (the floor:
    the fastest matmul kind; also the fraction of torch.mm's rate alone); splits: each fit's
    `MatmulClock.split`, the best fit's reported."""
    best = min(secs)
    floor = max(max(r.values()) for r in around)
    mm = max(r["torch.mm"] for r in around)
    split = splits[secs.index(best)] if splits else None
    return {"seconds": secs, "best_seconds": best, "rows_per_second": epochs * n_train / best,
            "matmul_gflop": flops / 1e9, "matmul_gflops_around": around,
            "achieved_gflops": flops / best / 1e9, "fraction_of_matmul_floor": flops / floor / 1e9 / best,
            "fraction_of_torch_mm": flops / mm / 1e9 / best, "split": split, "splits": splits}


def _best_rates(around: list[dict]) -> dict[str, float]:
    return {k: max(r[k] for r in around if k in r) for k in around[0]}


def bench_training(n: int, dim: int, epochs: int, device: str, repeat: int = 1) -> dict:
    """Train rows per second: epochs x train rows of the trained modality / fit seconds; and the share
    of the matmul floor: matmul FLOPs of the fit (counted by torch's FlopCounterMode, forward and
    backward, on a one- and a two-epoch run: the once-per-fit inference plus epochs x the per-epoch
    difference) at the matmul rate, over the fit's time. Each fit runs
    `repeat` times, the rate is measured right before and after each run, and the fraction uses the
    best fit time against the best rate seen around that method's runs (conservative under load)."""
    from embridge.bind import BindConfig, bind_tables
    from embridge.methods import get_method
    from torch.utils.flop_counter import FlopCounterMode

    _count_onednn_flops()
    tables = synth(n, dim, ["image", "audio", "text"], rotate=False)
    n_train = int((tables["audio"].split == "train").sum())
    pairs = [("image", "text"), ("audio", "text")]
    runs = {
        "bind": lambda e: bind_tables(tables, "text", pairs, BindConfig(epochs=e), device=device),
        "cycle_mlp": lambda e: get_method("cycle_mlp", epochs=e, device=device).fit(tables, "text", pairs),
        "emergentbridge": lambda e: get_method("emergentbridge", epochs=e, proxy_epochs=e,
                                               device=device).fit(tables, "text", pairs),
    }
    out = {"n": n, "dim": dim, "epochs": epochs, "train_rows": n_train, "device": device, "repeat": repeat}
    rates = []
    for name, fn in runs.items():
        counted = []
        for e in (1, 2):  # once-per-fit matmuls (inference over all rows) + epochs x per-epoch matmuls
            counter = FlopCounterMode(display=False)
            with counter:
                fn(e)
            counted.append(counter.get_total_flops())
        per_epoch = counted[1] - counted[0]
        flops = counted[0] + (epochs - 1) * per_epoch
        secs, around, splits = [], [], []
        for _ in range(repeat):  # the matmul rates measured right before and after each fit (shared machine)
            around.append(matmul_rates(device))
            with MatmulClock() as clock:  # where the fit's time goes: its oneDNN products, and the rest
                s, _ = timed(lambda fn=fn: fn(epochs))
            secs.append(s)
            splits.append(clock.split(s))
            around.append(matmul_rates(device))
        rates += around
        out[name] = _fit_result(flops, secs, around, epochs, n_train, splits)  # best fit time, best rates around it
    out["matmul_gflops_by_kind"] = _best_rates(rates)
    out["matmul_gflops"] = max(out["matmul_gflops_by_kind"].values())
    return out


def side_by_side(args, before: Path) -> dict:
    """The training part in child processes, ours and `before` (a folder holding an `embridge`
    package, put first on PYTHONPATH) alternating, --train-repeat rounds of --child-repeat fits each; per side
    the best fit time against the best matmul rate seen around that side's fits."""
    import subprocess
    import sys
    import tempfile

    runs: dict[str, list[dict]] = {"ours": [], "before": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.train_repeat):
            for side in ("ours", "before"):
                out = Path(tmp) / f"{side}{r}.json"
                env = dict(os.environ)
                if side == "before":
                    env["PYTHONPATH"] = os.pathsep.join([str(before), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
                cmd = [sys.executable, __file__, "--only", "training", "--train-repeat", str(args.child_repeat), "--epochs",
                       str(args.epochs), "--device", args.device, "--out", str(out)]
                cmd += (["--n", str(args.n)] if args.n else []) + (["--quick"] if args.quick else [])
                cmd += ["--default-malloc"] if args.default_malloc else []
                subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
                runs[side].append(json.loads(out.read_text())["training"])
    res = {"before_path": str(before), "rounds": args.train_repeat}
    for side, rs in runs.items():
        merged = {k: rs[0][k] for k in ("n", "dim", "epochs", "train_rows", "device")}
        merged["repeat"] = len(rs)
        for name in ("bind", "cycle_mlp", "emergentbridge"):
            secs = [s for r in rs for s in r[name]["seconds"]]
            around = [g for r in rs for g in r[name]["matmul_gflops_around"]]
            splits = [x for r in rs for x in r[name].get("splits") or [None] * len(r[name]["seconds"])]
            merged[name] = _fit_result(rs[0][name]["matmul_gflop"] * 1e9, secs, around, merged["epochs"], merged["train_rows"],
                                       splits)
        merged["matmul_gflops_by_kind"] = _best_rates([r["matmul_gflops_by_kind"] for r in rs])
        merged["matmul_gflops"] = max(merged["matmul_gflops_by_kind"].values())
        res[side] = merged
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cca-components", type=int, default=8)
    ap.add_argument("--cca-max-iter", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--train-repeat", type=int, default=2, help="runs of each training fit (best of)")
    ap.add_argument("--n", type=int, default=None, help="synthetic rows for the training part (default 50,000)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "fit.json")
    ap.add_argument("--only", nargs="+", choices=["procrustes", "cca", "training"], default=None,
                    help="run these parts only; the others are kept from an existing --out file")
    ap.add_argument("--before", type=Path, default=None,
                    help="with --only training: also time the `embridge` package in this folder, in child "
                         "processes alternating with ours (--train-repeat rounds)")
    ap.add_argument("--child-repeat", type=int, default=2,
                    help="with --before: timed fits of each method per child process (the first fit in a "
                         "process is often the slowest)")
    ap.add_argument("--default-malloc", action="store_true",
                    help="keep glibc's default malloc (not the training commands' settings, embridge.config.malloc)")
    args = ap.parse_args()
    malloc_kept = False if args.default_malloc else keep_freed_memory()  # as `embridge fit` does
    s = 10 if args.quick else 1
    parts = args.only or ["procrustes", "cca", "training"]
    res = json.loads(args.out.read_text()) if args.only and args.out.exists() else {}
    res.update({"cpu_count": os.cpu_count(), "device": args.device})
    if "procrustes" in parts:
        res["procrustes"] = bench_procrustes(100_000 // s, 1024 // (4 if args.quick else 1), args.repeat)
    if "cca" in parts:
        res["cca"] = bench_cca(20_000 // s, 512 // (4 if args.quick else 1), args.cca_components,
                               args.cca_max_iter, args.repeat)
    if "training" in parts and args.before:
        both = side_by_side(args, args.before)
        res["training"], res["training_before"] = both["ours"], both["before"]
        res["training"]["side_by_side"] = {"before": both["before_path"], "rounds": both["rounds"],
                                           "fits_per_child": args.child_repeat}
    elif "training" in parts:
        res.pop("training_before", None)
        res["training"] = bench_training(args.n or 50_000 // s, 1024 // (4 if args.quick else 1), args.epochs, args.device,
                                         args.train_repeat)
    if "training" in parts:
        res["training"]["openmp"] = {v: os.environ.get(v) for v in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        res["training"]["keep_freed_memory"] = malloc_kept
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    if "procrustes" in res:
        p = res["procrustes"]
        print(f"\nprocrustes {p['n']:,} x {p['dim']}: ours {p['ours_best']:.3f} s, scipy {p['scipy_best']:.3f} s, "
              f"speedup {p['speedup_vs_scipy']:.2f}x (target >= 1), max |W - W_scipy| = {p['max_abs_diff_W']:.1e}")
    if "cca" in res:
        c = res["cca"]
        print(f"cca {c['n']:,} x {c['dim']}, {c['n_components']} components: ours {c['ours_best']:.3f} s, "
              f"sklearn {c['sklearn_seconds']:.1f} s (max_iter {c['sklearn_max_iter']}), speedup "
              f"{c['speedup_vs_sklearn']:.0f}x (target >= 20), max |rho - rho_sklearn| = {c['max_abs_diff_rho']:.1e}")
    for key in ("training", "training_before"):
        if key not in res:
            continue
        tr = res[key]
        side = " (before: " + res["training"]["side_by_side"]["before"] + ")" if key == "training_before" else ""
        rates = ", ".join(f"{k} {v:.0f}" for k, v in tr.get("matmul_gflops_by_kind", {}).items())
        print(f"{key}{side}: {tr['train_rows']:,} train rows x {tr['dim']}, {tr['epochs']} epochs on {tr['device']} "
              f"(matmul GFLOP/s: {rates}; the floor is the fastest):")
        for name in ("bind", "cycle_mlp", "emergentbridge"):
            r = tr[name]
            print(f"  {name:<16}{r['best_seconds']:>8.2f} s {r['rows_per_second']:>12,.0f} rows/s"
                  f"{r['achieved_gflops']:>8.0f} GFLOP/s of matmuls, "
                  f"{r['fraction_of_matmul_floor']:.2f} of the matmul floor, {r['fraction_of_torch_mm']:.2f} of torch.mm's rate")
            if r.get("split"):
                sp = r["split"]
                print(f"  {'':<16}in that fit: {sp['matmul_seconds']:.2f} s in {sp['matmul_calls']} oneDNN products at "
                      f"{sp['matmul_gflops_in_fit']:.0f} GFLOP/s, {sp['other_seconds']:.2f} s in everything else")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
