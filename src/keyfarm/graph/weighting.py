"""Token weighting and hubs: a shared value is evidence in proportion to how rare it is.

A token shared by d distinct accounts out of N weighs base[kind] × log(N/d) / log(N). log(N/d) is
the log-likelihood ratio of the Fellegi–Sunter model for agreement on a value of frequency d/N
(the chance that two unrelated accounts share it is about d/N); dividing by log(N) scales a value
unique to one pair of accounts to ≈ base. Tokens on more accounts than the kind's cap, or on more
keys than `caps.max_keys`, are hubs: never projected (their d² pairs would swamp the graph), and
reported. Tokens on a single account link nothing beyond the account signal and are dropped.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

# token prefix → (weight name in WeightsConfig, cap name in CapsConfig or None, signal column)
TOKEN_KINDS = {
    "acct": ("account", None, "account"),
    "pay": ("payment", "payment", "payment"),
    "ip4": ("ip4", "ip", "ip"),
    "ip4/24": ("ip4_24", "ip", "ip"),
    "ip6": ("ip6", "ip", "ip"),
    "ip6/64": ("ip6_64", "ip", "ip"),
    "ip6/48": ("ip6_48", "ip", "ip"),
    "ipw": ("ip_window", "ip", "ip"),
    "dev": ("device", "device", "device"),
    "ua": ("user_agent", "device", "device"),
    "pdup": ("prompt", "prompt", "prompt"),
    "lsh": ("prompt", "prompt", "prompt"),
}
SIGNALS = ("account", "payment", "ip", "device", "prompt")


def token_kind(tokens: pd.Series) -> pd.Series:
    """The kind prefix of each token (text before the first ':')."""
    return tokens.str.split(":", n=1).str[0]


def weigh_tokens(tokens: pd.DataFrame, n_accounts: int, config) -> pd.DataFrame:
    """Per token (columns token, n_accounts, n_keys): kind, signal, weight, is_hub.

    Unknown token kinds are an error: a signal must register its kind here.
    """
    kind = token_kind(tokens["token"])
    unknown = ~kind.isin(list(TOKEN_KINDS))
    if unknown.any():
        raise ValueError(f"unknown token kind {kind[unknown].iloc[0]!r} "
                         f"(token {tokens['token'][unknown].iloc[0]!r})")
    spec = kind.map(TOKEN_KINDS)
    base = spec.map(lambda s: getattr(config.weights, s[0])).to_numpy(np.float64)
    cap = spec.map(lambda s: getattr(config.caps, s[1]) if s[1] else np.iinfo(np.int64).max) \
        .to_numpy(np.int64)
    d = tokens["n_accounts"].to_numpy(np.int64)
    is_account = (kind == "acct").to_numpy()
    log_n = math.log(max(n_accounts, 2))
    idf = np.clip(np.log(max(n_accounts, 2) / np.maximum(d, 1)) / log_n, 0.0, 1.0)
    weight = np.where(is_account, base, base * idf)
    is_hub = (d > cap) | (tokens["n_keys"].to_numpy() > config.caps.max_keys)
    out = tokens.copy()
    out["kind"] = kind.to_numpy()
    out["signal"] = spec.map(lambda s: s[2]).to_numpy()
    out["weight"] = weight
    out["is_hub"] = is_hub
    out["projected"] = ~is_hub & ((d >= 2) | is_account) & (out["n_keys"].to_numpy() >= 2) & (weight > 0)
    return out
