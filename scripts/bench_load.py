"""Benchmark: keyfarm's load stage (read + validate) against a bare `pyarrow.parquet.read_table`
of the same files, measured in the same run; seconds, peak RSS and their ratio.

    PYTHONPATH=src .venv/bin/python scripts/bench_load.py --world /work/q13/world-50000-s4-d3 --repeat 3
    PYTHONPATH=src .venv/bin/python scripts/bench_load.py --world W --src /work/main/src   # also another tree

Each measurement runs in a fresh process (so peak RSS is that load's own), alternating between the
bare read and keyfarm's `load_tables` (and, with --src, the load of another source tree) so that a
busy machine slows them alike; medians over --repeat rounds.

keyfarm's load is split in two stages, each with the process's peak RSS when it ended: `read`
(read_table_files: the files as written) and `validate` (tables_from_frames: coercion, quarantine,
ordering, the validated frames); `held` is the resident memory once the raw frames are freed, what
the loaded tables themselves take, so peak − held is the loader's transient.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_BARE = """
import json, resource, sys, time
import pyarrow.parquet as pq
start = time.perf_counter()
rows = sum(pq.read_table(p).num_rows for p in sys.argv[1:])
print(json.dumps({"s": time.perf_counter() - start, "rows": rows,
                  "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""

_KEYFARM = """
import gc, json, resource, sys, time
from keyfarm import schema
from keyfarm.io import read_table_files, tables_from_frames

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**30

start = time.perf_counter()
frames = read_table_files(sys.argv[1], schema.TABLES)
read_s, read_peak = time.perf_counter() - start, peak()
tables = tables_from_frames(*(frames.pop(n) for n in list(frames)), max_quarantine_share=None)
total = time.perf_counter() - start
gc.collect()
print(json.dumps({"s": total, "read_s": read_s, "validate_s": total - read_s,
                  "rows": sum(tables.input_rows.values()), "read_peak_gib": read_peak,
                  "peak_gib": peak(), "held_gib": rss()}))
"""


def _run(code: str, args: list[str], src: str | None) -> dict:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", required=True, help="a folder of Parquet tables (keys.parquet, requests.parquet, ...)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--src", action="append", default=[], help="another keyfarm source tree to time as well")
    args = parser.parse_args()
    world = Path(args.world)
    files = [str(world / f"{t}.parquet") for t in ("keys", "accounts", "payments", "requests")
             if (world / f"{t}.parquet").is_file()]
    trees = [None, *args.src]
    runs: dict[str, list[dict]] = {"pyarrow read_table": [], **{f"keyfarm load ({s or 'this tree'})": [] for s in trees}}
    for i in range(args.repeat):
        runs["pyarrow read_table"].append(_run(_BARE, files, None))
        for src in trees:
            runs[f"keyfarm load ({src or 'this tree'})"].append(_run(_KEYFARM, [str(world)], src))
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]['s']:.1f} s" for k, v in runs.items()), file=sys.stderr)
    bare = statistics.median(r["s"] for r in runs["pyarrow read_table"])
    print(f"world {world}: {runs['pyarrow read_table'][0]['rows']:,} rows in {len(files)} Parquet files, "
          f"median of {args.repeat}")
    print(f"{'':<44}{'seconds':>9}{'× read_table':>14}{'peak GiB':>10}")
    for name, rs in runs.items():
        s = statistics.median(r["s"] for r in rs)
        print(f"{name:<44}{s:>9.2f}{s / bare:>14.2f}{statistics.median(r['peak_gib'] for r in rs):>10.2f}")
    print("\nkeyfarm stages (medians): seconds, peak GiB when the stage ended; held = RSS of the loaded tables")
    print(f"{'':<44}{'read s':>8}{'validate s':>12}{'read peak':>11}{'peak':>7}{'held':>7}")
    for name, rs in runs.items():
        if "read_s" not in rs[0]:
            continue
        med = {k: statistics.median(r[k] for r in rs)
               for k in ("read_s", "validate_s", "read_peak_gib", "peak_gib", "held_gib")}
        print(f"{name:<44}{med['read_s']:>8.2f}{med['validate_s']:>12.2f}{med['read_peak_gib']:>11.2f}"
              f"{med['peak_gib']:>7.2f}{med['held_gib']:>7.2f}")


if __name__ == "__main__":
    main()
