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
    if np.issubdtype(arr.dtype, np.integer):   # a view, not to_datetime's unit conversion (9x slower)
        return pd.Series(pd.DatetimeIndex(arr.astype(np.int64, copy=False).view("M8[ns]")).tz_localize("UTC"))
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
    return pair_stats(key, value_codes, ts_ns(ts), names=("key", "value"))


def sorted_groups(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row order, start of each group in it) of the distinct (a, b) pairs of two int64 columns,
    sorted by a then b, rows of a group in their original order: what groupby([a, b], sort=True)
    groups, by one integer sort instead of pandas' factorizing of each column."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if not a.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo, span = int(b.min()), int(b.max()) - int(b.min()) + 1
    if int(a.min()) >= 0 and int(a.max()) < np.iinfo(np.int64).max // span:
        order = np.argsort(a * span + (b - lo), kind="stable")
    else:
        order = np.lexsort((b, a))
    sa, sb = a[order], b[order]
    new = np.ones(a.size, bool)
    new[1:] = (sa[1:] != sa[:-1]) | (sb[1:] != sb[:-1])
    return order, np.flatnonzero(new)


def pair_stats(a: np.ndarray, b: np.ndarray, first: np.ndarray, last: np.ndarray | None = None, *,
               names=("key", "value"), count: np.ndarray | None = None, extra: dict | None = None) -> pd.DataFrame:
    """Per distinct (a, b) pair, sorted: each `extra` column's max, its count (rows, or the sum of
    `count`), the least `first` and the greatest `last` (default: `first`; int64 times): what
    groupby(names, sort=True).agg(...) gives, in NumPy."""
    order, starts = sorted_groups(a, b)
    out = {names[0]: np.asarray(a, np.int64)[order[starts]], names[1]: np.asarray(b, np.int64)[order[starts]]}

    def reduce(ufunc, values):
        values = np.asarray(values)[order]
        return ufunc.reduceat(values, starts) if starts.size else values[:0]
    for name, values in (extra or {}).items():
        out[name] = reduce(np.maximum, values)
    out["count"] = np.diff(np.append(starts, order.size)) if count is None else reduce(np.add, np.asarray(count, np.int64))
    out["first_seen"] = reduce(np.minimum, np.asarray(first, np.int64))
    out["last_seen"] = reduce(np.maximum, np.asarray(first if last is None else last, np.int64))
    return pd.DataFrame(out)


def _registry():
    from keyfarm.signals import account, device, network, payment, prompt, timing
    return {"account": account.incidence, "payment": payment.incidence, "network": network.incidence,
            "device": device.incidence, "prompt": prompt.incidence, "timing": timing.incidence}


def registry() -> dict:
    """Signal name → incidence function, in the order the job runs them."""
    return _registry()
