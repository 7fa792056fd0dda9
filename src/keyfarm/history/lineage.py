"""Stable cluster ids across runs (history stage): match today's clusters to yesterday's by the
accounts they share, keep ids of groups that are substantially the same, and say what changed.

The rule, in order (deterministic; every tie goes to the smaller id, which is the older one because
ids are handed out from a high-water mark that only grows):

1. Only previous clusters of two or more accounts (the rows of PREV_OUT's clusters.parquet) pass
   their id to today's clusters of two or more accounts. For each previous cluster P, its
   *successor* is the cluster of today holding most of P's accounts (ties: smaller canonical label).
2. A cluster C of today keeps the id of the previous cluster that has C as successor and shares
   most accounts with it (ties: smaller id). A previous cluster's id goes to at most one cluster.
3. An account alone today that was alone yesterday keeps its id.
4. Returning farms (history.evidence) may give their remembered id to a cluster that got none.
5. Everything else gets a new id from the high-water mark, in the order of the clusters' smallest
   key index; ids are never reused.

Status of a cluster of today (two or more accounts): `merged` when it is the successor of two or more
previous clusters; `split` when it came from P and P's accounts are the main source of two or more
of today's clusters (parts with ≥ 2 of P's accounts), for every such part; otherwise `unchanged`
(same accounts), `grown` or `shrunk` (by account count; same count with other accounts is `grown`),
and `new` when no previous cluster of 2+ accounts shares an account with it. A previous cluster of
2+ accounts that is nobody's predecessor any more is `disappeared` (changes.parquet only).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

STATUSES = ("new", "unchanged", "grown", "shrunk", "merged", "split")
CHANGE_COLUMNS = ("cluster_id", "status", "n_accounts_before", "n_accounts_after", "n_keys_before",
                  "n_keys_after", "previous_cluster_ids", "returning", "verdict_before", "verdict_after")


@dataclass
class Lineage:
    """What matching found: the stable id of every canonical label, and per cluster of 2+ accounts
    (index: stable id) its status, previous_cluster_ids and the id it was matched to (−1: none)."""

    stable: np.ndarray          # int64, stable id of canonical label i
    status: pd.DataFrame        # cluster_id, status, previous_cluster_ids, inherited, n_accounts_before,
                                # n_keys_before, verdict_before
    disappeared: pd.DataFrame   # previous clusters of 2+ accounts that no cluster of today continues
    next_id: int                # the high-water mark after this run


def _first_by(frame: pd.DataFrame, group: str, order: list[str], ascending: list[bool]) -> pd.DataFrame:
    """The first row of each `group` under the sort `order` (a deterministic arg-max)."""
    return frame.sort_values(order, ascending=ascending, kind="stable").drop_duplicates(group, keep="first")


def match_clusters(current: pd.DataFrame, previous: pd.DataFrame, prev_clusters: pd.DataFrame,
                   next_id: int, returning: pd.Series | None = None) -> Lineage:
    """Stable ids and status of today's clusters (the module docstring gives the rule).

    Parameters
    ----------
    current : DataFrame
        One row per account of today: account_id, label (canonical cluster label 0..k−1, as
        pipeline.stable_cluster_ids numbers them), n_keys (the account's keys).
    previous : DataFrame
        One row per account of the previous run: account_id, cluster_id.
    prev_clusters : DataFrame
        The previous run's clusters of 2+ accounts: cluster_id, n_accounts, n_keys, verdict.
    next_id : int
        The previous run's high-water mark: no id at or above it has been used.
    returning : Series, optional
        canonical label → remembered farm id, for clusters that returning evidence ties to a farm.
    """
    label = current["label"].to_numpy(np.int64)
    n_labels = int(label.max()) + 1 if label.size else 0
    n_acc = np.bincount(label, minlength=n_labels)
    n_keys = np.bincount(label, weights=current["n_keys"].to_numpy(np.float64), minlength=n_labels)
    prev_size = previous.groupby("cluster_id").size()
    prev = pd.DataFrame({"account_id": previous["account_id"].to_numpy(dtype=object),
                         "prev": previous["cluster_id"].to_numpy(np.int64)})
    pairs = pd.DataFrame({"account_id": current["account_id"].to_numpy(dtype=object), "cur": label}) \
        .merge(prev, on="account_id", how="inner", sort=False)
    pairs["cur_multi"] = n_acc[pairs["cur"].to_numpy(np.int64)] >= 2
    pairs["prev_multi"] = prev_size.reindex(pairs["prev"]).to_numpy() >= 2
    overlap = pairs[pairs["cur_multi"] & pairs["prev_multi"]].groupby(["cur", "prev"], sort=True) \
        .size().rename("o").reset_index()

    stable = np.full(n_labels, -1, np.int64)
    # 1–2: successors and inheritance
    succ = _first_by(overlap, "prev", ["prev", "o", "cur"], [True, False, True])
    heir = _first_by(succ, "cur", ["cur", "o", "prev"], [True, False, True])
    stable[heir["cur"].to_numpy(np.int64)] = heir["prev"].to_numpy(np.int64)
    # 3: accounts alone both times
    alone = pairs[~pairs["cur_multi"] & ~pairs["prev_multi"]]
    stable[alone["cur"].to_numpy(np.int64)] = alone["prev"].to_numpy(np.int64)
    # 4: returning farms
    if returning is not None and len(returning):
        used = set(stable[stable >= 0].tolist())
        for lab, fid in sorted(returning.items()):
            if stable[lab] < 0 and int(fid) not in used:
                stable[lab] = int(fid)
                used.add(int(fid))
    # 5: new ids
    fresh = np.flatnonzero(stable < 0)
    stable[fresh] = next_id + np.arange(fresh.size)
    new_next = int(max(next_id + fresh.size, (stable.max() + 1) if stable.size else 0))

    status = _status(overlap, succ, heir, stable, n_acc, n_keys, prev_clusters, pairs)
    gone = prev_clusters[~prev_clusters["cluster_id"].isin(succ["prev"])]
    disappeared = pd.DataFrame({"cluster_id": gone["cluster_id"].to_numpy(np.int64),
                                "n_accounts_before": gone["n_accounts"].to_numpy(np.int64),
                                "n_keys_before": gone["n_keys"].to_numpy(np.int64),
                                "verdict_before": gone["verdict"].to_numpy(dtype=object)})
    return Lineage(stable=stable, status=status, disappeared=disappeared, next_id=new_next)


def _status(overlap, succ, heir, stable, n_acc, n_keys, prev_clusters, pairs) -> pd.DataFrame:
    """Per cluster of 2+ accounts of today: status, previous_cluster_ids, counts before (vectorised:
    a 1M-key run has about 10⁵ clusters)."""
    labs = np.flatnonzero(n_acc >= 2)
    pc = prev_clusters.set_index("cluster_id")
    n_src = succ.groupby("cur").size().reindex(labs, fill_value=0).to_numpy()
    first_src = succ.groupby("cur")["prev"].min().reindex(labs, fill_value=-1).to_numpy(np.int64)
    src_text = succ.sort_values(["cur", "prev"], kind="stable").groupby("cur")["prev"] \
        .agg(lambda v: ",".join(map(str, v))).reindex(labs, fill_value="").to_numpy(dtype=object)
    src_acc = succ.assign(n=pc["n_accounts"].reindex(succ["prev"]).to_numpy()).groupby("cur")["n"].sum()
    src_keys = succ.assign(n=pc["n_keys"].reindex(succ["prev"]).to_numpy()).groupby("cur")["n"].sum()
    main = _first_by(overlap, "cur", ["cur", "o", "prev"], [True, False, True])
    p = pd.Series(main["prev"].to_numpy(np.int64), index=main["cur"].to_numpy(np.int64)) \
        .reindex(labs, fill_value=-1).to_numpy(np.int64)
    parts = main[main["o"] >= 2].groupby("prev").size().reindex(p, fill_value=0).to_numpy()
    same = pairs[pairs["prev"].to_numpy(np.int64) == stable[pairs["cur"].to_numpy(np.int64)]] \
        .groupby("cur").size().reindex(labs, fill_value=0).to_numpy()
    before_single = pc["n_accounts"].reindex(first_src).fillna(0).to_numpy(np.int64)
    merged = n_src >= 2
    new = ~merged & ((p < 0) | ((parts < 2) & (n_src == 0)))
    split = ~merged & ~new & (parts >= 2)
    single = ~merged & ~new & ~split
    status = np.full(labs.size, "new", dtype=object)
    status[merged] = "merged"
    status[split] = "split"
    unchanged = single & (same == before_single) & (before_single == n_acc[labs])
    status[single] = np.where(n_acc[labs][single] < before_single[single], "shrunk", "grown")
    status[unchanged] = "unchanged"
    prev_ids = np.full(labs.size, "", dtype=object)
    prev_ids[merged] = src_text[merged]
    prev_ids[split] = p[split].astype(str)
    basis = np.where(split, p, np.where(merged | single, first_src, -1))
    n_before = np.where(merged, src_acc.reindex(labs, fill_value=0).to_numpy(),
                        pc["n_accounts"].reindex(basis).fillna(0).to_numpy(np.int64))
    k_before = np.where(merged, src_keys.reindex(labs, fill_value=0).to_numpy(),
                        pc["n_keys"].reindex(basis).fillna(0).to_numpy(np.int64))
    sid = stable[labs]
    verdict = pc["verdict"].reindex(sid).to_numpy(dtype=object)
    verdict = np.where(pd.isna(verdict), pc["verdict"].reindex(basis).to_numpy(dtype=object), verdict)
    verdict = np.where(pd.isna(verdict), None, verdict)
    return pd.DataFrame({"label": labs.astype(np.int64), "cluster_id": sid.astype(np.int64), "status": status,
                         "previous_cluster_ids": prev_ids, "n_accounts_before": n_before.astype(np.int64),
                         "n_keys_before": k_before.astype(np.int64), "verdict_before": verdict})


def changes_table(status: pd.DataFrame, disappeared: pd.DataFrame, clusters: pd.DataFrame) -> pd.DataFrame:
    """changes.parquet: every cluster of today that is not `unchanged`, and every previous cluster
    that `disappeared` (unless a returning farm's cluster carries its id on), with counts before
    and after; sorted by cluster_id, then status."""
    now = clusters.set_index("cluster_id")
    # a returning farm's cluster continues its remembered id: that id has not disappeared
    disappeared = disappeared[~disappeared["cluster_id"].isin(now.index)]
    changed = status[status["status"] != "unchanged"]
    ids = changed["cluster_id"].to_numpy(np.int64)
    part = pd.DataFrame({
        "cluster_id": ids, "status": changed["status"].to_numpy(dtype=object),
        "n_accounts_before": changed["n_accounts_before"].to_numpy(np.int64),
        "n_accounts_after": now["n_accounts"].reindex(ids).to_numpy(np.int64),
        "n_keys_before": changed["n_keys_before"].to_numpy(np.int64),
        "n_keys_after": now["n_keys"].reindex(ids).to_numpy(np.int64),
        "previous_cluster_ids": changed["previous_cluster_ids"].to_numpy(dtype=object),
        "returning": now["returning"].reindex(ids).to_numpy(bool),
        "verdict_before": changed["verdict_before"].to_numpy(dtype=object),
        "verdict_after": now["verdict"].reindex(ids).to_numpy(dtype=object)})
    gone = pd.DataFrame({
        "cluster_id": disappeared["cluster_id"].to_numpy(np.int64), "status": "disappeared",
        "n_accounts_before": disappeared["n_accounts_before"].to_numpy(np.int64), "n_accounts_after": 0,
        "n_keys_before": disappeared["n_keys_before"].to_numpy(np.int64), "n_keys_after": 0,
        "previous_cluster_ids": "", "returning": False,
        "verdict_before": disappeared["verdict_before"].to_numpy(dtype=object), "verdict_after": None})
    out = pd.concat([part, gone], ignore_index=True) if len(gone) else part
    out = out.astype({"cluster_id": np.int64, "n_accounts_before": np.int64, "n_accounts_after": np.int64,
                      "n_keys_before": np.int64, "n_keys_after": np.int64, "returning": bool})
    return out[list(CHANGE_COLUMNS)].sort_values(["cluster_id", "status"], kind="stable").reset_index(drop=True)
