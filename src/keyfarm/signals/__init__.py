"""Signals: one module per kind of shared evidence, each `incidence(tables, config) -> DataFrame`.

An incidence row ties a key (its index in tables.keys) to a token ("pay:…", "ip4/24:…", "lsh:…")
with the columns of INCIDENCE_COLUMNS. Adding a signal is one module and one line in REGISTRY.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

INCIDENCE_COLUMNS = ("key", "token", "signal", "weight", "count", "first_seen", "last_seen")


def make_incidence(key, token, signal: str, *, weight=1.0, count=1, first_seen=None,
                   last_seen=None) -> pd.DataFrame:
    """An incidence table with the contract's columns and dtypes."""
    key = np.asarray(key, np.int64)
    n = key.size
    nat = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
    frame = pd.DataFrame({
        "key": key,
        "token": np.asarray(token, dtype=object),
        "signal": pd.Categorical([signal] * n) if n else pd.Categorical([]),
        "weight": np.broadcast_to(np.asarray(weight, np.float64), (n,)).copy(),
        "count": np.broadcast_to(np.asarray(count, np.int64), (n,)).copy(),
        "first_seen": nat if first_seen is None else pd.Series(first_seen).reset_index(drop=True),
        "last_seen": nat if last_seen is None else pd.Series(last_seen).reset_index(drop=True),
    })
    frame["signal"] = frame["signal"].astype(object)
    return frame


def aggregate_pairs(key: np.ndarray, value_codes: np.ndarray, ts: pd.Series) -> pd.DataFrame:
    """Unique (key, value) pairs of request rows with their count and first/last time seen."""
    frame = pd.DataFrame({"key": key, "value": value_codes, "ts": ts.to_numpy()})
    agg = frame.groupby(["key", "value"], sort=True).agg(count=("ts", "size"), first_seen=("ts", "min"),
                                                          last_seen=("ts", "max")).reset_index()
    agg["first_seen"] = agg["first_seen"].dt.tz_localize("UTC") if agg["first_seen"].dt.tz is None else agg["first_seen"]
    agg["last_seen"] = agg["last_seen"].dt.tz_localize("UTC") if agg["last_seen"].dt.tz is None else agg["last_seen"]
    return agg


def _registry():
    from keyfarm.signals import account, device, network, payment, prompt
    return {"account": account.incidence, "payment": payment.incidence, "network": network.incidence,
            "device": device.incidence, "prompt": prompt.incidence}


def registry() -> dict:
    """Signal name → incidence function, in the order the job runs them."""
    return _registry()
