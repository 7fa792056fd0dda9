"""Profile `keyfarm link` stage by stage: wall time, peak and resident memory of each stage, and
optionally a cProfile of chosen stages.

    .venv/bin/python scripts/profile_link.py WORLD --out OUT
    .venv/bin/python scripts/profile_link.py --tables tables.pkl --out OUT --cprofile signals graph
    .venv/bin/python scripts/profile_link.py WORLD --out OUT --report   # with the report's share

Each stage's wall and CPU seconds (all threads, and ended child processes) are shown. Each stage's peak is its
own: the kernel's high-water mark (VmHWM) is reset when the stage starts (`/proc/self/clear_refs`
← 5) and read when it ends, so the table shows which stage sets the job's
peak and what each stage leaves resident (VmRSS) for the next. `--tables` takes a pickle of loaded
`keyfarm.io.Tables` to run the later stages without the loader. Linux only (reads /proc).
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import pickle
import pstats
import resource
import sys
import time
from pathlib import Path

from keyfarm import pipeline
from keyfarm.progress import Progress


def proc_status_gib(field: str) -> float:
    """A memory field of /proc/self/status (VmHWM, VmRSS, ...) in GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    raise KeyError(field)


def cpu_seconds() -> float:
    """CPU seconds of this process (all threads) and of its children that have ended (the
    report's forked page workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class StageProfile(Progress):
    """Progress that also records each stage's own peak and resident memory, and profiles the
    stages named in `cprofile` (stats written to `profile_dir/<stage>.prof`)."""

    def __init__(self, cprofile=(), profile_dir: Path | None = None):
        super().__init__(quiet=False)
        self.rows: list[tuple[str, float, float, float, float]] = []   # stage, wall s, CPU s, peak, RSS
        self.cprofile = set(cprofile)
        self.profile_dir = profile_dir

    @contextlib.contextmanager
    def stage(self, name: str):
        reset_peak()
        profiler = cProfile.Profile() if name in self.cprofile else None
        begin, cpu = time.perf_counter(), cpu_seconds()
        with super().stage(name) as info:
            if profiler is not None:
                profiler.enable()
            try:
                yield info
            finally:
                if profiler is not None:
                    profiler.disable()
        self.rows.append((name, time.perf_counter() - begin, cpu_seconds() - cpu, proc_status_gib("VmHWM"),
                          proc_status_gib("VmRSS")))
        if profiler is not None:
            path = self.profile_dir / f"{name}.prof"
            profiler.dump_stats(path)
            stats = pstats.Stats(str(path), stream=sys.stderr)
            print(f"--- cProfile of {name} (top 30 by cumulative time) ---", file=sys.stderr)
            stats.sort_stats("cumulative").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("world", nargs="?", help="input folder (or give --tables)")
    parser.add_argument("--tables", help="pickle of loaded keyfarm.io.Tables (skips the loader)")
    parser.add_argument("--out", required=True, help="OUT_DIR to write (as keyfarm link --no-report)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cprofile", nargs="*", default=[], help="stages to run under cProfile")
    parser.add_argument("--report", action="store_true", help="also write the report (as keyfarm link does)")
    args = parser.parse_args()
    if (args.world is None) == (args.tables is None):
        parser.error("give WORLD or --tables")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = StageProfile(args.cprofile, out)
    if args.tables:
        with progress.stage("unpickle"):
            with open(args.tables, "rb") as f:
                source = pickle.load(f)
    else:
        source = args.world
    result = pipeline.link(source, seed=args.seed, progress=progress)
    pipeline.finish_run(result, args.world, out, progress, report=args.report)
    print(f"{'stage':<14}{'s':>8}{'CPU s':>8}{'peak GiB':>10}{'RSS GiB':>9}")
    for name, seconds, cpu, peak, rss in progress.rows:
        print(f"{name:<14}{seconds:>8.1f}{cpu:>8.1f}{peak:>10.2f}{rss:>9.2f}")
    wall, cpu = sum(r[1] for r in progress.rows), sum(r[2] for r in progress.rows)
    print(f"{'total':<14}{wall:>8.1f}{cpu:>8.1f}{max(r[3] for r in progress.rows):>10.2f}")
    report = [r for r in progress.rows if r[0] == "report"]
    if report:   # CPU seconds (all threads of the process) are less swayed by other jobs than wall time
        print(f"report share: {report[0][1] / wall:.1%} of wall, {report[0][2] / cpu:.1%} of CPU")


if __name__ == "__main__":
    main()
