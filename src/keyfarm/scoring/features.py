"""Cluster features (scores stage): what the accounts of each cluster share and how they draw.

Features are computed from per-key aggregates (`key_activity`, which a distributed engine computes
per partition of keys, plus one small population reduce over time bins) joined on membership, and
from the cluster's internal edges. Two families, weighed apart by the verdict
(keyfarm.scoring.verdict): evidence of *common control* (shared card, the same unusual time slots,
a rare device, creation and key-activation bursts, synchrony against the population's own activity
curve) and of *limit evasion* (how many limits' worth the accounts draw together, at what use of
each one's own limit).
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from keyfarm.arrays import sorted_unique
from keyfarm.community.components import find_root, union_find_roots   # union-find kernels (smallest root wins)
from keyfarm.graph.weighting import SIGNALS

LINK_SIGNALS = tuple(s for s in SIGNALS if s != "account")  # the account signal links keys of one account
INSTITUTIONAL = r"(?:\.edu|\.gov|\.mil|\.ac\.[a-z]{2}|\.edu\.[a-z]{2}|\.gov\.[a-z]{2})$"
LINK_MIN = 0.1   # a signal links two accounts when its evidence on their pair is at least this
TIMING_SPAN_MIN = 0.5   # timing evidence that joins two accounts as one actor: ≥ 3 shared slots or a lockstep slot
# co-timing (`_cotiming`): a bin is the cluster's own burst when at least COTIMING_EXCESS more of its
# accounts act in it than the cluster's own rhythm explains, at z ≥ COTIMING_Z; an account acts in
# the cluster's bursts when at least COTIMING_MIN_BINS of its bins, and COTIMING_SHARE of them, are
# such bursts; clusters of fewer than COTIMING_MIN_ACCOUNTS accounts are not tested
COTIMING_MIN_ACCOUNTS = 4
COTIMING_EXCESS = 3.0
COTIMING_Z = 3.0
COTIMING_MIN_BINS = 2
COTIMING_SHARE = 0.3


# ---------------------------------------------------------------- per-key aggregates

@dataclass
class KeyActivity:
    """Per-key aggregates of the requests: what cluster features need, far smaller than the logs."""

    daily: pd.DataFrame   # key, day (int days since epoch), tokens
    bins: pd.DataFrame    # key, bin (int): distinct activity bins of each key
    n_bins_total: int     # bins spanned by the logs
    population: pd.Series | None = None  # bin → active keys in it, over all keys (the baseline)
    blocks: pd.Series | None = None      # key → distinct public address blocks it came from
    fine_bins: pd.DataFrame | None = None  # key, bin: distinct fine bins (fine_seconds) for co-timing
    fine_seconds: int = 0                  # width of fine_bins (0: none; co-timing reads `bins`)


def key_blocks(requests: pd.DataFrame, network_config=None) -> pd.Series:
    """Per key (index key): the distinct IPv4 /24 and IPv6 /48 blocks of its requests, special
    ranges (private, carrier NAT, the shared-infrastructure list) left out: an account rotating
    through many public blocks is behind a proxy pool, not at home or in an office."""
    if "ip_version" not in requests or not len(requests):
        return pd.Series(np.zeros(0, np.int64), index=pd.Index(np.zeros(0, np.int64), name="key"))
    version = requests["ip_version"].to_numpy(np.int64)
    hi = requests["ip_hi"].to_numpy(np.uint64)
    lo = requests["ip_lo"].to_numpy(np.uint64)
    ok = version > 0
    if network_config is not None:
        from keyfarm.signals.network import in_networks, special_networks
        ok &= ~in_networks(version, hi, lo, special_networks(network_config))
    block = np.where(version == 6, (hi >> np.uint64(16)).astype(np.int64) | (1 << 62),
                     (lo >> np.uint64(8)).astype(np.int64))
    key = requests["key"].to_numpy(np.int64)[ok]
    block = pd.factorize(block[ok])[0].astype(np.int64)
    count = np.bincount(key[_first_rows(key, block)]) if key.size else np.zeros(0, np.int64)
    have = np.flatnonzero(count)
    return pd.Series(count[have].astype(np.int64), index=pd.Index(have, name="key"))


def key_activity(requests: pd.DataFrame, *, bin_seconds: int = 300, network_config=None,
                 fine_seconds: int = 0) -> KeyActivity:
    """Daily tokens per key, the distinct time bins each key was active in, per bin the number of
    active keys (the population curve synchrony is measured against), each key's distinct
    public address blocks (`key_blocks`) and, with `fine_seconds`, its distinct fine bins (co-timing:
    a scheduler's slots are a minute wide, and at five minutes a busy queue fills most bins)."""
    ts = requests["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64) // 10**9
    tokens = (requests["prompt_tokens"].fillna(0).to_numpy(np.int64)
              + requests["completion_tokens"].fillna(0).to_numpy(np.int64))
    key = requests["key"].to_numpy(np.int64)
    day_key, day, tokens = _sum_by_pair(key, ts // 86400, tokens)
    daily = pd.DataFrame({"key": day_key, "day": day, "tokens": tokens})
    bin_key, bin_, _ = _sum_by_pair(key, ts // bin_seconds, None)
    bins = pd.DataFrame({"key": bin_key, "bin": bin_})
    span = activity_span(int(ts.min()), int(ts.max()), bin_seconds) if len(ts) else 1
    fine = None
    if fine_seconds:
        fine_key, fine_bin, _ = _sum_by_pair(key, ts // fine_seconds, None)
        fine = pd.DataFrame({"key": fine_key, "bin": fine_bin})
    return KeyActivity(daily=daily, bins=bins, n_bins_total=span, population=population_bins(bins),
                       blocks=key_blocks(requests, network_config), fine_bins=fine,
                       fine_seconds=int(fine_seconds) if fine is not None else 0)


def _sum_by_pair(key: np.ndarray, part: np.ndarray, values: np.ndarray | None):
    """Distinct (key, part) pairs sorted by key then part, with the sum of `values` over each
    (None: pairs only): one sort of an int64 code instead of a two-column groupby over the logs."""
    if not key.size:
        empty = np.zeros(0, np.int64)
        return empty, empty, None if values is None else empty
    low = int(part.min())
    span = int(part.max()) - low + 1
    if (int(key.max()) + 1) * span >= 2**62:   # codes would overflow: the two-column way
        frame = pd.DataFrame({"k": key, "p": part, "v": np.zeros(key.size, np.int64) if values is None else values})
        out = frame.groupby(["k", "p"], sort=True, as_index=False)["v"].sum()
        return (out["k"].to_numpy(np.int64), out["p"].to_numpy(np.int64),
                None if values is None else out["v"].to_numpy(np.int64))
    code = key * span + (part - low)
    if values is None:
        code = sorted_unique(code)
        return code // span, code % span + low, None
    order = np.argsort(code, kind="stable")
    code = code[order]
    start = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
    sums = np.add.reduceat(values[order], start) if start.size else np.zeros(0, np.int64)
    first = code[start]
    return first // span, first % span + low, sums.astype(np.int64)


def population_bins(bins: pd.DataFrame) -> pd.Series:
    """Active keys per bin (index bin, sorted): a reduce a partitioned engine sums over partitions."""
    return bins["bin"].value_counts().sort_index().astype(np.int64)


def activity_span(first_second: int, last_second: int, bin_seconds: int) -> int:
    """Bins spanned by logs from `first_second` to `last_second` (epoch seconds)."""
    return int(last_second // bin_seconds - first_second // bin_seconds + 1)


# ---------------------------------------------------------------- graph-based evidence

@numba.njit(cache=True, nogil=True)
def _weakest_links(src, dst, weight, membership, n_clusters):
    """Per cluster: the lightest edge of a maximum spanning forest of its internal edges (Kruskal)."""
    order = np.argsort(-weight, kind="mergesort")
    parent = np.arange(membership.size)
    weakest = np.full(n_clusters, -1, np.int64)
    for i in order:
        a, b = src[i], dst[i]
        c = membership[a]
        if membership[b] != c:
            continue
        ra, rb = find_root(parent, a), find_root(parent, b)
        if ra != rb:
            parent[ra] = rb
            weakest[c] = i  # edges arrive heaviest first: the last one joined is the weakest
    return weakest


@numba.njit(cache=True, nogil=True)
def _strongest_links(weight, edge_cluster, n_clusters):
    best = np.full(n_clusters, -1, np.int64)
    for i in range(weight.size):
        c = edge_cluster[i]
        if c >= 0 and (best[c] < 0 or weight[i] > weight[best[c]]):
            best[c] = i
    return best


def weakest_links(src, dst, weight, membership) -> np.ndarray:
    """Index of each cluster's weakest holding edge (−1 for a cluster of one key)."""
    membership = np.asarray(membership, np.int64)
    n_clusters = int(membership.max()) + 1 if membership.size else 0
    return _weakest_links(np.asarray(src, np.int64), np.asarray(dst, np.int64),
                          np.asarray(weight, np.float64), membership, n_clusters)


# ---------------------------------------------------------------- features

def institutional(domain: pd.Series) -> np.ndarray:
    """Is each sign-up domain an institution's (.edu, .gov, .mil, .ac.<cc>, .edu.<cc>, .gov.<cc>)?"""
    return domain.fillna("").astype(str).str.lower().str.contains(INSTITUTIONAL).to_numpy(bool)


def _rows(column: pd.Series, row: np.ndarray) -> pd.Series:
    """`column`'s values at positions `row`, missing (NaN/NaT) where `row` is −1 (as a reindex)."""
    out = column.iloc[np.maximum(row, 0)].reset_index(drop=True) if len(column) else \
        pd.Series(np.full(row.size, np.nan), dtype=column.dtype)
    return out.where(pd.Series(row >= 0)) if (row < 0).any() else out


def _spread_hours(hours: np.ndarray, cluster: np.ndarray, cids: np.ndarray) -> np.ndarray:
    """Per cluster: the 10–90% spread of `hours` over its accounts (NaN where unknown)."""
    ok = np.isfinite(hours)
    s = pd.Series(hours[ok]).groupby(cluster[ok])
    return (s.quantile(0.9) - s.quantile(0.1)).reindex(cids).to_numpy(np.float64)


def _expected_distinct(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """E[distinct bins] when n events fall in bins with probabilities p: Σ_b 1 − (1 − p_b)^n,
    evaluated once per distinct n (clusters share few distinct sizes)."""
    sizes, inverse = np.unique(n, return_inverse=True)
    log_q = np.log1p(-np.clip(p, 0.0, 1.0 - 1e-12))
    out = np.empty(sizes.size)
    for start in range(0, sizes.size, 256):
        chunk = sizes[start:start + 256].astype(np.float64)
        out[start:start + 256] = (-np.expm1(np.outer(chunk, log_q))).sum(axis=1)
    return out[inverse]


def _synchrony(activity: KeyActivity, account: np.ndarray, membership: np.ndarray,
               cids: np.ndarray) -> np.ndarray:
    """1 − observed / expected distinct bins of the cluster's account-bin activity, the expectation
    drawn from the population's own curve (business hours, the daily cycle) rather than uniform
    time: a crowd that works when everyone works scores ≈ 0; accounts firing together score ≈ 1."""
    bins = activity.bins
    key = bins["key"].to_numpy(np.int64)
    c = membership[key]
    keep = np.isin(c, cids)
    c, a, b = c[keep], account[key[keep]], bins["bin"].to_numpy(np.int64)[keep]
    if not c.size:
        return np.zeros(len(cids))
    first = _first_rows(a, b)   # one event per account and bin, in the cluster of its first row
    c, b = c[first], b[first]
    n = int(max(c.max(), cids.max())) + 1
    events = np.bincount(c, minlength=n)[cids].astype(np.int64)
    distinct = np.bincount(c[_first_rows(c, b)], minlength=n)[cids]
    pop = activity.population if activity.population is not None and len(activity.population) \
        else population_bins(bins)
    counts = pop.to_numpy(np.float64)
    n_total = max(int(activity.n_bins_total), counts.size, 1)
    # every bin of the span is possible; bins nobody used get a small floor
    p = np.concatenate([counts, np.full(n_total - counts.size, 0.5)])
    p = p / p.sum()
    expected = _expected_distinct(p, events)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(expected > 0, np.clip(1.0 - distinct / expected, 0.0, 1.0), 0.0)


def _cotiming(activity: KeyActivity, account: np.ndarray, acc_cluster_all: np.ndarray, cids: np.ndarray,
              n_acc: np.ndarray, bin_seconds: int) -> np.ndarray:
    """Per cluster: the share of its accounts that keep acting in the cluster's own bursts — bins in
    which far more of its accounts act than the cluster's own rhythm (its hour, clock position and
    daily recurrence, signals.timing.expected_counts) explains. One scheduler dispatching a farm's
    accounts gives every account a good share of its bins in such bursts, even when each burst is a
    handful of a hundred accounts (six where the cluster's rhythm expects one; four never pass
    z ≥ 3) and nothing against a million accounts' traffic, which the timing signal's population
    test cannot see; a crowd that works when everyone works, or a cron at :00, is explained by the
    rhythm (tests/test_cotiming.py)."""
    from keyfarm.signals.timing import anomalous_slots, expected_counts

    out = np.zeros(len(cids))
    bins = activity.bins
    if activity.fine_bins is not None and activity.fine_seconds:
        bins, bin_seconds = activity.fine_bins, activity.fine_seconds
    if not len(bins) or not len(cids):
        return out
    tested = np.zeros(int(max(acc_cluster_all.max(initial=-1), cids.max())) + 2, bool)
    tested[cids[n_acc >= COTIMING_MIN_ACCOUNTS]] = True
    a = account[bins["key"].to_numpy(np.int64)]
    c = acc_cluster_all[a]
    keep = (c >= 0) & tested[np.maximum(c, 0)]
    if not keep.any():
        return out
    a, c, b = a[keep], c[keep], bins["bin"].to_numpy(np.int64)[keep]
    week = 7 * max(86400 // bin_seconds, 1)   # shift by whole weeks: clock positions stay epoch-aligned
    b = b - (int(b.min()) // week) * week
    span = int(b.max()) + 1
    # distinct (account, bin), then per (cluster, bin) the accounts active in it, sorted by cluster, bin
    ab = sorted_unique(a * span + b)
    a, b = ab // span, ab % span
    c = acc_cluster_all[a]
    cb, k = np.unique(c * span + b, return_counts=True)
    expected = expected_counts(cb % span, k, bin_seconds, min_expected=1.0, group=cb // span)
    burst = anomalous_slots(k.astype(np.float64), expected, z_min=COTIMING_Z, min_excess=COTIMING_EXCESS)
    hit = burst[np.searchsorted(cb, c * span + b)]
    n_bins = np.bincount(a)
    n_hit = np.bincount(a, weights=hit)
    holds = (n_hit >= COTIMING_MIN_BINS) & (n_hit >= COTIMING_SHARE * np.maximum(n_bins, 1))
    holders = np.flatnonzero(holds)
    per_cluster = np.bincount(acc_cluster_all[holders], minlength=tested.size)
    return per_cluster[cids] / np.maximum(n_acc, 1)


def _first_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mask of the first row of each distinct (x, y) pair of non-negative integer codes (what
    DataFrame.drop_duplicates keeps), over one int64 code where it fits."""
    if not x.size:
        return np.zeros(0, bool)
    low = int(y.min())
    span = int(y.max()) - low + 1
    if (int(x.max()) + 1) * span < 2**62:
        return ~pd.Series(x * span + (y - low)).duplicated().to_numpy()
    return ~pd.DataFrame({"x": x, "y": y}).duplicated().to_numpy()


def _control_pairs(src, dst, account, inside, w, hub, signal):
    """Account pairs (a, b) inside one cluster tied by `signal`: projected links at LINK_MIN or
    more, and accounts sharing one of its control hub values (a card, a scheduler's group token;
    each tied to the value's first). `inside` marks the edges between two accounts of one cluster;
    `hub` is `_hub_rows` of the hub members (or None)."""
    from keyfarm.scoring.hubs import CONTROL_HUB_SIGNALS

    mask = inside & (w >= LINK_MIN)
    a, b = [account[src[mask]]], [account[dst[mask]]]
    if hub is not None:
        frame = _hub_accounts(hub, signal)
        if signal not in CONTROL_HUB_SIGNALS:
            frame = frame[hub.group_token[frame["t"].to_numpy(np.int64)]]
        if len(frame):
            a.append(frame.groupby(["t", "c"])["a"].transform("min").to_numpy(np.int64))
            b.append(frame["a"].to_numpy(np.int64))
    return np.concatenate(a).astype(np.int64), np.concatenate(b).astype(np.int64)


def _span(pairs, n_accounts_total, acc_cluster, cids, n_acc) -> np.ndarray:
    """Per cluster: its largest group of accounts joined by `pairs`, as a share of its accounts —
    how much of the cluster one actor's evidence covers (ten labs on ten cards span a tenth)."""
    a, b = pairs
    if not a.size:
        return np.zeros(len(cids))
    roots = union_find_roots(a, b, np.int64(n_accounts_total))
    scope = np.isin(acc_cluster, cids)
    sizes = pd.DataFrame({"c": acc_cluster[scope], "r": roots[np.flatnonzero(scope)]}).groupby(["c", "r"]).size()
    largest = sizes.groupby(level=0).max().reindex(cids, fill_value=1).to_numpy(np.float64)
    return np.where(largest >= 2, largest / np.maximum(n_acc, 1), 0.0)


def _linked_share(src, dst, account, membership, inside, w, cids, n_acc) -> np.ndarray:
    """Per cluster: the share of its accounts tied to another of its accounts by this signal
    (`inside`: the edges between two accounts of one cluster)."""
    mask = inside & (w >= LINK_MIN)
    if not mask.any():
        return np.zeros(len(cids))
    c = np.concatenate([membership[src[mask]], membership[dst[mask]]])
    a = np.concatenate([account[src[mask]], account[dst[mask]]])
    c = c[_first_rows(c, a)]
    touched = np.bincount(c, minlength=int(max(c.max(), cids.max())) + 1)[cids].astype(np.float64)
    return touched / np.maximum(n_acc, 1)


@dataclass
class _HubRows:
    """The hub members as integer codes, computed once per feature run: t (token code), s (signal
    code), c (cluster), a (account) per row; `signals` names the signal codes, `group_token` says
    per token code whether it is a group token (scoring.hubs.is_control_hub's prefixes)."""

    t: np.ndarray
    s: np.ndarray
    c: np.ndarray
    a: np.ndarray
    signals: list
    group_token: np.ndarray


def _hub_rows(hub_members: pd.DataFrame | None, account, membership) -> _HubRows | None:
    from keyfarm.scoring.hubs import is_control_hub

    if hub_members is None or not len(hub_members):
        return None
    t, tokens = pd.factorize(hub_members["token"].to_numpy(dtype=object))
    s, signals = pd.factorize(hub_members["signal"].to_numpy(dtype=object))
    key = hub_members["key"].to_numpy(np.int64)
    return _HubRows(t=t.astype(np.int64), s=s.astype(np.int64), c=membership[key], a=account[key],
                    signals=list(signals), group_token=is_control_hub("", np.asarray(tokens, dtype=object)))


def _hub_accounts(hub: _HubRows, signal: str) -> pd.DataFrame:
    """Distinct (t: hub token code, c: cluster, a: account) of the keys on the signal's hub values."""
    rows = hub.s == (hub.signals.index(signal) if signal in hub.signals else -2)
    return pd.DataFrame({"t": hub.t[rows], "c": hub.c[rows], "a": hub.a[rows]}).drop_duplicates()


def _hub_share(hub: _HubRows, signal: str, cids, n_acc) -> np.ndarray:
    """Per cluster: the share of its accounts sharing a hub value of `signal` with another of its
    accounts (hubs are never projected, so their evidence inside a cluster is counted here)."""
    frame = _hub_accounts(hub, signal)
    if not len(frame):
        return np.zeros(len(cids))
    frame = frame[frame.groupby(["t", "c"])["a"].transform("size").to_numpy() >= 2]
    touched = frame.drop_duplicates(["c", "a"]).groupby("c").size().reindex(cids, fill_value=0)
    return touched.to_numpy(np.float64) / np.maximum(n_acc, 1)


def cluster_features(keys: pd.DataFrame, accounts: pd.DataFrame, activity: KeyActivity,
                     membership: np.ndarray, src: np.ndarray, dst: np.ndarray, weight: np.ndarray,
                     signal_weights: dict[str, np.ndarray], config, *,
                     hub_members: pd.DataFrame | None = None) -> pd.DataFrame:
    """Raw features of every cluster with at least two accounts (one row each, by cluster_id).

    `hub_members` (token, key, signal) lists the keys of judged hub values: a hub value shared
    inside a cluster counts towards that signal's share like a projected link does."""
    feats = node_features(keys, accounts, activity, membership, config)
    account = keys["account"].to_numpy(np.int64)
    return add_edge_features(feats, edge_features(account, membership, feats["cluster_id"].to_numpy(np.int64),
                                                  src, dst, weight, signal_weights, config, hub_members=hub_members))


def add_edge_features(feats: pd.DataFrame, edge: pd.DataFrame) -> pd.DataFrame:
    """node_features' frame with edge_features' columns (rows in the same cluster order) after its own."""
    for column in edge.columns:
        feats[column] = edge[column].to_numpy()
    return feats


def node_features(keys: pd.DataFrame, accounts: pd.DataFrame, activity: KeyActivity,
                  membership: np.ndarray, config) -> pd.DataFrame:
    """The features of every cluster of 2+ accounts that read no edge (sizes, usage, creation and
    activation spreads, synchrony, rotation, declared organisation and domain), by cluster_id."""
    membership = np.asarray(membership, np.int64)
    n_clusters = int(membership.max()) + 1 if membership.size else 0
    account = keys["account"].to_numpy(np.int64)
    limit = keys["daily_token_limit"].astype("Float64").fillna(config.default_daily_limit) \
        .to_numpy(np.float64)
    limit = np.where(limit > 0, limit, float(config.default_daily_limit))

    n_acc_total = int(account.max()) + 1 if account.size else 0
    # distinct accounts per cluster: one hash pass over (cluster, account) codes
    pair = pd.unique(membership * np.int64(max(n_acc_total, 1)) + account)
    n_acc = np.bincount(pair // max(n_acc_total, 1), minlength=n_clusters)
    cids = np.flatnonzero(n_acc >= 2)
    feats = pd.DataFrame({"cluster_id": cids})
    feats["n_keys"] = np.bincount(membership, minlength=n_clusters)[cids]
    feats["n_accounts"] = n_acc[cids]
    n_accounts = feats["n_accounts"].to_numpy(np.float64)
    in_scope = np.isin(membership, cids)

    # evasion: use of each key's own limit, and how many limits the cluster draws together (over
    # the keys of clusters of 2+ accounts only: every aggregate below is per cluster)
    daily = activity.daily
    dkey = daily["key"].to_numpy(np.int64)
    drow = in_scope[dkey]
    dkey = dkey[drow]
    dcl = membership[dkey]
    dtokens = daily["tokens"].to_numpy()[drow]
    per_key_use = pd.Series(dtokens / limit[dkey]).groupby(dkey).mean()
    use = pd.Series(per_key_use.to_numpy(), index=membership[per_key_use.index.to_numpy()]).groupby(level=0)
    feats["usage"] = use.median().reindex(cids).fillna(0.0).to_numpy()
    feats["usage_low"] = use.quantile(0.25).reindex(cids).fillna(0.0).to_numpy()
    cl_daily = pd.DataFrame({"c": dcl, "day": daily["day"].to_numpy()[drow], "t": dtokens}) \
        .groupby(["c", "day"])["t"].sum().groupby(level=0).max()
    feats["total_tokens"] = pd.Series(dtokens).groupby(dcl).sum() \
        .reindex(cids).fillna(0).astype(np.int64).to_numpy()
    med_limit = pd.Series(limit[in_scope]).groupby(membership[in_scope]).median().reindex(cids).to_numpy()
    feats["limit_multiplier"] = cl_daily.reindex(cids).fillna(0).to_numpy() / med_limit

    # control: creation burst of the accounts, activation burst of their newest keys (accounts of
    # clusters of 2+ accounts only)
    first_key = pd.Series(np.arange(len(keys))).groupby(account).first()
    acc_cluster = membership[first_key.to_numpy()]  # an account's cluster: that of its first key
    acc_cluster_all = np.full(n_acc_total, -1, np.int64)
    acc_cluster_all[first_key.index.to_numpy()] = acc_cluster
    scope = np.isin(acc_cluster, cids)
    scope_acc = first_key.index.to_numpy()[scope]
    key_scope = np.isin(account, scope_acc)
    key_hours = keys["created_at"].dt.tz_convert("UTC").array.asi8 / 3.6e12
    key_hours = np.where(keys["created_at"].isna().to_numpy(), np.nan, key_hours)[key_scope]
    first_hours = pd.Series(key_hours).groupby(account[key_scope]).min().reindex(scope_acc).to_numpy()
    newest_hours = pd.Series(key_hours).groupby(account[key_scope]).max().reindex(scope_acc).to_numpy()
    acc_hours = first_hours
    scope_ids = keys["account_id"].to_numpy(dtype=object)[first_key.to_numpy()[scope]]
    # each account's row in `accounts` (−1: none), found once for its creation time, organisation and domain
    row = pd.Index(accounts["account_id"]).get_indexer(scope_ids) if len(accounts) else None
    if len(accounts) and "created_at" in accounts and accounts["created_at"].notna().any():
        declared = _rows(accounts["created_at"], row)
        dh = declared.dt.tz_convert("UTC").array.asi8 / 3.6e12
        acc_hours = np.where(declared.isna().to_numpy(), first_hours, dh)
    feats["creation_spread_hours"] = _spread_hours(acc_hours, acc_cluster[scope], cids)
    feats["activation_spread_hours"] = _spread_hours(newest_hours, acc_cluster[scope], cids)
    feats["synchrony"] = _synchrony(activity, account, membership, cids)
    feats["cotiming"] = _cotiming(activity, account, acc_cluster_all, cids, n_accounts,
                                  config.sync_bin_seconds)
    # rotation: the median account's distinct public address blocks (its keys' largest count)
    if activity.blocks is not None and len(activity.blocks):
        bkey = activity.blocks.index.to_numpy(np.int64)
        per_account = pd.Series(activity.blocks.to_numpy(np.float64)).groupby(account[bkey]).max()
        acc_c = acc_cluster_all[per_account.index.to_numpy()]
        keep = np.isin(acc_c, cids)
        feats["rotation_blocks"] = pd.Series(per_account.to_numpy()[keep]).groupby(acc_c[keep]).median() \
            .reindex(cids).fillna(0.0).to_numpy()
    else:
        feats["rotation_blocks"] = 0.0

    # declared organisation and institutional domain (context, not control)
    acc_meta = pd.DataFrame({"account_id": scope_ids, "c": acc_cluster[scope]})
    if len(accounts):
        acc_meta["org_id"] = _rows(accounts["org_id"], row).to_numpy()
        acc_meta["email_domain"] = _rows(accounts["email_domain"], row).to_numpy()
    else:
        acc_meta["org_id"] = None
        acc_meta["email_domain"] = None
    by_c = acc_meta.groupby("c")["org_id"]   # one declared organisation: none missing, one distinct
    org = (by_c.count() == by_c.size()) & (by_c.nunique() == 1)
    dom = acc_meta.assign(inst=institutional(acc_meta["email_domain"])).groupby("c").agg(
        inst=("inst", "all"), n_dom=("email_domain", "nunique"))
    feats["declared_org"] = org.reindex(cids).fillna(False).astype(bool).to_numpy()
    feats["institutional_domain"] = (dom["inst"] & (dom["n_dom"] == 1)).reindex(cids).fillna(False) \
        .astype(bool).to_numpy()

    return feats


def account_clusters(account: np.ndarray, membership: np.ndarray) -> np.ndarray:
    """Per account (−1: no key): its cluster, that of its first key."""
    n_acc_total = int(account.max()) + 1 if account.size else 0
    first_key = pd.Series(np.arange(account.size)).groupby(account).first()
    out = np.full(n_acc_total, -1, np.int64)
    out[first_key.index.to_numpy()] = membership[first_key.to_numpy()]
    return out


def edge_features(account: np.ndarray, membership: np.ndarray, cids: np.ndarray, src, dst, weight,
                  signal_weights: dict[str, np.ndarray], config, *,
                  hub_members: pd.DataFrame | None = None) -> pd.DataFrame:
    """The features of clusters `cids` that read edges (shares, signals, spans, prompt homogeneity,
    weakest and strongest edge as indices into `src`): each reads only the edges inside its own
    cluster, so a partitioned engine runs this per group of clusters on their edges alone.
    `membership` and `account` are per key, of the whole job."""
    membership = np.asarray(membership, np.int64)
    cids = np.asarray(cids, np.int64)
    n_clusters = int(membership.max()) + 1 if membership.size else 0
    n_acc_total = int(account.max()) + 1 if account.size else 0
    pair = pd.unique(membership * np.int64(max(n_acc_total, 1)) + account)
    n_accounts = np.bincount(pair // max(n_acc_total, 1), minlength=n_clusters)[cids].astype(np.float64)
    acc_cluster_all = account_clusters(account, membership)
    hub = _hub_rows(hub_members, account, membership)
    feats = pd.DataFrame(index=pd.RangeIndex(len(cids)))

    # edges inside clusters, between different accounts: which signals link, and how many accounts
    src = np.asarray(src, np.int64)
    dst = np.asarray(dst, np.int64)
    inside = (membership[src] == membership[dst]) & (account[src] != account[dst])
    ecl = membership[src[inside]]
    total = pd.Series(np.asarray(weight)[inside]).groupby(ecl).sum()
    linked = np.full(len(cids), "", dtype=object)
    n_signals = np.zeros(len(cids), np.int64)
    for s in LINK_SIGNALS:
        w = signal_weights.get(s)
        if w is None:
            feats[f"share_{s}"] = 0.0
            continue
        w = np.asarray(w, np.float64)
        feats[f"share_{s}"] = _linked_share(src, dst, account, membership, inside, w, cids, n_accounts)
        if hub is not None:
            feats[f"share_{s}"] = np.maximum(feats[f"share_{s}"].to_numpy(), _hub_share(hub, s, cids, n_accounts))
        part = (pd.Series(w[inside]).groupby(ecl).sum() / total).reindex(cids).fillna(0).to_numpy()
        on = part >= config.signal_share
        linked = np.where(on, np.where(linked == "", s, linked + "," + s), linked)
        n_signals += on
    feats["signals"] = linked
    feats["n_signals"] = n_signals

    # spans: the largest group of accounts one actor's evidence joins, per control signal and for
    # all of them together (shares say how many accounts are tied at all; spans, to one another)
    union_a, union_b = [], []
    for s in ("payment", "timing", "device"):
        w = signal_weights.get(s)
        if w is None:
            feats[f"span_{s}"] = 0.0
            continue
        w = np.asarray(w, np.float64)
        if s == "device":
            # a fingerprint is a client many strangers may run (an SDK's on 20 of 8,000 accounts,
            # a gateway's on all its tenants, beside the gateway's addresses); it joins two accounts
            # as one actor only beside a shared card or shared unusual time slots
            others = sum(np.asarray(v, np.float64) for k, v in signal_weights.items()
                         if k in ("payment", "timing"))
            w = np.where(np.asarray(others) >= LINK_MIN, w, 0.0)
        if s == "timing":
            # one shared busy slot is a coincidence in a big population; a span of one actor's
            # slots needs several (or lockstep slots), or crowds chain into it at 1M accounts
            w = np.where(w >= TIMING_SPAN_MIN, w, 0.0)
        pairs = _control_pairs(src, dst, account, inside, w, hub, s)
        feats[f"span_{s}"] = _span(pairs, n_acc_total, acc_cluster_all, cids, n_accounts)
        union_a.append(pairs[0])
        union_b.append(pairs[1])
    pairs = (np.concatenate(union_a) if union_a else np.zeros(0, np.int64),
             np.concatenate(union_b) if union_b else np.zeros(0, np.int64))
    feats["span_control"] = _span(pairs, n_acc_total, acc_cluster_all, cids, n_accounts)
    # private infrastructure: accounts on the same exact addresses (special ranges — private, carrier
    # NAT, the shared-infrastructure list — never link); an office and a farm's servers both give
    # it, so it is control evidence for the verdict's gate only, never a weight of the model
    w_ip = signal_weights.get("ip")
    feats["span_ip"] = 0.0 if w_ip is None else _span(
        _control_pairs(src, dst, account, inside, np.asarray(w_ip, np.float64), hub, "ip"),
        n_acc_total, acc_cluster_all, cids, n_accounts)
    if "prompt" in signal_weights:
        has_prompt = pd.Series((np.asarray(signal_weights["prompt"])[inside] > 0).astype(float)).groupby(ecl).mean()
        feats["prompt_homogeneity"] = has_prompt.reindex(cids).fillna(0.0).to_numpy()
    else:
        feats["prompt_homogeneity"] = 0.0

    # weakest and strongest links between different accounts
    # (Kruskal over the edges inside clusters only: the others never join a spanning forest)
    between = account[src] != account[dst]
    w_between = np.where(between, np.asarray(weight, np.float64), -np.inf)
    weak = weakest_links(src[inside], dst[inside], np.asarray(weight, np.float64)[inside], membership)
    weak = np.where(weak >= 0, np.flatnonzero(inside)[np.maximum(weak, 0)] if inside.any() else -1, -1)
    edge_cluster = np.where(inside, membership[src], -1)
    strong = _strongest_links(w_between, edge_cluster, n_clusters)
    feats["weakest_edge"] = weak[cids]
    feats["strongest_edge"] = strong[cids]
    return feats
