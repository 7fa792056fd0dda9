"""Querying a linkage OUT_DIR from the shell or Python: clusters by verdict, score and signal.

Stage: outputs (read-only). `select_clusters` is what `keyfarm clusters` prints, in the manner of
sqlite-utils' `rows`: a filtered, ordered table as text, JSON or CSV. Reads through
keyfarm.outputs, the one OUT_DIR reader.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm.errors import KeyfarmInputError
from keyfarm.outputs import out_dir_path, read_output

VERDICTS = ("farm", "review", "clear")
# SCHEMA.md's columns of clusters.parquet, then the daily-run ones when a run has them
COLUMNS = ("cluster_id", "n_keys", "n_accounts", "score", "verdict", "flagged", "signals", "total_tokens",
           "limit_multiplier", "explanation", "status", "first_seen", "previous_cluster_ids", "returning")
TEXT_COLUMNS = ("cluster_id", "verdict", "score", "n_accounts", "n_keys", "limit_multiplier", "signals")
FORMULA_START = ("=", "+", "-", "@")


def select_clusters(out_dir: str | Path, *, verdict=None, min_score: float | None = None,
                    signal=None, min_accounts: int | None = None, limit: int | None = None,
                    all_columns: bool = False) -> pd.DataFrame:
    """Clusters of OUT_DIR matching every filter, highest score first (ties: smaller cluster_id).

    `verdict` and `signal` are a name or a list of names (a cluster matches any of them; `signal`
    matches a name of its comma-separated `signals`); `min_score` and `min_accounts` are lower
    bounds. Columns: SCHEMA.md's (and the daily-run ones when present), or every column of
    clusters.parquet with `all_columns`. A verdict outside farm/review/clear is an input error.
    """
    out = out_dir_path(out_dir)
    clusters = read_output(out, "clusters", ("cluster_id", "score", "verdict", "signals", "n_accounts"))
    keep = np.ones(len(clusters), bool)
    if verdict is not None:
        wanted = [verdict] if isinstance(verdict, str) else list(verdict)
        unknown = [v for v in wanted if v not in VERDICTS]
        if unknown:
            raise KeyfarmInputError(f"clusters: verdict {unknown[0]!r} is not one of {', '.join(VERDICTS)}",
                                    table="clusters", column="verdict")
        keep &= clusters["verdict"].astype(str).isin(wanted).to_numpy()
    if min_score is not None:
        keep &= (pd.to_numeric(clusters["score"], errors="coerce") >= float(min_score)).fillna(False).to_numpy(bool)
    if min_accounts is not None:
        keep &= (pd.to_numeric(clusters["n_accounts"], errors="coerce") >= int(min_accounts)) \
            .fillna(False).to_numpy(bool)
    if signal is not None:
        wanted = {signal} if isinstance(signal, str) else set(signal)
        names = clusters["signals"].fillna("").astype(str).str.split(",")
        keep &= np.fromiter((bool(wanted.intersection(s.strip() for s in n)) for n in names), bool, len(clusters))
    selected = clusters[keep]
    score = pd.to_numeric(selected["score"], errors="coerce").fillna(-1.0).to_numpy()
    order = np.lexsort((selected["cluster_id"].to_numpy(np.int64), -score))
    selected = selected.iloc[order]
    if limit is not None:
        selected = selected.head(int(limit))
    if not all_columns:
        selected = selected[[c for c in COLUMNS if c in selected.columns]]
    return selected.reset_index(drop=True)


def _plain(value):
    """A cell as a JSON value: NumPy scalars as Python, nulls as None, timestamps as ISO text."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def to_json(frame: pd.DataFrame) -> str:
    """Rows as a JSON array of objects (non-ASCII escaped, so no control character reaches a terminal)."""
    rows = [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]
    return json.dumps(rows, indent=2, ensure_ascii=True)


def to_csv(frame: pd.DataFrame) -> str:
    """Rows as CSV with a header. A text cell starting with = + - @ gets a leading ' so a
    spreadsheet shows it instead of running it as a formula (as the report index's export does)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(frame.columns)
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            value = _plain(value)
            if value is None:
                value = ""
            elif isinstance(value, str) and value.startswith(FORMULA_START):
                value = "'" + value
            cells.append(value)
        writer.writerow(cells)
    return buffer.getvalue()


def to_text(frame: pd.DataFrame) -> str:
    """A fixed-width table of the columns an analyst scans first (ids, verdict, score, size, signals)."""
    columns = [c for c in TEXT_COLUMNS if c in frame.columns]
    cells = [[_cell(c, v) for c, v in zip(columns, row)] for row in frame[columns].itertuples(index=False)]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    for r in cells:
        lines.append("  ".join(v.rjust(w) if columns[i] not in ("verdict", "signals") else v.ljust(w)
                               for i, (v, w) in enumerate(zip(r, widths))).rstrip())
    return "\n".join(lines)


def _cell(column: str, value) -> str:
    value = _plain(value)
    if value is None:
        return "-"
    if column == "score":
        return f"{float(value):.3f}"
    if column == "limit_multiplier":
        return f"{float(value):.2f}"
    return str(value)
