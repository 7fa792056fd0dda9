"""Labels carried forward (history stage): analysts' labels and reverted bans apply to the same
accounts in every later run, through state/labels.parquet.

The latest label of an account wins: a label given to this run beats one carried in state/, and
among labels given together the one of the latest ts.
A label on a cluster_id names the accounts of that cluster in PREV_OUT (SCHEMA.md: cluster ids refer
to the OUT_DIR they came with). When a label first applies, the accounts the account was judged with
are recorded (its cluster in PREV_OUT, else its cluster today): its *peers*.

An account labelled `benign` is not flagged again on the same evidence: while every account its
evidence puts it with today is one of its peers, it is detached into a cluster of its own before
scoring. Linked to an account it was not judged with, it is judged again like any other. Accounts
labelled `farm` are remembered like a farm's accounts (history.evidence).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from keyfarm.errors import KeyfarmInputError


def resolve_labels(labels: pd.DataFrame, prev_accounts: pd.DataFrame | None) -> pd.DataFrame:
    """Labels (checked by scoring.calibrate.check_labels) as one row per account: account_id,
    label, source, ts (ISO text or None); cluster_id labels expand to PREV_OUT's accounts."""
    parts = []
    frame = labels.reset_index(drop=True)
    source = frame["source"].astype(object) if "source" in frame else pd.Series([None] * len(frame), dtype=object)
    ts = pd.to_datetime(frame["ts"], utc=True, errors="coerce", format="mixed") if "ts" in frame else \
        pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    ts_text = pd.Series([None if pd.isna(t) else t.isoformat() for t in ts], dtype=object)
    base = pd.DataFrame({"label": frame["label"].to_numpy(dtype=object), "source": source.to_numpy(dtype=object),
                         "ts": ts_text.to_numpy(dtype=object), "order": np.arange(len(frame))})
    by_account = frame["account_id"].notna().to_numpy() if "account_id" in frame else np.zeros(len(frame), bool)
    if by_account.any():
        parts.append(base[by_account].assign(account_id=frame.loc[by_account, "account_id"].astype(str).to_numpy()))
    rest = ~by_account
    if rest.any() and "cluster_id" in frame:
        if prev_accounts is None:
            row = int(np.flatnonzero(rest)[0])
            raise KeyfarmInputError(f"labels: row {row} names a cluster_id; cluster ids refer to the run they "
                                    "came from: give that run as --previous", table="labels",
                                    column="cluster_id", row=row)
        cid = pd.to_numeric(frame.loc[rest, "cluster_id"], errors="coerce")
        bad = cid.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(rest)[np.flatnonzero(bad)[0]])
            raise KeyfarmInputError(f"labels: row {row}: cluster_id {frame['cluster_id'].iloc[row]!r} is not an "
                                    "integer", table="labels", column="cluster_id", row=row)
        sub = base[rest].assign(cluster_id=cid.astype(np.int64).to_numpy())
        parts.append(sub.merge(prev_accounts[["account_id", "cluster_id"]], on="cluster_id", how="inner")
                     .drop(columns="cluster_id"))
    if not parts:
        return pd.DataFrame({"account_id": [], "label": [], "source": [], "ts": []}, dtype=object)
    out = pd.concat(parts, ignore_index=True)
    return latest(out)


def latest(frame: pd.DataFrame) -> pd.DataFrame:
    """The latest label of each account: a later `batch` wins (labels given to this run beat those
    carried in state/), then a later ts (missing ts counts as earliest), then a later row."""
    frame = frame.assign(order=frame["order"] if "order" in frame else np.arange(len(frame)),
                         batch=frame["batch"] if "batch" in frame else 0, has_ts=frame["ts"].notna())
    frame = frame.sort_values(["account_id", "batch", "has_ts", "ts", "order"], kind="stable", na_position="first")
    out = frame.drop_duplicates("account_id", keep="last")
    return out[["account_id", "label", "source", "ts"]].reset_index(drop=True).astype(object)


def carry_forward(carried: pd.DataFrame, given: pd.DataFrame) -> pd.DataFrame:
    """Labels of state/ updated with this run's: a label given now beats any carried one."""
    both = pd.concat([carried.assign(batch=0, order=np.arange(len(carried))),
                      given.assign(batch=1, order=np.arange(len(given)))], ignore_index=True)
    return latest(both) if len(both) else given


def peers_of(labels: pd.DataFrame, known_peers: pd.DataFrame, acc_ids: np.ndarray, acc_label: np.ndarray,
             prev_accounts: pd.DataFrame | None) -> pd.DataFrame:
    """(account_id, peer) for every labelled account: the recorded peers where known, else the
    accounts of its cluster in PREV_OUT, else of its cluster today (before any detaching)."""
    have = set(known_peers["account_id"].tolist())
    new = [a for a in labels["account_id"].tolist() if a not in have]
    rows = [known_peers[known_peers["account_id"].isin(labels["account_id"])]]
    if new:
        today = pd.DataFrame({"peer": acc_ids, "cluster": acc_label})
        todays = pd.DataFrame({"account_id": acc_ids, "cluster": acc_label})
        if prev_accounts is not None:
            prev = prev_accounts.rename(columns={"cluster_id": "cluster"})
            in_prev = pd.DataFrame({"account_id": new}).merge(prev, on="account_id", how="inner")
            rows.append(in_prev.merge(prev.rename(columns={"account_id": "peer"}), on="cluster")[["account_id", "peer"]])
            new = [a for a in new if a not in set(in_prev["account_id"].tolist())]
        here = pd.DataFrame({"account_id": new}).merge(todays, on="account_id", how="inner")
        rows.append(here.merge(today, on="cluster")[["account_id", "peer"]])
    out = pd.concat(rows, ignore_index=True)
    out = out[out["account_id"] != out["peer"]]
    return out.drop_duplicates().sort_values(["account_id", "peer"], kind="stable").reset_index(drop=True).astype(object)


def detach_benign(acc_label: np.ndarray, acc_ids: np.ndarray, labels: pd.DataFrame,
                  peers: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(labels per account, detached account codes): each benign-labelled account whose cluster of
    today holds only its peers gets a label of its own."""
    out = np.asarray(acc_label, np.int64).copy()
    benign = labels.loc[labels["label"] == "benign", "account_id"]
    code = pd.Index(acc_ids).get_indexer(benign)
    code = np.sort(code[code >= 0])
    if not code.size:
        return out, code
    size = np.bincount(out)
    code = code[size[out[code]] >= 2]
    mates = pd.DataFrame({"code": np.arange(out.size), "cluster": out})
    mine = pd.DataFrame({"self": code, "cluster": out[code]}).merge(mates, on="cluster")
    mine = mine[mine["self"] != mine["code"]]
    known = set(zip(peers["account_id"].tolist(), peers["peer"].tolist()))
    pair_known = np.array([(acc_ids[s], acc_ids[c]) in known for s, c in
                           zip(mine["self"].to_numpy(), mine["code"].to_numpy())], bool)
    new_evidence = set(mine.loc[~pair_known, "self"].tolist())
    detached = np.array([c for c in code.tolist() if c not in new_evidence], np.int64)
    out[detached] = int(out.max()) + 1 + np.arange(detached.size)
    return out, detached
