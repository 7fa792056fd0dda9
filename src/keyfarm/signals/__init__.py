"""Signals: one module per kind of shared evidence, each `incidence(tables, config) -> DataFrame`.

An incidence row ties a key (its index in tables.keys) to a token ("pay:…", "ip4/24:…", "lsh:…")
with the columns of INCIDENCE_COLUMNS. Adding a signal is one module and one line in REGISTRY.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

INCIDENCE_COLUMNS = ("key", "token", "signal", "weight", "count", "first_seen", "last_seen")


def ts_ns(ts: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds (grouping on integers is far faster than on Timestamps)."""
    return np.asarray(ts.array.asi8 if hasattr(ts.array, "asi8") else ts.to_numpy("datetime64[ns]").view(np.int64))


def _as_utc(values, n: int) -> pd.Series:
    if values is None:
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
    arr = np.asarray(values)
    if np.issubdtype(arr.dtype, np.integer):
        return pd.Series(pd.to_datetime(arr, unit="ns", utc=True))
    return pd.Series(values).reset_index(drop=True)


def make_incidence(key, token, signal: str, *, weight=1.0, count=1, first_seen=None,
                   last_seen=None) -> pd.DataFrame:
    """An incidence table with the contract's columns and dtypes (times may be int64 ns)."""
    key = np.asarray(key, np.int64)
    n = key.size
    return pd.DataFrame({
        "key": key,
        "token": np.asarray(token, dtype=object),
        "signal": np.full(n, signal, dtype=object),
        "weight": np.broadcast_to(np.asarray(weight, np.float64), (n,)).copy(),
        "count": np.broadcast_to(np.asarray(count, np.int64), (n,)).copy(),
        "first_seen": _as_utc(first_seen, n),
        "last_seen": _as_utc(last_seen, n),
    })


def aggregate_pairs(key: np.ndarray, value_codes: np.ndarray, ts: pd.Series) -> pd.DataFrame:
    """Unique (key, value) pairs of request rows with their count and first/last time seen (int64 ns)."""
    frame = pd.DataFrame({"key": key, "value": value_codes, "ts": ts_ns(ts)})
    return frame.groupby(["key", "value"], sort=True).agg(count=("ts", "size"), first_seen=("ts", "min"),
                                                          last_seen=("ts", "max")).reset_index()


def _registry():
    from keyfarm.signals import account, device, network, payment, prompt, timing
    return {"account": account.incidence, "payment": payment.incidence, "network": network.incidence,
            "device": device.incidence, "prompt": prompt.incidence, "timing": timing.incidence}


def registry() -> dict:
    """Signal name → incidence function, in the order the job runs them."""
    return _registry()
