"""incidence → weighted key graph: degree counts, weighting and hubs, projection (keyfarm.graph)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from keyfarm.graph.keygraph import KeyGraph
from keyfarm.graph.projection import project
from keyfarm.graph.weighting import SIGNALS, weigh_tokens


def token_degrees(incidence: pd.DataFrame, account: np.ndarray) -> pd.DataFrame:
    """Per token: distinct accounts and keys (a reduce a distributed engine runs separately)."""
    frame = pd.DataFrame({"token": incidence["token"].to_numpy(),
                          "acc": account[incidence["key"].to_numpy()],
                          "key": incidence["key"].to_numpy()})
    return frame.groupby("token", sort=True).agg(n_accounts=("acc", "nunique"), n_keys=("key", "nunique")) \
        .reset_index()


def build_graph(tables, config, incidences: dict[str, pd.DataFrame] | None = None):
    """Weighted key graph from the tables' signals.

    Returns (KeyGraph, hubs, tokens): hubs is a table of hub tokens (token, signal, n_accounts,
    n_keys), tokens the weighted table of every token seen.
    """
    if incidences is None:
        from keyfarm.signals import registry
        incidences = {name: fn(tables, config) for name, fn in registry().items()}
    keys = tables.keys
    n_keys = len(keys)
    account = keys["account"].to_numpy(np.int64)
    n_accounts = int(account.max()) + 1 if n_keys else 0
    parts = [f[["key", "token", "weight"]] for f in incidences.values() if len(f)]
    inc = pd.concat(parts, ignore_index=True) if parts else \
        pd.DataFrame({"key": np.zeros(0, np.int64), "token": np.zeros(0, object), "weight": np.zeros(0)})
    inc = inc.groupby(["token", "key"], sort=True)["weight"].max().reset_index()

    degrees = token_degrees(inc, account)
    tokens = weigh_tokens(degrees, n_accounts, config)
    hubs = tokens.loc[tokens["is_hub"], ["token", "signal", "n_accounts", "n_keys"]] \
        .sort_values(["n_accounts", "token"], ascending=[False, True]).reset_index(drop=True)

    projected = tokens[tokens["projected"]].reset_index(drop=True)
    token_id = pd.Index(projected["token"])
    sel = inc[inc["token"].isin(token_id)]
    t = token_id.get_indexer(sel["token"])
    order = np.lexsort((sel["key"].to_numpy(), t))
    t_sorted = t[order]
    t_keys = sel["key"].to_numpy(np.int64)[order]
    t_tie = sel["weight"].to_numpy(np.float64)[order]
    t_indptr = np.zeros(len(projected) + 1, np.int64)
    np.cumsum(np.bincount(t_sorted, minlength=len(projected)), out=t_indptr[1:])
    signal_id = pd.Index(SIGNALS).get_indexer(projected["signal"])
    src, dst, w, best = project(t_indptr, t_keys, t_tie, projected["weight"].to_numpy(np.float64),
                                signal_id, n_keys, len(SIGNALS))
    per_signal = {s: w[:, i].copy() for i, s in enumerate(SIGNALS)}
    evidence = {s: best[:, i].copy() for i, s in enumerate(SIGNALS)}
    graph = KeyGraph(n_nodes=n_keys, src=src, dst=dst, weight=w.sum(axis=1), w=per_signal,
                     key_id=keys["key_id"].to_numpy(dtype=object),
                     account_id=keys["account_id"].to_numpy(dtype=object), account=account,
                     evidence=evidence, tokens=projected["token"].to_numpy(dtype=object))
    return graph, hubs, tokens
