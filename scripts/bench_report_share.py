"""The report stage's share of `keyfarm link`: run.json's report timing / the sum of its stages.

Usage:
  python -m keyfarm generate W --keys 50000 --seed 4
  python scripts/bench_report_share.py W --work DIR --runs 3            # re-link into one OUT_DIR
  python scripts/bench_report_share.py W --work DIR --runs 3 --fresh    # a new OUT_DIR each run

Each run is a fresh `keyfarm link W --out DIR/out` process. A first, untimed run warms the Numba
cache and (without `--fresh`) leaves the report that the timed runs replace, as a daily re-run
does; `--fresh` removes OUT_DIR before each run (not timed), so no run replaces a report. Prints,
per run, each stage's seconds and the report's share, then the medians. Issue 19's bar: at most
25% on a 50k world.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path


def link_once(world: str, out: Path, *, fresh: bool) -> dict:
    """Run `keyfarm link WORLD --out OUT --quiet` in a new process; return run.json's timings."""
    if fresh and out.exists():
        shutil.rmtree(out)
    subprocess.run([sys.executable, "-m", "keyfarm", "link", world, "--out", str(out), "--quiet"], check=True,
                   stdout=subprocess.DEVNULL, env=os.environ)
    return json.loads((out / "run.json").read_text())["timings"]


def share(timings: dict) -> tuple[float, float]:
    """(report seconds, report / sum of all stages)."""
    total = sum(float(v) for v in timings.values())
    report = float(timings.get("report", 0.0))
    return report, report / total if total else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("world")
    parser.add_argument("--work", required=True, help="folder for OUT_DIR (created)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="remove OUT_DIR before each run")
    args = parser.parse_args()
    out = Path(args.work) / "out"
    out.parent.mkdir(parents=True, exist_ok=True)
    link_once(args.world, out, fresh=args.fresh)   # warm-up: Numba cache, and the report to replace
    reports, shares, totals = [], [], []
    for i in range(args.runs):
        timings = link_once(args.world, out, fresh=args.fresh)
        report, part = share(timings)
        reports.append(report)
        shares.append(part)
        totals.append(sum(float(v) for v in timings.values()))
        stages = " ".join(f"{k} {float(v):.2f}" for k, v in sorted(timings.items()))
        print(f"run {i + 1}: {stages} | total {totals[-1]:.2f} s, report {report:.2f} s = {part:.1%}", flush=True)
    print(f"median: report {statistics.median(reports):.2f} s of {statistics.median(totals):.2f} s, "
          f"share {statistics.median(shares):.1%} ({'fresh OUT_DIR' if args.fresh else 'replacing the report'})")


if __name__ == "__main__":
    main()
