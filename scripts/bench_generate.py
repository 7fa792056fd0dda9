"""Benchmark: generate and write a synthetic world; prints time per stage and peak memory.

    .venv/bin/python scripts/bench_generate.py --keys 1000000 --repeat 3
Each repeat runs in a fresh process so peak memory (VmHWM) is that run's own.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
from keyfarm.synth import generate_world, write_world
keys, seed, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
t0 = time.perf_counter(); world = generate_world(keys, seed); t1 = time.perf_counter()
write_world(world, out); t2 = time.perf_counter()
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"generate_s": t1 - t0, "write_s": t2 - t1, "peak_gib": int(hwm) / 2**20,
                  "requests": len(world["requests"]), "keys": len(world["keys"])}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, "-c", CHILD, str(args.keys), str(args.seed), tmp],
                                 capture_output=True, text=True, check=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
            print(f"run {i + 1}: {runs[-1]}", file=sys.stderr)
    med = {k: statistics.median(r[k] for r in runs) for k in ("generate_s", "write_s", "peak_gib")}
    print(f"keys {runs[0]['keys']:,}  requests {runs[0]['requests']:,}  runs {len(runs)}")
    print(f"generate  median {med['generate_s']:.1f} s")
    print(f"write     median {med['write_s']:.1f} s")
    print(f"peak RSS  median {med['peak_gib']:.2f} GiB")


if __name__ == "__main__":
    main()
