"""Activity over time of the accounts in clusters (outputs stage, for the report's timelines).

`activity_tables` turns the request logs into two small tables that OUT_DIR keeps beside the
verdicts, so a cluster page can show *when* its accounts acted without the logs:
`activity.parquet` — per cluster, account and time bin (BIN_SECONDS, epoch-aligned UTC): requests
and tokens; `slots.parquet` — per cluster, the timing signal's slots (timing.slot_seconds) in
which two or more of its accounts acted, with how many. Only clusters of 2+ accounts are kept.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

BIN_SECONDS = 900   # the finest bin a timeline draws; pages merge bins to fit their width


def empty_activity() -> pd.DataFrame:
    return pd.DataFrame({"cluster_id": np.zeros(0, np.int64), "account_id": np.zeros(0, object),
                         "bin": pd.Series(dtype="datetime64[ns, UTC]"), "n_requests": np.zeros(0, np.int64),
                         "tokens": np.zeros(0, np.int64)})


def empty_slots() -> pd.DataFrame:
    return pd.DataFrame({"cluster_id": np.zeros(0, np.int64), "slot": pd.Series(dtype="datetime64[ns, UTC]"),
                         "n_accounts": np.zeros(0, np.int64)})


def activity_scope(members: pd.DataFrame, cluster_ids) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(in_scope, cluster, account code, accounts) per key of `members` (members.parquet in key
    order): whether the key is in one of `cluster_ids`, its cluster, the code of its account
    among `accounts` (the sorted account ids). What activity rows are grouped by, in any engine."""
    cluster = members["cluster_id"].to_numpy(np.int64)
    account_codes, accounts = pd.factorize(members["account_id"].to_numpy(dtype=object), sort=True)
    in_scope = np.isin(cluster, np.asarray(cluster_ids, np.int64))
    return in_scope, cluster, account_codes.astype(np.int64), np.asarray(accounts, dtype=object)


def activity_frame(counts: pd.DataFrame, accounts: np.ndarray) -> pd.DataFrame:
    """activity.parquet from per (cluster_id, acc, bin) counts (`acc` an account code into
    `accounts`, `bin` epoch seconds, n_requests, tokens): sorted, account ids and UTC bins."""
    if not len(counts):
        return empty_activity()
    counts = counts.sort_values(["cluster_id", "acc", "bin"], kind="stable").reset_index(drop=True)
    return pd.DataFrame({
        "cluster_id": counts["cluster_id"].to_numpy(np.int64),
        "account_id": accounts[counts["acc"].to_numpy(np.int64)],
        "bin": pd.to_datetime(counts["bin"].to_numpy(np.int64), unit="s", utc=True),
        "n_requests": counts["n_requests"].to_numpy(np.int64), "tokens": counts["tokens"].to_numpy(np.int64)})


def slots_frame(counts: pd.DataFrame) -> pd.DataFrame:
    """slots.parquet from per (cluster_id, slot) counts of distinct accounts (`slot` epoch seconds,
    n_accounts): the slots of two or more accounts, sorted, as UTC times."""
    counts = counts[counts["n_accounts"].to_numpy(np.int64) >= 2]
    if not len(counts):
        return empty_slots()
    counts = counts.sort_values(["cluster_id", "slot"], kind="stable").reset_index(drop=True)
    return pd.DataFrame({"cluster_id": counts["cluster_id"].to_numpy(np.int64),
                         "slot": pd.to_datetime(counts["slot"].to_numpy(np.int64), unit="s", utc=True),
                         "n_accounts": counts["n_accounts"].to_numpy(np.int64)})


def activity_tables(requests: pd.DataFrame, members: pd.DataFrame, cluster_ids, *,
                    slot_seconds: int = 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(activity, slots) of the clusters `cluster_ids` (see the module docstring).

    `requests` carries `key` (row index into `members`, as keyfarm.io's tables do), `ts` and the
    token columns; `members` is members.parquet in key order. Rows are sorted, so the same logs
    in any order give the same bytes. The Spark engine groups its requests the same way
    (activity_scope) and builds the tables with the same activity_frame and slots_frame.
    """
    if not len(requests) or not len(members):
        return empty_activity(), empty_slots()
    in_scope, cluster, account_codes, accounts = activity_scope(members, cluster_ids)
    key = requests["key"].to_numpy(np.int64)
    keep = in_scope[key]
    if not keep.any():
        return empty_activity(), empty_slots()
    key = key[keep]
    seconds = requests["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64)[keep] // 10**9
    tokens = (requests["prompt_tokens"].fillna(0).to_numpy(np.int64)[keep]
              + requests["completion_tokens"].fillna(0).to_numpy(np.int64)[keep]) \
        if "prompt_tokens" in requests else np.zeros(key.size, np.int64)
    frame = pd.DataFrame({"cluster_id": cluster[key], "acc": account_codes[key],
                          "bin": seconds // BIN_SECONDS * BIN_SECONDS, "tokens": tokens})
    activity = frame.groupby(["cluster_id", "acc", "bin"], sort=True).agg(
        n_requests=("tokens", "size"), tokens=("tokens", "sum")).reset_index()
    slot = pd.DataFrame({"cluster_id": frame["cluster_id"], "acc": frame["acc"],
                         "slot": seconds // slot_seconds * slot_seconds}).drop_duplicates()
    slots = slot.groupby(["cluster_id", "slot"], sort=True).size().rename("n_accounts").reset_index()
    return activity_frame(activity, accounts), slots_frame(slots)
