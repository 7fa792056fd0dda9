"""Cluster scores: features with farm meaning → `score` in [0, 1], `flagged`, and an explanation.

Stage: communities → scores. Features are computed from per-key aggregates (`key_activity`, which
a distributed engine can compute per partition of keys) joined on membership, plus the cluster's
internal edges. The score is a logistic combination of features scaled to [0, 1]; the weights are
configuration (`ScoringConfig`), chosen by measurement on generated worlds, and every flagged
cluster names its drivers, its strongest evidence and its weakest link.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numba
import numpy as np
import pandas as pd

SIGNALS = ("account", "payment", "ip", "device", "prompt", "timing")
LINK_SIGNALS = ("payment", "ip", "device", "prompt", "timing")  # the account signal links keys of one account
CONSUMER_DOMAINS_NOTE = "an institutional domain ends in .edu, .ac.<cc> or .gov, or is declared by org"


@dataclass(frozen=True)
class ScoringConfig:
    """Weights of the cluster score and the flagging policy (see module docstring)."""

    default_daily_limit: int = 100_000   # tokens, for keys without daily_token_limit
    sync_bin_seconds: int = 300          # activity bins for synchrony
    burst_window_hours: float = 72.0     # accounts created within this spread look like one burst
    min_accounts: int = 3                # never flag a cluster with fewer accounts
    threshold: float = 0.5               # flagged when score >= threshold (and min_accounts)
    signal_share: float = 0.05           # a signal "links" a cluster when it carries this share of weight
    bias: float = -4.0
    weights: dict = field(default_factory=lambda: {
        "accounts": 1.5, "usage": 2.0, "multiplier": 1.5, "burst": 1.5, "synchrony": 2.5,
        "prompt_homogeneity": 1.0, "signals": 1.0, "declared_org": -6.0, "institutional_domain": -3.0,
    })

    def to_dict(self) -> dict:
        return asdict(self)


FEATURE_TEXT = {
    "accounts": "{n_accounts} accounts",
    "usage": "keys run at {usage:.0%} of their daily limit",
    "multiplier": "the cluster draws {limit_multiplier:.1f}x one key's limit",
    "burst": "accounts created within {creation_spread_hours:.0f} h",
    "synchrony": "activity synchronised across accounts ({synchrony:.2f})",
    "prompt_homogeneity": "near-duplicate prompts across accounts ({prompt_homogeneity:.0%} of links)",
    "signals": "linked by {signals}",
    "declared_org": "one declared organisation",
    "institutional_domain": "one institutional email domain",
}


# ---------------------------------------------------------------- per-key aggregates

@dataclass
class KeyActivity:
    """Per-key aggregates of the requests: what cluster features need, far smaller than the logs."""

    daily: pd.DataFrame   # key, day (int days since epoch), tokens
    bins: pd.DataFrame    # key, bin (int): distinct activity bins of each key
    n_bins_total: int     # bins spanned by the logs (for the synchrony baseline)


def key_activity(requests: pd.DataFrame, *, bin_seconds: int = 300) -> KeyActivity:
    """Daily tokens per key and the distinct time bins each key was active in."""
    ts = requests["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64) // 10**9
    tokens = (requests["prompt_tokens"].fillna(0).to_numpy(np.int64)
              + requests["completion_tokens"].fillna(0).to_numpy(np.int64))
    key = requests["key"].to_numpy(np.int64)
    daily = pd.DataFrame({"key": key, "day": ts // 86400, "tokens": tokens}) \
        .groupby(["key", "day"], sort=True, as_index=False)["tokens"].sum()
    bins = pd.DataFrame({"key": key, "bin": ts // bin_seconds}).drop_duplicates() \
        .sort_values(["key", "bin"], kind="stable").reset_index(drop=True)
    span = activity_span(int(ts.min()), int(ts.max()), bin_seconds) if len(ts) else 1
    return KeyActivity(daily=daily, bins=bins, n_bins_total=span)


def activity_span(first_second: int, last_second: int, bin_seconds: int) -> int:
    """Bins spanned by logs from `first_second` to `last_second` (epoch seconds): a partitioned
    engine computes key_activity per partition and this from the global first and last request."""
    return int(last_second // bin_seconds - first_second // bin_seconds + 1)


# ---------------------------------------------------------------- graph-based evidence

@numba.njit(cache=True, nogil=True)
def _find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


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
        ra, rb = _find(parent, a), _find(parent, b)
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

def _institutional(domain: pd.Series) -> np.ndarray:
    d = domain.fillna("").str.lower()
    return (d.str.endswith(".edu") | d.str.contains(r"\.ac\.[a-z]{2}$") | d.str.endswith(".gov")).to_numpy()


def cluster_features(keys: pd.DataFrame, accounts: pd.DataFrame, activity: KeyActivity,
                     membership: np.ndarray, src: np.ndarray, dst: np.ndarray, weight: np.ndarray,
                     signal_weights: dict[str, np.ndarray], config: ScoringConfig) -> pd.DataFrame:
    """Features of every cluster with at least two accounts (one row each, by cluster_id)."""
    membership = np.asarray(membership, np.int64)
    n_clusters = int(membership.max()) + 1 if membership.size else 0
    account = keys["account"].to_numpy(np.int64)
    limit = keys["daily_token_limit"].astype("Float64").fillna(config.default_daily_limit) \
        .to_numpy(np.float64)

    n_acc = pd.Series(account).groupby(membership).nunique().reindex(range(n_clusters), fill_value=0)
    cids = np.flatnonzero(n_acc.to_numpy() >= 2)
    feats = pd.DataFrame({"cluster_id": cids})
    feats["n_keys"] = np.bincount(membership, minlength=n_clusters)[cids]
    feats["n_accounts"] = n_acc.to_numpy()[cids]
    in_scope = np.isin(membership, cids)

    # usage and limit multiplier
    daily = activity.daily
    dkey = daily["key"].to_numpy()
    dcl = membership[dkey]
    per_key_use = (daily.assign(ratio=daily["tokens"].to_numpy() / limit[dkey])
                   .groupby("key")["ratio"].mean())
    use = pd.Series(per_key_use.to_numpy(), index=membership[per_key_use.index.to_numpy()]) \
        .groupby(level=0).median()
    feats["usage"] = use.reindex(cids).fillna(0.0).to_numpy()
    cl_daily = pd.DataFrame({"c": dcl, "day": daily["day"].to_numpy(), "t": daily["tokens"].to_numpy()}) \
        .groupby(["c", "day"])["t"].sum().groupby(level=0).max()
    feats["total_tokens"] = pd.Series(daily["tokens"].to_numpy()).groupby(dcl).sum() \
        .reindex(cids).fillna(0).astype(np.int64).to_numpy()
    med_limit = pd.Series(limit[in_scope]).groupby(membership[in_scope]).median().reindex(cids).to_numpy()
    feats["limit_multiplier"] = cl_daily.reindex(cids).fillna(0).to_numpy() / med_limit

    # creation spread of the cluster's accounts (account created_at, else its first key)
    acc_created = keys.groupby("account")["created_at"].min()
    if len(accounts) and accounts["created_at"].notna().any():
        declared = accounts.set_index("account_id")["created_at"]
        ids = keys.groupby("account")["account_id"].first()
        acc_created = declared.reindex(ids.to_numpy()).set_axis(ids.index).fillna(acc_created)
    first_key = pd.Series(np.arange(len(keys))).groupby(account).first()
    acc_cluster = membership[first_key.to_numpy()]  # an account's cluster: that of its first key
    hours = acc_created.dt.tz_convert("UTC").array.asi8[first_key.index.to_numpy()] / 3.6e12
    scope = np.isin(acc_cluster, cids)
    spread = pd.Series(hours[scope]).groupby(acc_cluster[scope])
    feats["creation_spread_hours"] = (spread.quantile(0.9) - spread.quantile(0.1)).reindex(cids).to_numpy()

    # synchrony: how few distinct bins the cluster's activity occupies, against chance
    bins = activity.bins
    bcl = membership[bins["key"].to_numpy()]
    cb = pd.DataFrame({"c": bcl, "bin": bins["bin"].to_numpy()})
    cb = cb[np.isin(bcl, cids)]
    key_bins = cb.groupby("c").size()
    distinct = cb.drop_duplicates().groupby("c").size()
    total_bins = max(activity.n_bins_total, 1)
    n = key_bins.reindex(cids).fillna(0).to_numpy()
    expected = total_bins * (1.0 - np.power(1.0 - 1.0 / total_bins, n))
    observed = distinct.reindex(cids).fillna(0).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        feats["synchrony"] = np.where(expected > 0, np.clip(1.0 - observed / expected, 0, 1), 0.0)

    # declared organisation and institutional domain
    acc_meta = keys.groupby("account")["account_id"].first().to_frame()
    meta = accounts.set_index("account_id")[["org_id", "email_domain"]] if len(accounts) else None
    if meta is not None:
        acc_meta = acc_meta.join(meta, on="account_id")
    else:
        acc_meta["org_id"] = None
        acc_meta["email_domain"] = None
    acc_meta["c"] = acc_cluster
    acc_meta = acc_meta[np.isin(acc_cluster, cids)]
    org = acc_meta.groupby("c")["org_id"].agg(lambda s: s.notna().all() and s.nunique() == 1)
    dom = acc_meta.assign(inst=_institutional(acc_meta["email_domain"])).groupby("c").agg(
        inst=("inst", "all"), n_dom=("email_domain", "nunique"))
    feats["declared_org"] = org.reindex(cids).fillna(False).astype(bool).to_numpy()
    feats["institutional_domain"] = (dom["inst"] & (dom["n_dom"] == 1)).reindex(cids).fillna(False) \
        .astype(bool).to_numpy()

    # edges inside clusters, between different accounts: which signals link, prompt homogeneity
    src = np.asarray(src, np.int64)
    dst = np.asarray(dst, np.int64)
    inside = (membership[src] == membership[dst]) & (account[src] != account[dst])
    ecl = membership[src[inside]]
    total = pd.Series(np.asarray(weight)[inside]).groupby(ecl).sum()
    shares = {}
    for s in LINK_SIGNALS:
        w = signal_weights.get(s)
        if w is None:
            continue
        shares[s] = (pd.Series(np.asarray(w)[inside]).groupby(ecl).sum() / total).reindex(cids).fillna(0)
    linked = np.full(len(cids), "", dtype=object)
    n_signals = np.zeros(len(cids), np.int64)
    for s, share in shares.items():
        on = share.to_numpy() >= config.signal_share
        linked = np.where(on, np.where(linked == "", s, linked + "," + s), linked)
        n_signals += on
    feats["signals"] = linked
    feats["n_signals"] = n_signals
    if "prompt" in signal_weights:
        has_prompt = pd.Series((np.asarray(signal_weights["prompt"])[inside] > 0).astype(float)).groupby(ecl).mean()
        feats["prompt_homogeneity"] = has_prompt.reindex(cids).fillna(0.0).to_numpy()
    else:
        feats["prompt_homogeneity"] = 0.0

    # weakest and strongest links
    weak = weakest_links(src, dst, weight, membership)
    edge_cluster = np.where(membership[src] == membership[dst], membership[src], -1)
    strong = _strongest_links(np.asarray(weight, np.float64), edge_cluster, n_clusters)
    feats["weakest_edge"] = weak[cids]
    feats["strongest_edge"] = strong[cids]
    return feats


# ---------------------------------------------------------------- score and verdict

def feature_scales(feats: pd.DataFrame, config: ScoringConfig) -> pd.DataFrame:
    """Each scored feature scaled to [0, 1] (1 = farm-like), one column per weight name."""
    return pd.DataFrame({
        "accounts": np.clip((feats["n_accounts"] - 2) / 4.0, 0, 1),
        "usage": np.clip((feats["usage"] - 0.2) / 0.6, 0, 1),
        "multiplier": np.clip((feats["limit_multiplier"] - 1.0) / 4.0, 0, 1),
        "burst": np.clip(1.0 - feats["creation_spread_hours"] / config.burst_window_hours, 0, 1),
        "synchrony": np.clip(feats["synchrony"], 0, 1),
        "prompt_homogeneity": np.clip(feats["prompt_homogeneity"], 0, 1),
        "signals": np.clip(feats["n_signals"] / 3.0, 0, 1),
        "declared_org": feats["declared_org"].astype(float),
        "institutional_domain": feats["institutional_domain"].astype(float),
    }, index=feats.index)


def score_clusters(feats: pd.DataFrame, config: ScoringConfig) -> pd.DataFrame:
    """Add `score`, `flagged` and a one-sentence `explanation` naming the drivers."""
    scaled = feature_scales(feats, config)
    weights = pd.Series(config.weights)
    contrib = scaled[weights.index] * weights
    logit = config.bias + contrib.sum(axis=1)
    out = feats.copy()
    out["score"] = (1.0 / (1.0 + np.exp(-logit))).round(6)
    out["flagged"] = (out["score"] >= config.threshold) & (out["n_accounts"] >= config.min_accounts)
    out["explanation"] = [_explain(row, contrib.loc[i], config) for i, row in out.iterrows()]
    return out


def _explain(row: pd.Series, contrib: pd.Series, config: ScoringConfig) -> str:
    """One sentence: verdict, the features that pushed the score most, the benign ones against."""
    fmt = row.to_dict()
    fmt["signals"] = (row["signals"] or "nothing but the account").replace(",", ", ")
    up = [FEATURE_TEXT[k].format(**fmt) for k, v in contrib.sort_values(ascending=False).items()
          if v >= 0.5][:4]
    down = [FEATURE_TEXT[k].format(**fmt) for k, v in contrib.items() if v < -0.1]
    verdict = "Flagged" if row["flagged"] else "Not flagged"
    text = f"{verdict} (score {row['score']:.2f}): " + (", ".join(up) if up else "no strong farm features")
    if down:
        text += "; against: " + ", ".join(down)
    if not row["flagged"] and row["n_accounts"] < config.min_accounts:
        text += f"; fewer than {config.min_accounts} accounts"
    return text + "."
