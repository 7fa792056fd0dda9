"""Device signal: keys that present the same TLS/device fingerprint or User-Agent string."""
from __future__ import annotations

import numpy as np
import pandas as pd

from keyfarm.signals import aggregate_pairs, make_incidence


def _one(requests: pd.DataFrame, column: str, prefix: str) -> pd.DataFrame:
    present = requests[column].notna().to_numpy()
    if not present.any():
        return make_incidence([], [], "device")
    sub = requests.loc[present, ["key", "ts", column]]   # not the other columns' 11M rows at 1M keys
    codes, uniques = pd.factorize(sub[column], sort=True)
    agg = aggregate_pairs(sub["key"].to_numpy(), codes, sub["ts"])
    tokens = (prefix + pd.Series(uniques, dtype=object).astype(str)).to_numpy(dtype=object)
    return make_incidence(agg["key"], tokens[agg["value"].to_numpy()], "device", count=agg["count"],
                          first_seen=agg["first_seen"], last_seen=agg["last_seen"])


def incidence(tables, config):
    requests = tables.requests
    return pd.concat([_one(requests, "device_fingerprint", "dev:"), _one(requests, "user_agent", "ua:")],
                     ignore_index=True)
