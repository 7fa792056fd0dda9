"""Benchmark: `keyfarm link` on a generated world; total time, time per stage, peak memory.

    .venv/bin/python scripts/bench_link.py --keys 1000000            # generates the world first
    .venv/bin/python scripts/bench_link.py --world /tmp/w1m --repeat 3
Each repeat runs `keyfarm link` in a fresh process (so JIT compilation from the Numba cache and
peak RSS are that run's own); stage times come from the run's run.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("load", "signals", "graph", "communities", "scores", "history", "activity", "write", "report")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--world", help="existing world folder (skips generation)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--evaluate", action="store_true", help="also print detection quality")
    parser.add_argument("--work", help="folder for the outputs (out0, out1, ...; default: a new temporary one)")
    args = parser.parse_args()
    tmp = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-link-"))
    tmp.mkdir(parents=True, exist_ok=True)
    world = Path(args.world) if args.world else tmp / "world"
    if not args.world:
        subprocess.run([sys.executable, "-m", "keyfarm", "generate", str(world), "--keys", str(args.keys),
                        "--seed", str(args.seed), "--quiet"], check=True)
    runs = []
    for i in range(args.repeat):
        out = tmp / f"out{i}"
        start = time.perf_counter()
        code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        proc = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "keyfarm", "link",
                               str(world), "--out", str(out), "--no-report", "--quiet"],
                              capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
        peak_kib = int(proc.stdout.strip().splitlines()[-1])
        run = json.loads((out / "run.json").read_text())
        runs.append({"wall": wall, "peak_gib": peak_kib / 2**20, "timings": run["timings"],
                     "peaks": run.get("peak_rss_gib", {}), "counts": run["counts"], "valid_rows": run["valid_rows"]})
        print(f"run {i + 1}: {wall:.1f} s, peak {peak_kib / 2**20:.2f} GiB", file=sys.stderr)
    first = runs[0]
    print(f"world {world}: {first['valid_rows']['keys']:,} keys, {first['valid_rows']['requests']:,} requests")
    print(f"edges {first['counts']['edges']:,}  clusters {first['counts']['clusters']:,}  "
          f"flagged {first['counts']['flagged_clusters']:,} ({first['counts']['flagged_keys']:,} keys)")
    # peak so far when the stage ended (run.json's peak_rss_gib): the stage that raises it is the
    # first with the job's peak
    print(f"{'stage':<14}{'median s':>10}{'peak GiB':>10}")
    for stage in sorted(first["timings"], key=lambda s: STAGES.index(s) if s in STAGES else len(STAGES)):
        peak = statistics.median(r["peaks"].get(stage, float("nan")) for r in runs)
        print(f"{stage:<14}{statistics.median(r['timings'][stage] for r in runs):>10.1f}{peak:>10.2f}")
    print(f"{'total (wall)':<14}{statistics.median(r['wall'] for r in runs):>10.1f}")
    print(f"peak RSS median {statistics.median(r['peak_gib'] for r in runs):.2f} GiB over {len(runs)} run(s)")
    if args.evaluate and (world / "truth.parquet").exists():
        subprocess.run([sys.executable, "-m", "keyfarm", "evaluate", str(tmp / "out0"),
                        "--truth", str(world / "truth.parquet")], check=True)


if __name__ == "__main__":
    main()
