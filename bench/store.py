"""Store benchmark: stream a 1,000,000 x 1024 float16 table row group by row group.

Compares `embridge.store.iter_batches` (our streaming reader) against `pyarrow.parquet.read_table`
on the same files in the same run: read throughput (GB/s of embedding payload, best of --repeat)
and peak resident memory of each reader, measured in its own child process.

    python bench/store.py                 # 1M x 1024 float16 (about 2 GB), as in the issue
    python bench/store.py --rows 100000   # a quick run
Writes bench/results/store.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

READERS = {
    # name -> code run in a fresh child process; it prints seconds and the payload bytes it saw
    "embridge.iter_batches": """
import sys, time
from embridge.store import iter_batches, embeddings_view
t = time.perf_counter(); nbytes = 0
for b in iter_batches(sys.argv[1], columns=["embedding"]):
    X = embeddings_view(b)   # (rows, 1024) float16 view, as a consumer would use it
    nbytes += X.nbytes
print(time.perf_counter() - t, nbytes)
""",
    "pyarrow.read_table": """
import sys, time, glob
import pyarrow.parquet as pq
t = time.perf_counter()
tbl = pq.read_table(sorted(glob.glob(sys.argv[1] + "/part-*.parquet")), columns=["embedding"])
X = tbl.column("embedding").combine_chunks().flatten().to_numpy().reshape(tbl.num_rows, -1)
print(time.perf_counter() - t, X.nbytes)
""",
}


def run_reader(name: str, table_dir: Path) -> tuple[float, int, float]:
    """(seconds, payload bytes, peak RSS in MiB) of one reader in a child process."""
    code = READERS[name] + "\nimport resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    out = subprocess.run([sys.executable, "-c", code, str(table_dir)], capture_output=True, text=True, check=True)
    lines = out.stdout.split("\n")
    secs, nbytes = lines[0].split()
    return float(secs), int(nbytes), int(lines[1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "embridge-bench-store")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "store.json")
    args = ap.parse_args()

    table = args.data / "text"
    from embridge.store import has_manifest, read_manifest_dict

    made = read_manifest_dict(table)[1] if has_manifest(table) else None
    if not made or made["num_rows"] != args.rows or made["dim"] != args.dim:
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "stages", "synth", "--out", str(args.data), "--modalities", "text",
             "--anchor", "text", "--n", str(args.rows), "--dim", str(args.dim), "--latent-dim", "64",
             "--no-rotate", "--dtype", "float16", "--seed", "0"],
            check=True,
        )
        print(f"made the table with embridge synth in {time.perf_counter() - t:.1f} s")
    file_bytes = sum(p.stat().st_size for p in table.glob("part-*.parquet"))
    payload = args.rows * args.dim * 2

    results = {}
    for reader in READERS:
        run_reader(reader, table)  # warm the page cache so both readers see the same state
    for _ in range(args.repeat):
        for name in READERS:  # interleaved, so machine noise hits both
            secs, nbytes, rss = run_reader(name, table)
            assert nbytes == payload, (name, nbytes, payload)
            best = results.setdefault(name, {"seconds": [], "peak_rss_mib": []})
            best["seconds"].append(secs)
            best["peak_rss_mib"].append(rss)
    for r in results.values():
        r["best_seconds"] = min(r["seconds"])
        r["throughput_gb_s"] = payload / r["best_seconds"] / 1e9
        r["peak_rss_mib"] = max(r["peak_rss_mib"])
    ours, base = results["embridge.iter_batches"], results["pyarrow.read_table"]
    summary = {
        "rows": args.rows,
        "dim": args.dim,
        "dtype": "float16",
        "table_mib": payload / 2**20,
        "files_mib": file_bytes / 2**20,
        "readers": results,
        "throughput_ratio_vs_read_table": ours["throughput_gb_s"] / base["throughput_gb_s"],
        "peak_rss_fraction_of_table": ours["peak_rss_mib"] / (payload / 2**20),
        "cpu_count": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{args.rows:,} x {args.dim} float16 = {payload / 2**20:,.0f} MiB of embeddings ({file_bytes / 2**20:,.0f} MiB on disk)")
    print(f"{'reader':<24}{'best s':>9}{'GB/s':>8}{'peak RSS MiB':>14}")
    for name, r in results.items():
        print(f"{name:<24}{r['best_seconds']:>9.2f}{r['throughput_gb_s']:>8.2f}{r['peak_rss_mib']:>14.0f}")
    print(f"throughput ratio (ours / read_table): {summary['throughput_ratio_vs_read_table']:.2f}  (target >= 0.8)")
    print(f"peak memory of streaming / table size: {summary['peak_rss_fraction_of_table']:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
