"""Reading a linkage OUT_DIR for the report, tolerating missing extra columns.

Stage: report. SCHEMA.md fixes members/clusters/edges; keyfarm's extra columns (evidence tokens,
features, usage) may be absent in older or foreign runs, so they are filled with nulls and the
pages show less rather than fail.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm.graph.weighting import SIGNALS  # noqa: F401  (report.graph and report.cluster import it from here)
from keyfarm.outputs import out_dir_path, quarantine_counts, read_output, read_run

MEMBER_REQUIRED = ("key_id", "account_id", "cluster_id")
MEMBER_EXTRA = ("org_id", "email_domain", "created_at", "daily_token_limit", "total_tokens",
                "peak_daily_tokens", "n_requests", "usage")
CLUSTER_REQUIRED = ("cluster_id",)
CLUSTER_EXTRA = ("n_keys", "n_accounts", "score", "verdict", "flagged", "signals", "total_tokens", "limit_multiplier",
                 "explanation", "usage", "creation_spread_hours", "synchrony", "cotiming", "prompt_homogeneity",
                 "n_signals", "declared_org", "institutional_domain", "weakest_key_a", "weakest_key_b",
                 "weakest_weight", "weakest_signal", "strongest_key_a", "strongest_key_b",
                 "strongest_weight", "strongest_signal", "strongest_evidence")
EDGE_REQUIRED = ("key_a", "key_b", "weight")
EDGE_EXTRA = tuple(f"evidence_{s}" for s in SIGNALS if s != "account") + ("prompt_example_a", "prompt_example_b")


@dataclass
class ReportData:
    """One OUT_DIR in memory: members sorted by key_id, clusters by cluster_id, edges by key pair."""

    path: Path
    members: pd.DataFrame
    clusters: pd.DataFrame
    edges: pd.DataFrame
    run: dict = field(default_factory=dict)
    quarantined: dict = field(default_factory=dict)   # table -> {reason: rows}
    activity: pd.DataFrame | None = None   # activity.parquet (None: not written by this run)
    slots: pd.DataFrame | None = None      # slots.parquet
    hubs: pd.DataFrame | None = None       # hubs.parquet
    labels: pd.DataFrame | None = None     # labels.parquet (analysts' labels, oldest first)
    changes: pd.DataFrame | None = None    # changes.parquet (runs with --previous)


def sort_rows(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`frame.sort_values(columns, kind="stable")`, without the sort when the rows are in that
    order already: OUT_DIR's tables are written sorted, and a sort of 10⁵–10⁶ string key pairs
    costs far more than the scan that shows it is not needed."""
    return frame if _in_order(frame, columns) else frame.sort_values(columns, kind="stable")


def _in_order(frame: pd.DataFrame, columns: list[str]) -> bool:
    """True when each row is ≤ the next in the lexicographic order of `columns` (no nulls)."""
    if len(frame) < 2:
        return True
    undecided = np.ones(len(frame) - 1, bool)   # rows equal on the columns compared so far
    try:
        for column in columns:
            values = frame[column]
            if values.isna().any():
                return False   # sort_values puts nulls last: let it decide
            values = values.to_numpy()
            before, after = values[:-1], values[1:]
            if (undecided & (before > after)).any():
                return False
            undecided &= before == after
    except TypeError:   # mixed types in an object column: sort_values decides (or raises)
        return False
    return True


def _fill(frame: pd.DataFrame, columns) -> pd.DataFrame:
    for column in columns:
        if column not in frame.columns:
            frame[column] = None
    return frame


OPTIONAL_TABLES = ("activity", "slots", "hubs", "changes")


