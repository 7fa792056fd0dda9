"""Analysts' labels of an OUT_DIR: `OUT_DIR/labels.parquet`, appended one verdict at a time.

The table is SCHEMA.md's labels table (account_id or cluster_id, label farm|benign, source, ts)
plus a `note`; a cluster_id refers to the OUT_DIR the file sits in. Rows are only ever appended, so
the file is the history of what analysts said; readers take the latest row per account or cluster
(as `keyfarm calibrate` does). `keyfarm label` writes it, the report shows it, calibrate reads it.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm.errors import KeyfarmInputError

LABELS_FILE = "labels.parquet"
COLUMNS = ("account_id", "cluster_id", "label", "source", "ts", "note")
LABELS = ("farm", "benign")


def empty_labels() -> pd.DataFrame:
    """A labels table with no rows and the column types `append_label` writes."""
    return pd.DataFrame({"account_id": pd.Series(dtype=object), "cluster_id": pd.Series(dtype="Int64"),
                         "label": pd.Series(dtype=object), "source": pd.Series(dtype=object),
                         "ts": pd.Series(dtype="datetime64[ns, UTC]"), "note": pd.Series(dtype=object)})


def read_out_labels(out_dir) -> pd.DataFrame:
    """The labels of OUT_DIR (every row, oldest first), or an empty table when none were given."""
    path = Path(out_dir) / LABELS_FILE
    if not path.is_file():
        return empty_labels()
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - a damaged file is one clear input error
        raise KeyfarmInputError(f"labels: {path} is not a readable Parquet file: {exc}", table="labels") from None
    for column in COLUMNS:
        if column not in frame:
            frame[column] = empty_labels()[column]
    frame["cluster_id"] = pd.to_numeric(frame["cluster_id"], errors="coerce").astype("Int64")
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True, errors="coerce")
    return frame


def latest_labels(labels: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per cluster_id, per account_id): the latest label of each, with its source, ts and note."""
    ordered = labels.sort_values("ts", kind="stable", na_position="first")
    clusters = ordered.dropna(subset=["cluster_id"]).drop_duplicates("cluster_id", keep="last")
    accounts = ordered.dropna(subset=["account_id"]).drop_duplicates("account_id", keep="last")
    return clusters.reset_index(drop=True), accounts.reset_index(drop=True)


def append_label(out_dir, label: str, *, cluster_id: int | None = None, account_id: str | None = None,
                 note: str | None = None, source: str = "analyst", ts=None) -> pd.DataFrame:
    """Append one label (of a cluster of OUT_DIR or of an account) to OUT_DIR/labels.parquet and
    return the row written. The id must exist in the run: a label of a cluster or an account the
    run never saw is an input error, not a silent row. `ts` defaults to now (UTC)."""
    out = Path(out_dir)
    label = str(label).strip().lower()
    if label not in LABELS:
        raise KeyfarmInputError(f"labels: label {label!r} is not farm or benign", table="labels", column="label")
    if (cluster_id is None) == (account_id is None):
        raise KeyfarmInputError("labels: give exactly one of a cluster id or an account id", table="labels",
                                column="cluster_id")
    _check_known(out, cluster_id, account_id)
    stamp = pd.Timestamp.now(tz="UTC") if ts is None else pd.Timestamp(ts)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    row = pd.DataFrame({"account_id": pd.Series([account_id], dtype=object),
                        "cluster_id": pd.array([cluster_id], dtype="Int64"),
                        "label": [label], "source": [str(source)], "ts": pd.Series([stamp]).astype("datetime64[ns, UTC]"),
                        "note": pd.Series([note], dtype=object)})
    existing = read_out_labels(out)
    table = pd.concat([existing, row], ignore_index=True) if len(existing) else row
    path = out / LABELS_FILE
    tmp = path.with_name(f".{LABELS_FILE}.tmp")
    table.to_parquet(tmp, index=False)
    os.replace(tmp, path)   # readers never see half a file
    return row


def _check_known(out: Path, cluster_id, account_id) -> None:
    members_path = out / "members.parquet"
    if not members_path.is_file():
        raise KeyfarmInputError(f"members: {members_path} not found (is this a `keyfarm link` OUT_DIR?)",
                                table="members")
    if cluster_id is not None:
        path = out / "clusters.parquet"
        ids = pd.read_parquet(path, columns=["cluster_id"])["cluster_id"].to_numpy(np.int64) \
            if path.is_file() else np.zeros(0, np.int64)
        if int(cluster_id) not in set(ids.tolist()):
            raise KeyfarmInputError(f"clusters: cluster {cluster_id} is not in {path} (clusters of 2+ accounts)",
                                    table="clusters", column="cluster_id", row=cluster_id)
    else:
        accounts = pd.read_parquet(members_path, columns=["account_id"])["account_id"].astype(str)
        if str(account_id) not in set(accounts.tolist()):
            raise KeyfarmInputError(f"members: account {account_id!r} is not in {members_path}",
                                    table="members", column="account_id", row=account_id)
