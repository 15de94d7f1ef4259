"""Evaluation benchmark: the full retrieval metric set against plain FAISS search, same data, same k.

Ours: `embridge.evaluation.metrics.retrieval_metrics` (R@1/5/10, MRR, full-ranking mAP and the
top-k lists, one fused pass). Baseline: `faiss.IndexFlatIP(d)`, add + search(xq, k), top-k only.
Also the previous implementation (FAISS top-k, then a separate torch counting pass: two full
matmuls), unless --no-legacy. Each run is a child process (peak RSS), repeats are interleaved,
best-of is reported. Memory: our peak RSS above the loaded data at nb/2 and at nb.

Data: `embridge.store.synth` (C^3 geometry, seeded), generated chunk by chunk into float32 .npy files
(no Parquet): queries are the first nq instances of `image`, the gallery nb instances of `text`.
Relevance `pairs`: the query's own instance (pair ids); `labels`: same class (--classes).

    python bench/eval.py                                  # 10k x 200k x 1024, both relevances
    python bench/eval.py --nq 2000 --nb 20000 --repeat 1  # a quick run
    python bench/eval.py --device cuda                    # FAISS GPU / torch on the GPU
    python bench/eval.py --dims 512 768 1024 --shapes 3000x60000 10000x200000   # one table, d sweep
Writes bench/results/eval.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # sleeping, not spinning, OpenMP waits on a shared machine

import numpy as np
from embridge.config import malloc

HERE = Path(__file__).resolve().parent
# numba's cached counting kernel (about 0.4 s to load in a new process) is loaded before the timer,
# as the child imports faiss and torch before it; `evaluate` hides the load behind reading its tables.
# --kernel-load-timed puts it inside the timer (a cold first scan)
LOAD_KERNEL = "before-timer"
# every child (FAISS's and ours) starts with `embridge evaluate`'s malloc settings (config/malloc.py:
# freed score tiles reused, not faulted in again); --default-malloc keeps glibc's defaults
MALLOC_ENV: dict[str, str] = {}
ROOT = HERE.parent

CHILD = r"""
import json, sys, time
import numpy as np
data, who, relevance, nq, nb, k, device, budget, load_kernel = sys.argv[1:10]
nq, nb, k, budget = int(nq), int(nb), int(k), int(budget)
xq = np.array(np.load(f"{data}/xq.npy", mmap_mode="r")[:nq])  # only the rows used are read
xb = np.array(np.load(f"{data}/xb.npy", mmap_mode="r")[:nb])
lq = np.load(f"{data}/lq.npy")[:nq]
lb = np.load(f"{data}/lb.npy")[:nb]
def rss(field):  # MiB, from /proc (ru_maxrss would carry the parent's peak over exec)
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
import faiss, torch  # imported before the baseline RSS so that both sides pay for them
from embridge.evaluation import counting
from embridge.evaluation.metrics import retrieval_metrics
if who != "faiss" and load_kernel == "before-timer" and getattr(counting, "warm_up", None):
    counting.warm_up()  # numba's cached kernel, loaded like FAISS's and torch's libraries: before the timer
    if counting._WARMUP is not None:
        counting._WARMUP.join()
from embridge.evaluation.relevance import RowKeys
if relevance == "pairs":
    q, b = RowKeys(lq, np.arange(nq)), RowKeys(lb, np.arange(nb))
else:
    q, b = RowKeys(lq, np.full(nq, -1)), RowKeys(lb, np.full(nb, -1))