def load_outputs(out_dir: str | Path, *, tables: dict | None = None) -> ReportData:
    """Load members, clusters, edges and run.json of OUT_DIR; fill absent extra columns with nulls.

    `tables`: the frames `keyfarm link` has just written to OUT_DIR (LinkResult.output_tables:
    members, clusters, edges, and activity, slots, hubs, changes or None where not written),
    used instead of reading them back; run.json, the quarantine counts and labels.parquet are
    read from OUT_DIR either way. The frames are not changed, and the report drawn from them is
    the same bytes as the one drawn from the files (tests/test_report_speed.py).
    """
    out = out_dir_path(out_dir)
    if tables is None:
        members = read_output(out, "members", MEMBER_REQUIRED)
        clusters = read_output(out, "clusters", CLUSTER_REQUIRED)
        edges = read_output(out, "edges", EDGE_REQUIRED, missing_ok=True)
        optional = {name: _optional(out, name) for name in OPTIONAL_TABLES}
    else:
        members, clusters, edges = (_as_read(tables.get(name)) for name in ("members", "clusters", "edges"))
        optional = {name: _as_read(tables.get(name)) for name in OPTIONAL_TABLES}
    if edges is None:
        edges = pd.DataFrame({c: pd.Series(dtype=object) for c in EDGE_REQUIRED})
    run = read_run(out)

    # shallow copies: columns are added and replaced, never written into (the caller's frames stay as they are)
    members = _fill(members.copy(deep=False), MEMBER_EXTRA)
    members["key_id"] = members["key_id"].astype(str)
    members["account_id"] = members["account_id"].astype(str)
    members["cluster_id"] = members["cluster_id"].astype(np.int64)
    members = _numbered(sort_rows(members, ["key_id"]))

    clusters = _fill(clusters.copy(), CLUSTER_EXTRA)   # deep: missing sizes are written into it
    clusters["cluster_id"] = clusters["cluster_id"].astype(np.int64)
    sizes = members.groupby("cluster_id").agg(n_keys=("key_id", "size"), n_accounts=("account_id", "nunique"))
    for column in ("n_keys", "n_accounts"):
        missing = clusters[column].isna()
        if missing.any():
            clusters.loc[missing, column] = sizes[column].reindex(clusters.loc[missing, "cluster_id"]).to_numpy()
    clusters["flagged"] = clusters["flagged"].fillna(False).astype(bool)
    # runs before verdicts had only `flagged`
    clusters["verdict"] = clusters["verdict"].where(clusters["verdict"].notna(),
                                                    np.where(clusters["flagged"], "farm", "clear")).astype(object)
    clusters = _numbered(sort_rows(clusters, ["cluster_id"]))

    edges = _fill(edges.copy(deep=False), EDGE_EXTRA)
    for signal in SIGNALS:
        column = f"w_{signal}"
        edges[column] = edges[column].fillna(0.0).astype(float) if column in edges.columns else 0.0
    edges["key_a"] = edges["key_a"].astype(str)
    edges["key_b"] = edges["key_b"].astype(str)
    edges["weight"] = edges["weight"].astype(float)
    cluster_of = pd.Series(members["cluster_id"].to_numpy(), index=members["key_id"].to_numpy())
    ca = cluster_of.reindex(edges["key_a"]).to_numpy()
    cb = cluster_of.reindex(edges["key_b"]).to_numpy()
    # recomputed from members rather than trusted: the pages draw what members says
    same = (ca == cb) & ~pd.isna(ca)
    edges["cluster_id"] = np.where(same, np.nan_to_num(ca.astype(float), nan=-1), -1).astype(np.int64)
    edges = _numbered(sort_rows(edges, ["key_a", "key_b"]))
    from keyfarm.labels import read_out_labels

    labels = read_out_labels(out)
    return ReportData(path=out, members=members, clusters=clusters, edges=edges, run=run,
                      quarantined=quarantine_counts(out, run), labels=labels if len(labels) else None,
                      **optional)


def _numbered(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (this module's own copy) with the index 0..n-1, set in place: reset_index would
    copy every column (0.1 s for a 50k world's edges)."""
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        frame.index = pd.RangeIndex(len(frame))
    return frame


def _as_read(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """An in-memory table indexed as its Parquet file reads back (0..n-1: written without index)."""
    if frame is None or frame.index.equals(pd.RangeIndex(len(frame))):
        return frame
    return frame.reset_index(drop=True)


def _optional(out: Path, table: str) -> pd.DataFrame | None:
    """An optional table of OUT_DIR, or None when absent (older runs, other engines); a damaged
    one is one clear input error (keyfarm.outputs)."""
    return read_output(out, table, missing_ok=True)
