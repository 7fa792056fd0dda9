"""Hub triage (scores stage): the group of accounts behind a hub value, judged as a group.

A hub is a value shared by more accounts than its signal's cap; it is never projected pairwise
(keyfarm.graph.weighting), but it is not noise either: a card on 300 accounts that all run near
their limit is the best lead a trust-and-safety team gets, a campus NAT is not. Each hub of a
judged signal (HUB_SIGNALS) is scored with the cluster verdict model as if its accounts were one
cluster, with the hub itself as their shared evidence: a shared card or shared unusual time slots
are evidence of control; a shared address is infrastructure. The verdict goes to hubs.parquet, and
hubs of a control signal judged `farm` become clusters (`merge_farm_hubs`; cards and a scheduler's
group token, not single time slots): their accounts leave their communities and form one cluster
per group of overlapping farm hubs, so a 2,000-account farm
on one card is one cluster even though no pair of its accounts was projected; of a `farm` address
hub (a proxy exit) only the accounts rotating through two or more such exits join.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

HUB_SIGNALS = {"payment": "share_payment", "timing": "share_timing", "ip": "share_ip"}
# hubs whose accounts are one actor's evidence (a span of one) and, judged `farm`, one cluster: a
# card is one actor's; a busy time slot is a moment that farms and strangers share (merging slot
# hubs at 1M keys chained a 20,842-account cluster, and counting them as a span flagged strangers)
CONTROL_HUB_SIGNALS = ("payment",)
# ... and one scheduler's group token (signals.timing.scheduler_sets): a group of accounts found
# together, not a moment strangers share, so it is one actor's evidence like a card
CONTROL_HUB_PREFIXES = ("tset:",)


def is_control_hub(signal, token) -> np.ndarray:
    """Mask of hub values that are one actor's evidence: a control signal's, or a group token
    (`signal`: one per token, or one for all)."""
    signal = np.asarray(signal, dtype=object)
    token = pd.Series(np.asarray(token, dtype=object), dtype=object)
    return np.isin(signal, CONTROL_HUB_SIGNALS) | token.str.startswith(CONTROL_HUB_PREFIXES).to_numpy(bool)


def judged_hub_tokens(hubs: pd.DataFrame, config) -> pd.DataFrame:
    """The hubs judged as groups: of HUB_SIGNALS, on at most caps.max_judged_hub accounts."""
    keep = hubs["signal"].isin(list(HUB_SIGNALS)).to_numpy() & \
        (hubs["n_accounts"].to_numpy() <= config.caps.max_judged_hub)
    return hubs.loc[keep, ["token", "signal"]].reset_index(drop=True)


def hub_incidence(incidences, hubs: pd.DataFrame, config) -> pd.DataFrame:
    """(token, key, signal) of every key reaching a judged hub, sorted by token and key."""
    judged = judged_hub_tokens(hubs, config)
    wanted = pd.Index(judged["token"])
    parts = []
    for frame in incidences:
        if len(frame):
            pos = wanted.get_indexer(frame["token"])
            hit = pos >= 0
            parts.append(pd.DataFrame({"token": frame["token"].to_numpy(dtype=object)[hit],
                                       "key": frame["key"].to_numpy(np.int64)[hit]}))
    return hub_rows(pd.concat(parts, ignore_index=True) if parts else
                    pd.DataFrame({"token": [], "key": np.zeros(0, np.int64)}), judged)


def hub_rows(rows: pd.DataFrame, judged: pd.DataFrame) -> pd.DataFrame:
    """Distinct (token, key) rows with their hub's signal, sorted (both engines end here)."""
    rows = rows.drop_duplicates().sort_values(["token", "key"], kind="stable").reset_index(drop=True)
    rows["key"] = rows["key"].astype(np.int64)
    rows["signal"] = judged.set_index("token")["signal"].reindex(rows["token"]).to_numpy(dtype=object)
    return rows


