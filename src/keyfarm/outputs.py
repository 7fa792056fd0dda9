"""Reading a linkage OUT_DIR (outputs stage): the one place that opens its files.

Report, enforcement and evaluation read members/clusters/edges/hubs, run.json and the quarantine
counts through these functions, each then checking what it relies on. A reader asks only for the
columns it needs and keeps any others (runs add columns and tables, e.g. `changes.parquet`,
over time), a missing or unreadable file is one KeyfarmInputError naming it, and run.json that is
not a JSON object is an error, not an empty run. pipeline.write_outputs writes the folder.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa

from keyfarm.errors import KeyfarmInputError

TABLES = ("members", "clusters", "edges", "hubs", "changes")


def out_dir_path(out_dir: str | Path) -> Path:
    """`out_dir` as a Path, or KeyfarmInputError when it is no folder."""
    path = Path(out_dir)
    if not path.is_dir():
        raise KeyfarmInputError(f"OUT_DIR {path} not found or not a directory (expected a `keyfarm link` OUT_DIR)")
    return path


def read_table(path: str | Path, table: str, required=(), *, missing_ok: bool = False) -> pd.DataFrame | None:
    """A Parquet output table (or a truth/labels file) with at least the `required` columns.

    `path` is one Parquet file or a folder of Parquet parts, as Spark writes a table (`part-*.parquet`;
    `_SUCCESS` and `.crc` files skipped), read in path order. Returns None for a missing file when
    `missing_ok`; a file pandas cannot read (truncated, not Parquet) or without a required column is
    a KeyfarmInputError naming file and column.
    """
    from keyfarm.readers import list_parts

    path = Path(path)
    if not path.is_file() and not path.is_dir():
        if missing_ok:
            return None
        raise KeyfarmInputError(f"{table}: {path} not found (is this a `keyfarm link` OUT_DIR?)", table=table)
    files = list_parts(path, table) if path.is_dir() else [path]
    frames = []
    for file in files:
        try:
            frames.append(pd.read_parquet(file))
        except (pa.ArrowException, OSError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise KeyfarmInputError(f"{table}: cannot read {file}: {first}", table=table) from None
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    for column in required:
        if column not in frame.columns:
            raise KeyfarmInputError(f"{table}: column {column!r} missing in {path}", table=table, column=column)
    return frame


def read_output(out_dir: str | Path, table: str, required=(), *, missing_ok: bool = False) -> pd.DataFrame | None:
    """OUT_DIR/<table>.parquet (see read_table)."""
    return read_table(Path(out_dir) / f"{table}.parquet", table, required, missing_ok=missing_ok)


def read_run(out_dir: str | Path, *, missing_ok: bool = True) -> dict:
    """run.json as a dict ({} when absent and `missing_ok`)."""
    path = Path(out_dir) / "run.json"
    if not path.is_file():
        if missing_ok:
            return {}
        raise KeyfarmInputError(f"run: {path} not found", table="run")
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyfarmInputError(f"run: {path} is not valid JSON: {exc}", table="run") from None
    if not isinstance(run, dict):
        raise KeyfarmInputError(f"run: {path} holds a JSON {type(run).__name__}, not an object", table="run")
    return run


def quarantine_counts(out_dir: str | Path, run: dict) -> dict:
    """Quarantined rows per table and reason: from run.json, else counted in quarantine/."""
    if isinstance(run.get("quarantined"), dict):
        return run["quarantined"]
    counts = {}
    for path in sorted((Path(out_dir) / "quarantine").glob("*.parquet")):
        frame = read_table(path, f"quarantine/{path.name}")
        reasons = frame["reason"].astype(str) if "reason" in frame.columns else pd.Series(["?"] * len(frame))
        counts[path.stem] = {str(k): int(v) for k, v in reasons.value_counts().sort_index().items()}
    return counts
