"""Payment signal: every key of an account that holds a payment instrument shares its fingerprint."""
from __future__ import annotations

import numpy as np
import pandas as pd

from keyfarm.signals import make_incidence


def incidence(tables, config):
    keys = tables.keys[["account_id"]].reset_index(names="key")
    pay = tables.payments[["account_id", "payment_fingerprint"]].drop_duplicates()
    joined = keys.merge(pay, on="account_id", how="inner").sort_values(["key", "payment_fingerprint"])
    return make_incidence(joined["key"].to_numpy(np.int64),
                          "pay:" + joined["payment_fingerprint"].astype(str).to_numpy(), "payment")
