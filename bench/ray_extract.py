"""Ray benchmark, extraction: `embridge extract` with the local executor against the same extraction
on 1 and 2 Ray actors, in one run, on one local Ray instance (the built-in MiniLM text encoder, a
CSV of --rows synthetic sentences, shards of --rows-per-shard rows).

Every encoder runs with --threads threads (default 1; it is part of the table's fingerprint, so all
executors write the same bytes, which is checked). Prints wall time per executor, the speed-up of
Ray over the local run and the scaling efficiency T(1 actor) / (actors x T(actors)). The Ray times
include what a user waits for: handing out shards, each actor loading its encoder, writing shards;
the instance's start-up (once per `embridge extract` run) is printed apart, and so is the fixed
cost of a run (actors starting and loading the encoder, measured on one 1-row shard per actor), so
that the encoding throughput can be compared without it. Two extra local rows
show the single process with every core (--threads 0) for comparison, whose tables differ in
fingerprint only.

    python bench/ray_extract.py                  # 4096 texts, shards of 256
    python bench/ray_extract.py --rows 1024      # quicker
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = "zero one two three four five six seven eight nine".split()


def write_texts(path: Path, n: int) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "text", "label", "split"])
        w.writeheader()
        for i in range(n):
            y = i % 10
            w.writerow({"id": f"t{i}", "label": WORDS[y], "split": "test" if i % 5 == 0 else "train",
                        "text": f"sample {i}: someone says the digit {WORDS[y]}, then {WORDS[(i * 7) % 10]} and {WORDS[(i * 3) % 10]}"})
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--rows-per-shard", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="encoder threads of every executor (0: all cores)")
    args = ap.parse_args()

    import ray
    from embridge.encoders.runner import ExtractConfig, extract

    cpus = os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="ray-extract-"))
    texts = write_texts(tmp / "texts.csv", args.rows)
    cfg = lambda **kw: ExtractConfig(**{"rows_per_shard": args.rows_per_shard, "batch_sizes": {"text": args.batch},  # noqa: E731
                                        "threads": args.threads, **kw})
    extract("text", texts, tmp / "warm", cfg(), progress=False)  # page in the model and the libraries once
    t = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    start_s = time.perf_counter() - t
    runs = {"local": cfg(), "ray, 1 worker": cfg(executor="ray", ray_workers=1),
            "ray, 2 workers": cfg(executor="ray", ray_workers=2)}
    wall, tables = {}, {}
    for name, c in runs.items():
        out = tmp / name.replace(", ", "-").replace(" ", "")
        t = time.perf_counter()
        extract("text", texts, out, c, progress=False)
        wall[name] = time.perf_counter() - t
        tables[name] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    # the fixed cost of a Ray run: w actors each loading the encoder for one 1-row shard
    tiny, fixed = write_texts(tmp / "tiny.csv", 2), {}
    for name, c in runs.items():
        if name != "local":
            c.rows_per_shard = 1
            t = time.perf_counter()
            extract("text", tiny, tmp / f"tiny-{c.ray_workers}", c, progress=False)
            fixed[name] = time.perf_counter() - t
    ray.shutdown()
    t = time.perf_counter()
    extract("text", texts, tmp / "local-all", cfg(threads=0), progress=False)
    all_cores = time.perf_counter() - t
    same = all(tables[n] == tables["local"] for n in runs)
    shards = -(-args.rows // args.rows_per_shard)
    print(f"extraction, all-MiniLM-L6-v2, {args.rows} texts in {shards} shards of {args.rows_per_shard}, batch {args.batch}, "
          f"{args.threads or cpus} encoder thread(s) per executor, {cpus} cores")
    print(f"local Ray instance start-up: {start_s:.1f} s (not in the rows below)")
    print("fixed cost: a Ray run of one 1-row shard per actor (actors start, load the encoder, write); "
          "encode s = wall s - fixed cost")
    print("| executor | wall s | rows/s | speed-up vs local | scaling efficiency | fixed cost s | encode s | "
          "encode speed-up | encode efficiency |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    enc = {n: wall[n] - fixed.get(n, 0.0) for n in runs}
    for name in runs:
        workers = 1 if name == "local" else int(name.split(", ")[1].split()[0])
        s = wall["local"] / wall[name]
        eff = "" if name == "local" else f"{wall['ray, 1 worker'] / (workers * wall[name]):.2f}"
        more = ("| | | |" if name == "local" else
                f"{fixed[name]:.2f} | {enc[name]:.2f} | {enc['local'] / enc[name]:.2f}x | "
                f"{enc['ray, 1 worker'] / (workers * enc[name]):.2f} |")
        print(f"| {name} | {wall[name]:.2f} | {args.rows / wall[name]:.0f} | {s:.2f}x | {eff} | {more}")
    print(f"| local, threads 0 ({cpus} threads, one process) | {all_cores:.2f} | {args.rows / all_cores:.0f} | "
          f"{wall['local'] / all_cores:.2f}x | | | | | |")
    print(f"tables byte-identical across local / ray 1 / ray 2: {same}")


if __name__ == "__main__":
    main()
