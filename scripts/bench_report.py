"""Time the report stage on an existing OUT_DIR: median of N runs of `keyfarm report`, and sizes.

Usage:
  python -m keyfarm generate W --keys 50000 --seed 4 && python -m keyfarm link W --out OUT --no-report
  python scripts/bench_report.py OUT --runs 3

Each run is a fresh process (imports included, as `keyfarm report` pays them); prints the elapsed
and user CPU seconds of each run, their medians, the report's total bytes and its largest page.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    elapsed, user = [], []
    for _ in range(args.runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "keyfarm", "report", args.out_dir, "--quiet"], check=True,
                       stdout=subprocess.DEVNULL, env=os.environ)
        elapsed.append(time.perf_counter() - start)
        user.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - before)
        print(f"run: {elapsed[-1]:.2f} s elapsed, {user[-1]:.2f} s user", flush=True)
    report = Path(args.out_dir) / "report"
    files = [p for p in report.rglob("*") if p.is_file()]
    largest = max((p for p in files if p.parent.name == "clusters"), key=lambda p: p.stat().st_size, default=None)
    print(f"median: {statistics.median(elapsed):.2f} s elapsed, {statistics.median(user):.2f} s user")
    print(f"report: {sum(p.stat().st_size for p in files):,} bytes in {len(files):,} files; largest page "
          f"{largest.name if largest else '-'} {largest.stat().st_size if largest else 0:,} bytes")


if __name__ == "__main__":
    main()