def judge_hubs(tables, activity, hub_members: pd.DataFrame, hubs: pd.DataFrame, config) -> pd.DataFrame:
    """Score each judged hub's group of accounts; returns hubs with score and verdict columns
    (null where not judged). `hub_members`: token, key (the keys reaching each judged hub)."""
    from keyfarm.scoring.features import KeyActivity, cluster_features
    from keyfarm.scoring.verdict import score_clusters

    out = hubs.copy()
    out["score"] = np.nan
    out["verdict"] = pd.Series([None] * len(out), dtype=object)
    judged = hubs["token"].isin(judged_hub_tokens(hubs, config)["token"]).to_numpy()
    if not judged.any() or not len(hub_members):
        return out
    tokens = hubs.loc[judged, "token"].to_numpy(dtype=object)
    members = hub_members[hub_members["token"].isin(tokens)]
    hub_of = pd.Index(tokens).get_indexer(members["token"])
    order = np.lexsort((members["key"].to_numpy(np.int64), hub_of))
    hub_of = hub_of[order]
    key = members["key"].to_numpy(np.int64)[order]

    # one pseudo key per (hub, key): each hub is a cluster of its own copies of the keys
    keys = tables.keys.iloc[key].reset_index(drop=True)
    # one pseudo account per (hub, account), numbered in order of first appearance
    n_acc = int(keys["account"].max()) + 1 if len(keys) else 1
    acc = pd.factorize(hub_of.astype(np.int64) * n_acc + keys["account"].to_numpy(np.int64))[0]
    keys["account"] = acc.astype(np.int64)
    copy = pd.DataFrame({"key": key, "new": np.arange(key.size)})
    daily = _copies(activity.daily, key)
    bins = _copies(activity.bins, key)
    blocks = None
    if activity.blocks is not None:
        b = copy.assign(v=activity.blocks.reindex(copy["key"]).to_numpy()).dropna(subset=["v"])
        blocks = pd.Series(b["v"].to_numpy(np.int64), index=pd.Index(b["new"].to_numpy(np.int64), name="key"))
    fine = _copies(activity.fine_bins, key)[["key", "bin"]] if activity.fine_bins is not None else None
    pseudo = KeyActivity(daily=daily[["key", "day", "tokens"]], bins=bins[["key", "bin"]],
                         n_bins_total=activity.n_bins_total, population=activity.population, blocks=blocks,
                         fine_bins=fine, fine_seconds=activity.fine_seconds if fine is not None else 0)
    empty = np.zeros(0, np.int64)
    feats = cluster_features(keys, tables.accounts, pseudo, hub_of.astype(np.int64), empty, empty,
                             np.zeros(0), {}, config.scoring)
    signal = hubs.loc[judged, "signal"].to_numpy(dtype=object)[feats["cluster_id"].to_numpy()]
    token = hubs.loc[judged, "token"].to_numpy(dtype=object)[feats["cluster_id"].to_numpy()]
    control = is_control_hub(signal, token)
    for s, column in HUB_SIGNALS.items():
        feats[column] = np.where(signal == s, 1.0, 0.0)
    for column in ("share_device", "share_prompt", "span_device"):
        feats[column] = 0.0
    for s in ("payment", "timing"):   # a control hub joins all its accounts: a span of one
        feats[f"span_{s}"] = np.where(control & (signal == s), 1.0, 0.0)
    feats["span_control"] = control.astype(np.float64)
    feats["signals"] = signal
    scored = score_clusters(feats, config.scoring, explanations=False)
    rows = np.flatnonzero(judged)[scored["cluster_id"].to_numpy()]
    out.loc[rows, "score"] = scored["score"].to_numpy()
    out.loc[rows, "verdict"] = scored["verdict"].to_numpy(dtype=object)
    return out


def _copies(frame: pd.DataFrame, key: np.ndarray) -> pd.DataFrame:
    """The rows of `frame` (a per-key aggregate with column `key`) for each pseudo key i (a copy
    of key[i]), with `key` := i: pseudo keys in order, each one's rows in their order in `frame`
    (index arithmetic over the frame sorted by key, instead of a many-to-many merge)."""
    own = frame["key"].to_numpy(np.int64)
    order = np.arange(own.size) if (own[1:] >= own[:-1]).all() else np.argsort(own, kind="stable")
    start = np.searchsorted(own[order], key, "left")
    count = np.searchsorted(own[order], key, "right") - start
    copy = np.repeat(np.arange(key.size, dtype=np.int64), count)
    row = order[np.repeat(start, count) + np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)]
    return pd.DataFrame({c: copy if c == "key" else frame[c].to_numpy()[row] for c in frame.columns})


def merge_farm_hubs(membership: np.ndarray, account: np.ndarray, judged: pd.DataFrame,
                    hub_members: pd.DataFrame) -> np.ndarray:
    """Per-key membership where the accounts of `farm` hubs form one cluster per group of
    overlapping hubs (union-find over shared accounts); other keys keep theirs.

    Every account of a payment hub joins. An address hub is a proxy exit or a NAT that
    real users sit behind too, so only accounts on two or more `farm` addresses join: a farm rotates
    through its exits, the user at home behind one of them does not."""
    farm = judged[judged["verdict"] == "farm"]
    control = farm[is_control_hub(farm["signal"], farm["token"])]
    exact = farm[(farm["signal"] == "ip") & farm["token"].str.match(r"^(ip4|ip6|ip6/64):")]
    rows = hub_members[hub_members["token"].isin(control["token"].to_numpy(dtype=object))]
    ip_rows = hub_members[hub_members["token"].isin(exact["token"].to_numpy(dtype=object))]
    if len(ip_rows):
        acc = account[ip_rows["key"].to_numpy(np.int64)]
        per_account = pd.Series(ip_rows["token"].to_numpy(dtype=object)).groupby(acc).nunique()
        rotating = per_account.index[per_account.to_numpy() >= 2].to_numpy()
        rows = pd.concat([rows, ip_rows[np.isin(acc, rotating)]], ignore_index=True)
    if not len(rows):
        return membership
    from keyfarm.arrays import sorted_unique
    from keyfarm.community.components import union_find_roots

    hub = pd.factorize(rows["token"], sort=True)[0].astype(np.int64)
    acc = account[rows["key"].to_numpy(np.int64)]
    n_acc = int(account.max()) + 1
    # accounts and hubs as one node set: an account joins every farm hub it is on
    roots = union_find_roots(acc.astype(np.int64), hub + n_acc, np.int64(n_acc + int(hub.max()) + 1))
    grouped = sorted_unique(acc)
    roots = roots[grouped]
    out = np.asarray(membership, np.int64).copy()
    base = int(out.max()) + 1 if out.size else 0
    label = np.full(n_acc, -1, np.int64)
    label[grouped] = base + pd.factorize(roots, sort=True)[0]
    in_group = label[account] >= 0
    out[in_group] = label[account][in_group]
    return out
