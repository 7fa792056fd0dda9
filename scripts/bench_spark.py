"""Local engine against the Spark engine (local[2]) on one generated world: stage times, driver peak
memory (VmHWM of the Python driver; for Spark also of its JVM), edges per key.

Each engine runs in its own child process so peak memories do not mix. Example:
    .venv/bin/python scripts/bench_spark.py --keys 100000
    .venv/bin/python scripts/bench_spark.py --world /tmp/world-1m --partitions 16
    .venv/bin/python scripts/bench_spark.py --world W --spark-conf spark.eventLog.enabled=true \
        --spark-conf spark.eventLog.dir=file:///tmp/spark-events --spark-conf spark.eventLog.compress=false
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def vm_hwm_mib(pid: str | int = "self") -> float:
    """Peak resident set size of a process in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(engine: str, world: str, seed: int, partitions: int, driver_memory: str, out: str,
          spark_conf=()) -> None:
    from keyfarm.progress import Progress

    progress = Progress(quiet=True)
    begin = time.perf_counter()
    extra = {}
    if engine == "local":
        from keyfarm.pipeline import link
        result = link(world, seed=seed, progress=progress)
    else:
        from keyfarm.spark import link_spark, spark_session
        from keyfarm.spark.engine import parse_spark_conf
        spark = spark_session("local[2]", shuffle_partitions=partitions, driver_memory=driver_memory,
                              conf=parse_spark_conf(spark_conf))
        extra["session_s"] = round(time.perf_counter() - begin, 2)
        # the edges are written by the executors, as `keyfarm link --engine spark` writes them: the
        # driver never collects them
        result = link_spark(world, seed=seed, progress=progress, spark=spark,
                            then=lambda r: r.edges.write(Path(out).with_suffix(".edges.parquet")))
        proc = getattr(spark.sparkContext._gateway, "proc", None)
        if proc is not None:
            extra["jvm_hwm_mib"] = round(vm_hwm_mib(proc.pid), 1)
        spark.stop()
    total = time.perf_counter() - begin
    members = result.members
    Path(out).write_text(json.dumps({
        "engine": engine, "total_s": round(total, 2), "timings": progress.timings,
        "driver_hwm_mib": round(vm_hwm_mib(), 1), "keys": len(members), "edges": len(result.edges),
        "edges_per_key": len(result.edges) / max(len(members), 1),
        "members_digest": int(members["cluster_id"].sum()), **extra}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--requests-per-key", type=float, default=10.0)
    parser.add_argument("--world", help="an existing world folder (else one is generated)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--partitions", type=int, default=8, help="spark.sql.shuffle.partitions")
    parser.add_argument("--driver-memory", default="6g", help="Spark driver JVM heap")
    parser.add_argument("--engines", default="local,spark")
    parser.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE",
                        help="a Spark setting (repeatable), e.g. spark.eventLog.enabled=true")
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.world, args.seed, args.partitions, args.driver_memory, args.child[1],
              args.spark_conf)
        return

    tmp = tempfile.TemporaryDirectory(prefix="bench-spark-")
    world = args.world
    if world is None:
        from keyfarm.synth import generate_world, write_world
        t = time.perf_counter()
        world = str(write_world(generate_world(args.keys, seed=args.seed,
                                               requests_per_key=args.requests_per_key), Path(tmp.name) / "world"))
        print(f"generated {args.keys:,} keys in {time.perf_counter() - t:.0f}s -> {world}", file=sys.stderr)
    results = []
    for engine in args.engines.split(","):
        out = Path(tmp.name) / f"{engine}.json"
        cmd = [sys.executable, __file__, "--world", world, "--seed", str(args.seed), "--partitions",
               str(args.partitions), "--driver-memory", args.driver_memory, "--child", engine, str(out)]
        cmd += [f"--spark-conf={item}" for item in args.spark_conf]
        subprocess.run(cmd, check=True)
        results.append(json.loads(out.read_text()))
        print(json.dumps(results[-1]), file=sys.stderr)

    stages = ["load", "signals", "graph", "communities", "scores"]
    print(f"\nworld: {world} ({results[0]['keys']:,} keys)")
    print(f"{'engine':8} " + " ".join(f"{s:>11}" for s in stages) + f" {'total s':>9} {'driver MiB':>11} "
          f"{'JVM MiB':>9} {'edges/key':>10}")
    for r in results:
        print(f"{r['engine']:8} " + " ".join(f"{r['timings'].get(s, float('nan')):11.1f}" for s in stages)
              + f" {r['total_s']:9.1f} {r['driver_hwm_mib']:11.0f} {r.get('jvm_hwm_mib', float('nan')):9.0f}"
              f" {r['edges_per_key']:10.3f}")
    if len(results) == 2:
        a, b = results
        print(f"\n{b['engine']}/{a['engine']}: time {b['total_s'] / a['total_s']:.2f}x, "
              f"driver peak {b['driver_hwm_mib'] / a['driver_hwm_mib']:.2f}x; "
              f"same membership digest: {a['members_digest'] == b['members_digest']}")


if __name__ == "__main__":
    main()