base = rss("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
t = time.perf_counter()
out = {}
if who == "faiss":
    if device == "cpu":
        index = faiss.IndexFlatIP(xb.shape[1])
    else:
        index = faiss.GpuIndexFlatIP(faiss.StandardGpuResources(), xb.shape[1])
    index.add(xb)
    D, I = index.search(xq, k)
elif who == "ours":
    out = retrieval_metrics(xq, xb, q, b, ks=(1, 5, 10), kmax=k, device=device, score_budget=budget)
elif who == "legacy":
    out = retrieval_metrics(xq, xb, q, b, ks=(1, 5, 10), kmax=k, device=device, score_budget=budget, fused=False)
secs = time.perf_counter() - t
print(json.dumps({"seconds": secs, "base_rss_mib": base, "peak_rss_mib": rss("VmHWM:"), "metrics": out}))
"""


def make_data(path: Path, nq: int, nb: int, dim: int, classes: int, seed: int) -> None:
    """Synthetic tables (embridge.store.synth generator) as .npy: xq (nq, d), xb (nb, d), lq, lb."""
    from embridge.store.synth import SynthConfig, generate_chunks, plant

    stamp = path / "config.json"
    want = {"nq": nq, "nb": nb, "dim": dim, "classes": classes, "seed": seed, "noise": 1.5, "spread": 1.5}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return
    t = time.perf_counter()
    path.mkdir(parents=True, exist_ok=True)
    cfg = SynthConfig(modalities=["image", "text"], anchor="text", n=max(nq, nb), dim=dim, latent_dim=64,
                      n_classes=classes, spread=1.5, rotate=False, noise=1.5, seed=seed)
    xq = np.lib.format.open_memmap(path / "xq.npy", "w+", np.float32, (nq, dim))
    xb = np.lib.format.open_memmap(path / "xb.npy", "w+", np.float32, (nb, dim))
    lq, lb = np.empty(nq, np.int64), np.empty(nb, np.int64)
    for start, labels, _split, _pairs, Xs in generate_chunks(plant(cfg)):
        n = len(labels)
        if start < nq:
            e = min(start + n, nq)
            xq[start:e], lq[start:e] = Xs["image"][: e - start], labels[: e - start]
        if start < nb:
            e = min(start + n, nb)
            xb[start:e], lb[start:e] = Xs["text"][: e - start], labels[: e - start]
    xq.flush()
    xb.flush()
    del xq, xb
    np.save(path / "lq.npy", lq)
    np.save(path / "lb.npy", lb)
    stamp.write_text(json.dumps(want))
    print(f"made {nq:,} + {nb:,} x {dim} synthetic rows in {time.perf_counter() - t:.1f} s")


def run(data: Path, who: str, relevance: str, nq: int, nb: int, k: int, device: str, budget: int,
        code: Path | None = None) -> dict:
    """One timed child process. code: a folder holding another `embridge` package to time instead
    of the installed one (e.g. a symlink `embridge` -> an older checkout's pipeline/)."""
    args = [str(a) for a in (data, who, relevance, nq, nb, k, device, budget, LOAD_KERNEL)]
    env = {**os.environ, **MALLOC_ENV, "PYTHONPATH": ":".join(str(p) for p in (code, ROOT) if p)}
    out = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"{who} {relevance} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_against_faiss(data: Path, relevance: str, n: int, nb: int, k: int) -> dict:
    """On the first n queries: our top-k equals FAISS's (scores; ids where scores are not tied) and our
    metrics equal the two-pass implementation's."""
    import faiss
    from embridge.evaluation.metrics import per_query
    from embridge.evaluation.relevance import RowKeys

    xq, xb = np.load(data / "xq.npy")[:n], np.load(data / "xb.npy")[:nb]
    lq, lb = np.load(data / "lq.npy")[:n], np.load(data / "lb.npy")[:nb]
    pq, pb = (np.arange(n), np.arange(nb)) if relevance == "pairs" else (np.full(n, -1), np.full(nb, -1))
    q, b = RowKeys(lq, pq), RowKeys(lb, pb)
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    D_f, I_f = index.search(xq, k)
    ours, legacy = per_query(xq, xb, q, b, k), per_query(xq, xb, q, b, k, fused=False)
    return {
        "queries_checked": n,
        "max_abs_score_diff_vs_faiss": float(np.abs(ours["D"] - D_f).max()),
        "id_agreement_vs_faiss": float((ours["I"] == I_f).mean()),
        "rank_equal_to_two_pass": bool(np.array_equal(ours["rank"], legacy["rank"])),
        "max_ap_diff_vs_two_pass": float(np.nanmax(np.abs(ours["ap"] - legacy["ap"]))),
    }


def sweep(args) -> None:
    """--dims: FAISS vs ours for every (shape, d, relevance), interleaved, best of --repeat; one table.
    Shapes run in the order given (put the slow ones last); each (shape, d) has its own data."""
    shapes = [tuple(int(v) for v in s.lower().split("x")) for s in args.shapes]
    rows: list[dict] = []
    out = args.out.with_name("eval_dims.json") if args.out.name == "eval.json" else args.out
    for nq, nb in shapes:
        for dim in args.dims:
            data = args.data.with_name(f"{args.data.name}-d{dim}-{nq}x{nb}")
            make_data(data, nq, nb, dim, args.classes, args.seed)
            for rel in args.relevance:
                sides = ["faiss", "ours"] + (["before"] if args.before else [])
                secs: dict[str, list[float]] = {w: [] for w in sides}
                metrics = {}
                for _ in range(args.repeat):
                    for w in sides:  # interleaved, so machine noise hits every side
                        r = run(data, "ours" if w == "before" else w, rel, nq, nb, args.k, args.device,
                                args.score_budget, args.before if w == "before" else None)
                        secs[w].append(r["seconds"])
                        metrics = (r["metrics"] if w == "ours" else None) or metrics
                row = {"nq": nq, "nb": nb, "dim": dim, "relevance": rel, "seconds": secs,
                       "faiss_best": min(secs["faiss"]), "ours_best": min(secs["ours"]),
                       "ratio": min(secs["ours"]) / min(secs["faiss"]), "metrics": metrics,
                       "load_avg": os.getloadavg()}
                if args.before:
                    row["before_best"] = min(secs["before"])
                    row["before_ratio"] = row["before_best"] / row["faiss_best"]
                rows.append(row)
                print(f"{nq:>6,} x {nb:>8,} x {dim:<5}{rel:<7}faiss {row['faiss_best']:7.2f} s  ours "
                      f"{row['ours_best']:7.2f} s  ours/faiss {row['ratio']:5.2f}"
                      + (f"  before/faiss {row['before_ratio']:5.2f}" if args.before else "")
                      + f"  load {row['load_avg'][0]:.1f}",
                      flush=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps({"k": args.k, "kernel_load": LOAD_KERNEL, "classes": args.classes, "repeat": args.repeat,
                                           "score_budget": args.score_budget, "malloc_env": MALLOC_ENV, "device": args.device,
                                           "cpu_count": os.cpu_count(), "rows": rows}, indent=2) + "\n")
    before = " before s | before / FAISS |" if args.before else ""
    print(f"\n| shape | d | relevance | FAISS s | ours s | ours / FAISS |{before}\n|---|---|---|---|---|---|"
          + ("---|---|" if args.before else ""))
    for r in rows:
        print(f"| {r['nq']:,} x {r['nb']:,} | {r['dim']} | {r['relevance']} | {r['faiss_best']:.2f} | "
              f"{r['ours_best']:.2f} | {r['ratio']:.2f} |"
              + (f" {r['before_best']:.2f} | {r['before_ratio']:.2f} |" if args.before else ""))
    print(f"best of {args.repeat} interleaved runs, k = {args.k}, {args.classes} classes; wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nq", type=int, default=10_000)
    ap.add_argument("--nb", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--classes", type=int, default=1000, help="class labels (relevance 'labels': ~nb/classes relevant)")
    ap.add_argument("--relevance", nargs="+", default=["pairs", "labels"], choices=["pairs", "labels"])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--score-budget", type=int, default=1 << 22, help="scores per block (memory bound)")
    ap.add_argument("--no-legacy", action="store_true", help="skip the previous two-pass implementation")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (FAISS GPU index / torch on the GPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "embridge-bench-eval")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "eval.json")
    ap.add_argument("--dims", type=int, nargs="+", help="sweep these dimensions (one table; see sweep)")
    ap.add_argument("--shapes", nargs="+", default=["3000x60000", "10000x200000"], help="NQxNB, with --dims")
    ap.add_argument("--before", type=Path, help="with --dims: also time the `embridge` package in this folder")
    ap.add_argument("--kernel-load-timed", action="store_true",
                    help="load numba's counting kernel inside the timed region (a cold first scan)")
    ap.add_argument("--default-malloc", action="store_true",
                    help="glibc's default malloc in every child (not `embridge evaluate`'s, embridge.config.malloc)")
    args = ap.parse_args()
    global LOAD_KERNEL
    LOAD_KERNEL = "timed" if args.kernel_load_timed else "before-timer"
    if not args.default_malloc and not malloc.user_chose() and platform.libc_ver()[0] == "glibc":
        MALLOC_ENV.update(malloc.environment())
    if args.dims:
        sweep(args)
        return

    make_data(args.data, args.nq, args.nb, args.dim, args.classes, args.seed)
    who = ["faiss", "ours"] + ([] if args.no_legacy else ["legacy"])
    results: dict = {}
    for rel in args.relevance:
        res = results.setdefault(rel, {w: {"seconds": []} for w in who})
        for _ in range(args.repeat):
            for w in who:  # interleaved, so machine noise hits every side
                if w == "legacy" and res[w]["seconds"]:
                    continue  # one run of the slow two-pass path is enough
                r = run(args.data, w, rel, args.nq, args.nb, args.k, args.device, args.score_budget)
                res[w]["seconds"].append(r["seconds"])
                res[w]["peak_rss_mib"] = max(res[w].get("peak_rss_mib", 0), r["peak_rss_mib"])
                res[w]["base_rss_mib"] = r["base_rss_mib"]
                res[w]["overhead_rss_mib"] = res[w]["peak_rss_mib"] - r["base_rss_mib"]
                if r["metrics"]:
                    res[w]["metrics"] = r["metrics"]
        for w in who:
            res[w]["best_seconds"] = min(res[w]["seconds"])
        res["ratio_ours_vs_faiss"] = res["ours"]["best_seconds"] / res["faiss"]["best_seconds"]
        if "legacy" in res:
            res["ratio_legacy_vs_faiss"] = res["legacy"]["best_seconds"] / res["faiss"]["best_seconds"]
        half = run(args.data, "ours", rel, args.nq, args.nb // 2, args.k, args.device, args.score_budget)
        res["memory_vs_gallery"] = {
            "nb_half": args.nb // 2, "overhead_rss_mib_half": half["peak_rss_mib"] - half["base_rss_mib"],
            "nb": args.nb, "overhead_rss_mib": res["ours"]["overhead_rss_mib"],
        }
        if args.device == "cpu":
            res["check"] = check_against_faiss(args.data, rel, min(500, args.nq), args.nb, args.k)

    summary = {"nq": args.nq, "nb": args.nb, "dim": args.dim, "k": args.k, "classes": args.classes,
               "score_budget": args.score_budget, "malloc_env": MALLOC_ENV, "device": args.device, "cpu_count": os.cpu_count(),
               "gflop_per_pass": 2 * args.nq * args.nb * args.dim / 1e9, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{args.nq:,} queries x {args.nb:,} gallery x {args.dim}, k = {args.k}, device {args.device}")
    print(f"{'relevance':<10}{'who':<8}{'best s':>9}{'x faiss':>9}{'peak RSS':>10}{'above data':>12}  metrics")
    for rel, res in results.items():
        for w in who:
            r = res[w]
            m = r.get("metrics", {})
            ms = " ".join(f"{key}={m[key]:.3f}" for key in ("R@1", "R@10", "MRR", "mAP") if m.get(key) is not None)
            print(f"{rel:<10}{w:<8}{r['best_seconds']:>9.2f}{r['best_seconds'] / res['faiss']['best_seconds']:>9.2f}"
                  f"{r['peak_rss_mib']:>10.0f}{r['overhead_rss_mib']:>12.0f}  {ms}")
        mv = res["memory_vs_gallery"]
        print(f"{rel:<10}memory above data: nb={mv['nb_half']:,}: {mv['overhead_rss_mib_half']:.0f} MiB, "
              f"nb={mv['nb']:,}: {mv['overhead_rss_mib']:.0f} MiB")
        if "check" in res:
            print(f"{rel:<10}check: {res['check']}")
    print(f"target: ours / faiss <= 1.2 on the CPU; wrote {args.out}")


if __name__ == "__main__":
    main()
