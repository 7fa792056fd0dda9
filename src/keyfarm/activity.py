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


def activity_tables(requests: pd.DataFrame, members: pd.DataFrame, cluster_ids, *,
                    slot_seconds: int = 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(activity, slots) of the clusters `cluster_ids` (see the module docstring).

    `requests` carries `key` (row index into `members`, as keyfarm.io's tables do), `ts` and the
    token columns; `members` is members.parquet in key order. Rows are sorted, so the same logs
    in any order give the same bytes.
    """
    if not len(requests) or not len(members):
        return empty_activity(), empty_slots()
    cluster = members["cluster_id"].to_numpy(np.int64)
    key = requests["key"].to_numpy(np.int64)
    keep = np.isin(cluster[key], np.asarray(cluster_ids, np.int64))
    if not keep.any():
        return empty_activity(), empty_slots()
    key = key[keep]
    seconds = requests["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64)[keep] // 10**9
    tokens = (requests["prompt_tokens"].fillna(0).to_numpy(np.int64)[keep]
              + requests["completion_tokens"].fillna(0).to_numpy(np.int64)[keep]) \
        if "prompt_tokens" in requests else np.zeros(key.size, np.int64)
    account_codes, accounts = pd.factorize(members["account_id"].to_numpy(dtype=object), sort=True)
    frame = pd.DataFrame({"cluster_id": cluster[key], "acc": account_codes[key],
                          "bin": seconds // BIN_SECONDS * BIN_SECONDS, "tokens": tokens})
    activity = frame.groupby(["cluster_id", "acc", "bin"], sort=True).agg(
        n_requests=("tokens", "size"), tokens=("tokens", "sum")).reset_index()
    activity.insert(1, "account_id", np.asarray(accounts, dtype=object)[activity["acc"].to_numpy()])
    activity["bin"] = pd.to_datetime(activity["bin"], unit="s", utc=True)
    activity = activity.drop(columns="acc").astype({"n_requests": np.int64, "tokens": np.int64})

    slot = pd.DataFrame({"cluster_id": frame["cluster_id"], "acc": frame["acc"],
                         "slot": seconds // slot_seconds * slot_seconds}).drop_duplicates()
    slots = slot.groupby(["cluster_id", "slot"], sort=True).size().rename("n_accounts").reset_index()
    slots = slots[slots["n_accounts"] >= 2].reset_index(drop=True)
    slots["slot"] = pd.to_datetime(slots["slot"], unit="s", utc=True)
    slots["n_accounts"] = slots["n_accounts"].astype(np.int64)
    return activity.reset_index(drop=True), slots
