"""Per-stage task statistics from a Spark event log: task count, median and max task time, median
and max task input, and whether a stage over data ran as a single task.

Enable the log on the run, uncompressed so this script reads it with the standard library:
    keyfarm link W --out O --engine spark --spark-conf spark.eventLog.enabled=true \
        --spark-conf spark.eventLog.dir=file:///tmp/spark-events --spark-conf spark.eventLog.compress=false
    python scripts/spark_stages.py /tmp/spark-events/local-1764600000000 [--markdown] [--min-input-mib 1]

A task's input is what it read: file bytes plus shuffle bytes (local and remote). Task time is the
executor run time. Stages are listed in the order they completed; skipped stages (whose shuffle
output was reused) never ran and are not listed. Tasks of a stage attempt that was retried count
under the stage.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    stage_id: int
    name: str = ""
    n_tasks: int = 0
    task_ms: list = field(default_factory=list)
    input_bytes: list = field(default_factory=list)
    completed: int = 0     # completion time (ms since epoch), for ordering
    job: str = ""          # the job's description (`keyfarm signals`), when the engine set one
    ops: str = ""          # the Python operators it ran (MapInPandas, FlatMapGroupsInPandas…)

    def row(self) -> dict:
        med_in = statistics.median(self.input_bytes) if self.input_bytes else 0
        max_in = max(self.input_bytes, default=0)
        return {"stage": self.stage_id, "job": self.job, "name": self.name, "ops": self.ops,
                "tasks": len(self.task_ms),
                "median_task_s": statistics.median(self.task_ms) / 1000 if self.task_ms else 0.0,
                "max_task_s": max(self.task_ms, default=0) / 1000,
                "median_input_mib": med_in / 2**20, "max_input_mib": max_in / 2**20,
                "max_over_median_input": (max_in / med_in) if med_in else (float("inf") if max_in else 0.0)}


def read_events(path: Path):
    """The JSON events of one uncompressed event log file (or of every file of a rolling log folder)."""
    files = sorted(p for p in path.iterdir() if p.name.startswith("events_")) if path.is_dir() else [path]
    for file in files:
        if file.suffix in (".lz4", ".zstd", ".snappy", ".lzf"):
            raise SystemExit(f"{file}: a compressed event log; run with "
                             "--spark-conf spark.eventLog.compress=false")
        with file.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    if not line.endswith("\n"):   # a log still being written ends mid-line
                        print(f"{file}: stopped at line {number}, not yet complete (the run is still "
                              "writing its log); the stages below are those done so far", file=sys.stderr)
                        return
                    raise SystemExit(f"{file}, line {number}: not a JSON event (is this a Spark event log?)")
                yield event


def stage_table(events) -> list[dict]:
    """One row per completed stage (see Stage.row), in completion order."""
    return [s.row() for s in collect_stages(events)]


def job_table(stages: list[Stage]) -> list[dict]:
    """Per job description (keyfarm stage): Spark stages, tasks, median and max task time over all
    their tasks, and how many of the stages read data in a single task."""
    out = {}
    for stage in stages:
        row = out.setdefault(stage.job, {"job": stage.job, "stages": 0, "tasks": 0, "task_ms": [], "single": 0})
        row["stages"] += 1
        row["tasks"] += len(stage.task_ms)
        row["task_ms"].extend(stage.task_ms)
        row["single"] += int(len(stage.task_ms) == 1 and max(stage.input_bytes, default=0) > 0)
    return [{"job": r["job"], "stages": r["stages"], "tasks": r["tasks"],
             "median_task_s": statistics.median(r["task_ms"]) / 1000, "max_task_s": max(r["task_ms"]) / 1000,
             "total_task_s": sum(r["task_ms"]) / 1000, "single_task_stages_over_data": r["single"]}
            for r in out.values()]


def collect_stages(events) -> list[Stage]:
    """The completed stages of an event log, in completion order."""
    stages: dict[int, Stage] = {}
    described: dict[int, str] = {}    # stage → its job's description (keyfarm's stage name)
    for event in events:
        kind = event.get("Event")
        if kind == "SparkListenerJobStart":
            text = (event.get("Properties") or {}).get("spark.job.description")
            for stage_id in event.get("Stage IDs", []):
                if text:
                    described.setdefault(stage_id, text)
        elif kind == "SparkListenerTaskEnd":
            stage = stages.setdefault(event["Stage ID"], Stage(event["Stage ID"]))
            metrics = event.get("Task Metrics") or {}
            shuffle = metrics.get("Shuffle Read Metrics") or {}
            read = (metrics.get("Input Metrics") or {}).get("Bytes Read", 0) + \
                shuffle.get("Remote Bytes Read", 0) + shuffle.get("Local Bytes Read", 0)
            stage.task_ms.append(metrics.get("Executor Run Time", 0))
            stage.input_bytes.append(read)
        elif kind == "SparkListenerStageCompleted":
            info = event["Stage Info"]
            stage = stages.setdefault(info["Stage ID"], Stage(info["Stage ID"]))
            stage.name = info.get("Stage Name", "")
            stage.n_tasks = info.get("Number of Tasks", 0)
            stage.completed = info.get("Completion Time", 0)
            stage.ops = ",".join(sorted(pandas_operators(info.get("RDD Info") or [])))
    for stage_id, text in described.items():
        if stage_id in stages:
            stages[stage_id].job = text
    done = [s for s in stages.values() if s.task_ms]
    return sorted(done, key=lambda s: (s.completed, s.stage_id))


def pandas_operators(rdds) -> set:
    """Names of the Python (pandas) operators among a stage's RDDs, from their plan scopes: with
    adaptive execution a stage's name is Spark's own call site, and these say which keyfarm step
    ran in it (mapInPandas: a per-batch map; FlatMapGroupsInPandas: an applyInPandas group)."""
    names = set()
    for rdd in rdds:
        try:
            scope = json.loads(rdd.get("Scope") or "{}")
        except json.JSONDecodeError:
            continue
        if "Pandas" in scope.get("name", ""):
            names.add(scope["name"])
    return names


def short_name(name: str) -> str:
    """"toPandas at /long/path/engine.py:412" → "toPandas at engine.py:412"."""
    op, sep, where = name.partition(" at ")
    return op + (sep + where.rsplit("/", 1)[-1] if sep else "")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", type=Path, help="an event log file (or a rolling log's folder)")
    parser.add_argument("--min-input-mib", type=float, default=0.0,
                        help="list only stages whose tasks read this much in all (default: every stage)")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table instead of aligned text")
    parser.add_argument("--json", action="store_true", help="the rows as JSON")
    parser.add_argument("--by-job", action="store_true",
                        help="one row per job description (keyfarm stage) instead of per Spark stage")
    args = parser.parse_args(argv)
    if args.by_job:
        jobs = job_table(collect_stages(read_events(args.log)))
        if args.json:
            print(json.dumps(jobs, indent=2))
            return 0
        print("| job | Spark stages | tasks | median task s | max task s | sum of task s | single-task stages over data |")
        print("|---|---|---|---|---|---|---|")
        for r in jobs:
            print(f"| {r['job'] or '(none)'} | {r['stages']} | {r['tasks']} | {r['median_task_s']:.2f} | "
                  f"{r['max_task_s']:.2f} | {r['total_task_s']:.1f} | {r['single_task_stages_over_data']} |")
        return 0
    rows = stage_table(read_events(args.log))
    rows = [r for r in rows if r["median_input_mib"] * r["tasks"] >= args.min_input_mib or
            r["max_input_mib"] >= args.min_input_mib]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = ["stage", "job", "tasks", "median s", "max s", "median in MiB", "max in MiB", "max/median in",
            "pandas operators", "name"]
    body = [[str(r["stage"]), r["job"], str(r["tasks"]), f"{r['median_task_s']:.2f}", f"{r['max_task_s']:.2f}",
             f"{r['median_input_mib']:.1f}", f"{r['max_input_mib']:.1f}",
             f"{r['max_over_median_input']:.2f}", r["ops"] or "-", short_name(r["name"])] for r in rows]
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for line in body:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
        print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
        for line in body:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths)))
    single = [r for r in rows if r["tasks"] == 1 and r["max_input_mib"] > 0]
    print(f"{len(rows)} stages; {len(single)} read data in a single task"
          + (": " + ", ".join(str(r["stage"]) for r in single) if single else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
