"""Benchmark: generate and write a synthetic world; prints time per stage and peak memory.

    .venv/bin/python scripts/bench_generate.py --keys 1000000 --repeat 3
    .venv/bin/python scripts/bench_generate.py --continue --keys 200000 --repeat 3
    .venv/bin/python scripts/bench_generate.py --continue --prev /work/q/w1m --repeat 1

Each repeat runs in a fresh process so peak memory (VmHWM) is that run's own; CPU time is printed
beside wall time (on a shared machine the wall time measures the neighbours too). `--continue` times
the next period (`keyfarm generate OUT --continue PREV`: continue_world + write_world) of `--prev`,
or of a world of --keys/--seed generated once beforehand (not timed).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
from keyfarm.synth import generate_world, write_world
keys, seed, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c0 = time.process_time(); t0 = time.perf_counter(); world = generate_world(keys, seed); t1 = time.perf_counter()
write_world(world, out); t2 = time.perf_counter()
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"generate_s": t1 - t0, "write_s": t2 - t1, "cpu_s": time.process_time() - c0, "peak_gib": int(hwm) / 2**20,
                  "requests": len(world["requests"]), "keys": len(world["keys"])}))
"""

CHILD_CONTINUE = r"""
import json, sys, time
from keyfarm.synth import write_world
from keyfarm.synth.continuation import continue_world
prev, out = sys.argv[1], sys.argv[2]
c0 = time.process_time(); t0 = time.perf_counter(); world, params = continue_world(prev); t1 = time.perf_counter()
write_world(world, out, params=params); t2 = time.perf_counter()
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"generate_s": t1 - t0, "write_s": t2 - t1, "cpu_s": time.process_time() - c0, "peak_gib": int(hwm) / 2**20,
                  "requests": len(world["requests"]), "keys": len(world["keys"])}))
"""


def child(args, tmp: str, prev: str | None) -> dict:
    """One timed run in a fresh process; its last stdout line as a dict."""
    argv = [sys.executable, "-c", CHILD_CONTINUE, prev, tmp] if prev is not None else \
        [sys.executable, "-c", CHILD, str(args.keys), str(args.seed), tmp]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--continue", dest="cont", action="store_true",
                        help="time the next period of a world (generate --continue) instead of a first one")
    parser.add_argument("--prev", type=Path, default=None, help="with --continue: the world to continue")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as base:
        prev = None
        if args.cont:
            prev = str(args.prev) if args.prev is not None else str(Path(base) / "prev")
            if args.prev is None:
                from keyfarm.synth import generate_world, write_world
                write_world(generate_world(args.keys, args.seed), prev)
        for i in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(child(args, tmp, prev))
                print(f"run {i + 1}: {runs[-1]}", file=sys.stderr)
    med = {k: statistics.median(r[k] for r in runs) for k in ("generate_s", "write_s", "cpu_s", "peak_gib")}
    what = "continue" if args.cont else "generate"
    print(f"{what}: keys {runs[0]['keys']:,}  requests {runs[0]['requests']:,}  runs {len(runs)}")
    print(f"generate  median {med['generate_s']:.1f} s")
    print(f"write     median {med['write_s']:.1f} s")
    print(f"CPU       median {med['cpu_s']:.1f} s (user + system of the process: less sensitive to a loaded machine)")
    print(f"peak RSS  median {med['peak_gib']:.2f} GiB")


if __name__ == "__main__":
    main()
