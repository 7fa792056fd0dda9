"""Token weighting and hubs (graph stage): a shared value is evidence in proportion to how rare it is.

Choice: an inverse document frequency over accounts, read as a Fellegi–Sunter match weight. A token
shared by d distinct accounts weighs

    base[kind] × log(R / d) / log(R)        (clipped to [0, base])

log(R/d) is the log-likelihood ratio of agreement on a value of frequency d/R: two unrelated
accounts share it with probability about d/R, a single actor's accounts share it whatever d is.
R is a fixed reference population (config.weights.reference_accounts, 10⁶), not the job's size:
a value on d accounts weighs the same in a 5k-account and a 1M-account run. Dividing by log(R)
makes a value unique to one pair of accounts weigh ≈ base, so base[kind] (one per token kind in
config.weights: exact IPv4, /24, IPv6, /64, /48, window, device, user agent, payment, prompt,
time slot, lockstep slot) says how much one such agreement is worth against the others. Degrees count
*accounts*, not keys: an account's many keys are one actor, not many coincidences.

Hubs: a token on more accounts than its signal's cap (config.caps.<signal>) or on more keys than
caps.max_keys is never projected, since its d² pairs would swamp the graph and carry ≈ no evidence
(a campus NAT, the default SDK fingerprint, "hello"); hubs are reported with their degrees. A
device fingerprint on more than caps.max_share of the job's accounts (at least
caps.min_share_cap) is a hub too: a client popular in this population (an SDK's fingerprint on 16
of 2,400 accounts) even when the absolute cap is loose. It binds only in small jobs. Tokens
on one account link nothing beyond the account signal and are not projected either. The account
token (`acct:`) always weighs weights.account: the keys of one account are one actor by definition.

Saturation: after projection a pair's evidence from one signal, s = Σ token weight × tie, becomes
cap × (1 − exp(−s / cap)) with cap = config.saturation.<signal>: it grows sub-linearly in the number
of shared tokens and never exceeds cap, so 300 shared public benchmark prompts are not 300 proofs
and weigh less than one shared card.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

# token kind (text before the first ':') → (weight in WeightsConfig, cap in CapsConfig or None, signal)
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
    "slot": ("timing", "timing", "timing"),
    "tgrp": ("timing_group", "timing", "timing"),
    "tset": ("timing_group", "timing_group", "timing"),
}
KINDS = tuple(TOKEN_KINDS)
SIGNALS = ("account", "payment", "ip", "device", "prompt", "timing")
SHARE_CAPPED = ("device",)   # software fingerprints: values that can be popular (caps.max_share)
_NO_CAP = np.iinfo(np.int64).max


def kind_codes(tokens) -> np.ndarray:
    """Index into KINDS of each token's kind; ValueError naming the first unknown kind.

    Tokens sharing the prefix "kind:" are one contiguous run in sorted order, so after one sort
    (none if already sorted) each kind is two binary searches instead of a string split per token.
    """
    values = np.asarray(tokens, dtype=object)
    index = pd.Index(values)
    order = None if index.is_monotonic_increasing else np.argsort(values, kind="stable")
    ordered = values if order is None else values[order]
    codes = np.full(values.size, -1, np.int64)
    for k, kind in enumerate(KINDS):
        lo = np.searchsorted(ordered, kind + ":", side="left")
        hi = np.searchsorted(ordered, kind + ";", side="left")  # ';' follows ':'
        codes[lo:hi] = k
    if order is not None:
        codes[order] = codes.copy()
    if (codes < 0).any():
        bad = str(values[np.flatnonzero(codes < 0)[0]])
        raise ValueError(f"unknown token kind {bad.split(':', 1)[0]!r} (token {bad!r}); "
                         f"known kinds: {', '.join(KINDS)}")
    return codes


def token_weights(kind: np.ndarray, n_accounts: np.ndarray, n_keys: np.ndarray, n_total_accounts: int,
                  config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per token, from its kind code and degrees: (weight, is_hub, projected) arrays."""
    base = np.array([getattr(config.weights, TOKEN_KINDS[k][0]) for k in KINDS], np.float64)[kind]
    caps = [getattr(config.caps, TOKEN_KINDS[k][1]) if TOKEN_KINDS[k][1] else None for k in KINDS]
    cap = np.array([_NO_CAP if c is None else c for c in caps], np.int64)[kind]
    max_keys = _NO_CAP if config.caps.max_keys is None else config.caps.max_keys
    d = np.asarray(n_accounts, np.int64)
    n_keys = np.asarray(n_keys, np.int64)
    is_account = kind == KINDS.index("acct")
    # a fixed reference population, not the job's N: the same evidence weighs the same in a 5k and a
    # 1M run (n_total_accounts is kept in the signature for callers that pass it)
    n = max(int(config.weights.reference_accounts), 2)
    idf = np.clip(np.log(n / np.maximum(d, 1)) / math.log(n), 0.0, 1.0)
    weight = np.where(is_account, base, base * idf)
    # a value on more than caps.max_share of the job's accounts is popular in this population, however
    # few accounts that is in absolute terms (an SDK's fingerprint on 16 of 3,000 accounts); binds
    # only in small jobs, where the absolute caps are loose
    share_capped = np.isin(kind, [KINDS.index(k) for k, (_, _, sig) in TOKEN_KINDS.items()
                                  if sig in SHARE_CAPPED])
    share_cap = max(config.caps.max_share * float(n_total_accounts), float(config.caps.min_share_cap))
    is_hub = (d > cap) | (n_keys > max_keys) | (share_capped & (d > share_cap))
    projected = ~is_hub & ((d >= 2) | is_account) & (n_keys >= 2) & (weight > 0)
    return weight, is_hub, projected


def saturate(w: dict[str, np.ndarray], config) -> dict[str, np.ndarray]:
    """Per-signal pair evidence made sub-linear and capped: cap × (1 − exp(−s/cap)), rounded to a
    multiple of 2**-32 so both engines give identical bits. Signals without a cap pass unchanged."""
    out = {}
    for signal, values in w.items():
        cap = getattr(config.saturation, signal, None)
        if cap is None or signal == "account":
            out[signal] = values
            continue
        sat = cap * -np.expm1(-np.asarray(values, np.float64) / cap)
        out[signal] = np.floor(sat * 2.0 ** 32) / 2.0 ** 32   # floor: never above cap
    return out


def weigh_tokens(tokens: pd.DataFrame, n_accounts: int, config) -> pd.DataFrame:
    """Per token (columns token, n_accounts, n_keys): adds kind, signal, weight, is_hub, projected.

    `n_accounts` is N, the number of accounts in the job. Unknown token kinds are an error: a
    signal registers its kinds in TOKEN_KINDS.
    """
    kind = kind_codes(tokens["token"].to_numpy(dtype=object))
    weight, is_hub, projected = token_weights(kind, tokens["n_accounts"].to_numpy(),
                                              tokens["n_keys"].to_numpy(), n_accounts, config)
    out = tokens.copy()
    out["kind"] = np.asarray(KINDS, dtype=object)[kind]
    out["signal"] = np.asarray([TOKEN_KINDS[k][2] for k in KINDS], dtype=object)[kind]
    out["weight"] = weight
    out["is_hub"] = is_hub
    out["projected"] = projected
    return out
