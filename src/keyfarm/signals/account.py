"""Account signal: the keys of one account share the token acct:<account_id> (limits are per account)."""
from __future__ import annotations

from keyfarm.signals import make_incidence


def incidence(tables, config):
    keys = tables.keys
    return make_incidence(keys.index.to_numpy(), "acct:" + keys["account_id"].astype(str).to_numpy(),
                          "account")
