"""Wall time of the default pipeline per stage, from an empty DVC cache, in a fresh clone of HEAD.

Clones this repository's committed HEAD into a temporary folder (a clone has an empty `.dvc/cache`
and none of the pipeline's outputs), runs `dvc repro --force` there with the `embridge` of this
virtual environment on PATH, and timestamps DVC's "Running stage '<name>'" lines: a stage's time
runs from its line to the next one (so it includes DVC hashing and caching its outputs), the last
to DVC's exit. Then every metrics file and `reports/summary.md` of the clone is compared byte for
byte with this checkout's (the committed results). Refuses a checkout with uncommitted changes
under pipeline/ or stages/: `make`'s editable install runs this checkout's code in the clone.

    python bench/pipeline.py              # about 10 minutes on 2 cores
Writes bench/results/pipeline.json and prints a table (stage, seconds; totals per stage family).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STAGE = re.compile(r"Running stage '([^']+)'")


def compared_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in [*root.glob("metrics/**/*.json"), root / "reports" / "summary.md"] if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "pipeline.json")
    ap.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    args = ap.parse_args()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "pipeline", "stages", "dvc.yaml", "params.yaml"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout
    if dirty.strip():
        sys.exit(f"bench/pipeline.py: commit first; uncommitted changes the clone would not have:\n{dirty}")
    tmp = Path(tempfile.mkdtemp(prefix="embridge-pipeline-"))
    clone = tmp / "embridge"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PATH": f"{Path(sys.executable).absolute().parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    dvc = str(Path(sys.executable).absolute().parent / "dvc")  # absolute: the clone runs elsewhere
    starts: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen([dvc, "repro", "--force"], cwd=clone, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdout is not None
    for line in proc.stdout:
        now = time.perf_counter() - t0
        if m := STAGE.search(line):
            starts.append((m.group(1), now))
            print(f"{now:7.1f} s  {m.group(1)}", flush=True)
    rc = proc.wait()
    total = time.perf_counter() - t0
    if rc:
        sys.exit(f"dvc repro failed (exit {rc}) in {clone}")
    stages = {name: (starts[i + 1][1] if i + 1 < len(starts) else total) - t for i, (name, t) in enumerate(starts)}
    families: dict[str, float] = defaultdict(float)
    for name, s in stages.items():
        families[name.split("@")[0]] += s
    mine, theirs = compared_files(ROOT), compared_files(clone)
    differ = [str(p) for p in sorted(set(mine) | set(theirs))
              if not ((ROOT / p).is_file() and (clone / p).is_file() and filecmp.cmp(ROOT / p, clone / p, shallow=False))]
    res = {"total_seconds": total, "stages": stages, "families": dict(families), "cpu_count": os.cpu_count(),
           "load_avg_after": os.getloadavg(), "files_compared": len(theirs), "files_differing": differ,
           "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print("\n| stage family | stages | seconds |\n|---|---:|---:|")
    for fam, s in sorted(families.items(), key=lambda kv: -kv[1]):
        print(f"| {fam} | {sum(1 for n in stages if n.split('@')[0] == fam)} | {s:.1f} |")
    print(f"| **total** (`dvc repro --force`, empty cache) | {len(stages)} | **{total:.1f}** ({int(total // 60)} min {total % 60:.1f} s) |")
    print(f"{len(theirs)} result files compared with this checkout's: "
          + ("all byte-identical" if not differ else f"{len(differ)} differ: {differ}"))
    if args.keep:
        print(f"clone kept: {clone}")
    else:
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
