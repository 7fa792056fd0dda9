"""Graph stage: signals' incidence → weighted key graph (merge, degrees, weights and hubs, projection).

`build_graph` converts token text to integer codes once (pd.factorize, sorted) and works on arrays
from there: one sort merges the incidences, degrees are bincounts, the projected tokens' key lists
form a CSR that keyfarm.graph.projection expands in Numba. The DataFrame helpers below
(merge_incidences, token_degrees, hub_table, project_tokens) are the same steps on tables, for a
distributed engine that runs them per group of tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from keyfarm.graph.keygraph import KeyGraph
from keyfarm.graph.projection import project
from keyfarm.graph.weighting import KINDS, SIGNALS, TOKEN_KINDS, kind_codes, saturate, token_weights

_SIGNAL_OF_KIND = np.array([SIGNALS.index(TOKEN_KINDS[k][2]) for k in KINDS], np.int64)


@numba.njit(cache=True, nogil=True)
def _distinct_per_row(indptr, values, n_values):
    """Distinct values in each CSR row (values in 0..n_values-1), with one mark array."""
    mark = np.full(n_values, -1, np.int64)
    out = np.zeros(indptr.size - 1, np.int64)
    for t in range(indptr.size - 1):
        c = 0
        for q in range(indptr[t], indptr[t + 1]):
            v = values[q]
            if mark[v] != t:
                mark[v] = t
                c += 1
        out[t] = c
    return out


def sorted_factorize(values) -> tuple[np.ndarray, np.ndarray]:
    """(int64 codes, sorted distinct values) of strings: pd.factorize(sort=True), with the sort of
    the distinct values done by Arrow (UTF-8 byte order is code-point order, as Python's)."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    uniques = np.asarray(uniques, dtype=object)
    try:
        order = pc.array_sort_indices(pa.array(uniques, type=pa.large_string())).to_numpy()
    except (pa.ArrowException, UnicodeEncodeError):  # e.g. lone surrogates
        order = np.argsort(uniques, kind="stable")
    rank = np.empty(order.size, np.int64)
    rank[order] = np.arange(order.size)
    return rank[codes] if codes.size else codes.astype(np.int64), uniques[order]


@dataclass
class TokenIncidence:
    """Merged incidence as arrays: token text (sorted, distinct) and per token its sorted keys
    with the key's tie (the strongest, if several signals emitted the same token for it)."""

    tokens: np.ndarray    # object (n_tokens,), sorted
    indptr: np.ndarray    # int64 (n_tokens + 1,)
    keys: np.ndarray      # int64 (nnz,), sorted within each token
    ties: np.ndarray      # float64 (nnz,)

    @classmethod
    def from_frames(cls, frames, n_keys: int) -> "TokenIncidence":
        """Merge incidence tables (columns key, token, weight); one entry per (token, key)."""
        parts = [f for f in frames if len(f)]
        if not parts:
            return cls(np.empty(0, dtype=object), np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0))
        key = np.concatenate([f["key"].to_numpy(np.int64) for f in parts])
        tie = np.concatenate([f["weight"].to_numpy(np.float64) for f in parts])
        text = np.concatenate([f["token"].to_numpy(dtype=object) for f in parts])
        if key.size and (key.min() < 0 or key.max() >= n_keys):
            raise ValueError(f"incidence key index outside 0..{n_keys - 1}")
        code, tokens = sorted_factorize(text)
        del text
        pair = code.astype(np.int64) * np.int64(max(n_keys, 1)) + key
        order = np.argsort(pair, kind="stable")
        pair = pair[order]
        start = np.flatnonzero(np.concatenate([[True], pair[1:] != pair[:-1]]))
        ties = np.maximum.reduceat(tie[order], start) if start.size else np.zeros(0)
        code = code[order][start].astype(np.int64)
        indptr = np.zeros(len(tokens) + 1, np.int64)
        np.cumsum(np.bincount(code, minlength=len(tokens)), out=indptr[1:])
        return cls(np.asarray(tokens, dtype=object), indptr, key[order][start], ties)

    @property
    def token_of(self) -> np.ndarray:
        """Token code of each entry."""
        return np.repeat(np.arange(self.tokens.size, dtype=np.int64), np.diff(self.indptr))

    def degrees(self, account: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per token: (distinct accounts, distinct keys)."""
        n_acc_total = int(account.max()) + 1 if account.size else 1
        n_accounts = _distinct_per_row(self.indptr, np.ascontiguousarray(account[self.keys], np.int64),
                                       n_acc_total)
        return n_accounts, np.diff(self.indptr).astype(np.int64)

    def by_account(self, representative: np.ndarray) -> "TokenIncidence":
        """The same tokens with each key replaced by its account's representative key (one entry
        per token and account, its strongest tie): projection then links accounts, and an account
        with 5,000 keys costs what one with 5 does."""
        keys = representative[self.keys]
        token = self.token_of
        pair = token * np.int64(max(int(representative.size), 1)) + keys
        order = np.lexsort((-self.ties, pair))
        pair = pair[order]
        start = np.flatnonzero(np.concatenate([[True], pair[1:] != pair[:-1]])) if pair.size else pair
        counts = np.bincount(token[order][start], minlength=self.tokens.size)
        indptr = np.zeros(self.tokens.size + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        return TokenIncidence(self.tokens, indptr, keys[order][start], self.ties[order][start])

    def subset(self, mask: np.ndarray) -> "TokenIncidence":
        """The tokens where `mask`, in the same order."""
        counts = np.diff(self.indptr)
        entry = np.repeat(mask, counts)
        indptr = np.zeros(int(mask.sum()) + 1, np.int64)
        np.cumsum(counts[mask], out=indptr[1:])
        return TokenIncidence(self.tokens[mask], indptr, self.keys[entry], self.ties[entry])


def build_graph(tables, config, incidences: dict[str, pd.DataFrame] | None = None):
    """Weighted key graph from the tables' signals.

    Parameters
    ----------
    tables : keyfarm.io.Tables
        Node i is the key in row i of tables.keys (sorted by key_id).
    config : keyfarm.config.Config
        weights, caps (see keyfarm.graph.weighting).
    incidences : dict of signal name → incidence DataFrame, optional
        Computed with keyfarm.signals.registry() when not given.

    Returns
    -------
    (KeyGraph, hubs, tokens)
        hubs: the hub tokens (token, signal, n_accounts, n_keys), most accounts first, for run.json.
        tokens: every token seen (token, n_accounts, n_keys, kind, signal, weight, is_hub,
        projected), sorted by token: the evidence table behind KeyGraph.evidence.
    """
    if incidences is None:
        from keyfarm.signals import registry
        incidences = {name: fn(tables, config) for name, fn in registry().items()}
    keys = tables.keys
    n_keys = len(keys)
    account = keys["account"].to_numpy(np.int64)
    n_accounts = int(account.max()) + 1 if n_keys else 0
    inc = TokenIncidence.from_frames(incidences.values(), n_keys)
    n_acc, n_k = inc.degrees(account)
    kind = kind_codes(inc.tokens)
    weight, is_hub, projected = token_weights(kind, n_acc, n_k, n_accounts, config)
    tokens = pd.DataFrame({"token": inc.tokens, "n_accounts": n_acc, "n_keys": n_k,
                           "kind": np.asarray(KINDS, dtype=object)[kind],
                           "signal": np.asarray(SIGNALS, dtype=object)[_SIGNAL_OF_KIND[kind]],
                           "weight": weight, "is_hub": is_hub, "projected": projected})
    sub = inc.subset(projected).by_account(representative_keys(account))
    src, dst, w, best = project(sub.indptr, sub.keys, sub.ties, weight[projected],
                                _SIGNAL_OF_KIND[kind[projected]], n_keys, len(SIGNALS))
    graph = graph_from_pairs(src, dst, w, best, sub.tokens, keys, config)
    return graph, hub_table(tokens), tokens


def representative_keys(account: np.ndarray) -> np.ndarray:
    """Per key, the smallest key index of its account: the node that carries the account's links
    (keys are sorted by key_id, so it is the account's first key id)."""
    account = np.asarray(account, np.int64)
    if not account.size:
        return account
    first = np.full(int(account.max()) + 1, account.size, np.int64)
    np.minimum.at(first, account, np.arange(account.size, dtype=np.int64))
    return first[account]


def _total(per_signal: dict[str, np.ndarray], n_edges: int) -> np.ndarray:
    """An edge's weight: the sum of its signals' (saturated) evidence, in SIGNALS order."""
    total = np.zeros(n_edges)
    for s in SIGNALS:
        total = total + per_signal[s]
    return total


def graph_from_pairs(src, dst, w: np.ndarray, evidence: np.ndarray, tokens, keys, config) -> KeyGraph:
    """KeyGraph from projected pairs (w: raw per-signal sums, one column per SIGNALS entry;
    evidence: strongest token index per signal), with saturation applied: both engines end here."""
    per_signal = saturate({s: np.ascontiguousarray(w[:, i], np.float64) for i, s in enumerate(SIGNALS)}, config)
    return KeyGraph(n_nodes=len(keys), src=np.asarray(src, np.int64), dst=np.asarray(dst, np.int64),
                    weight=_total(per_signal, len(src)), w=per_signal,
                    key_id=keys["key_id"].to_numpy(dtype=object),
                    account_id=keys["account_id"].to_numpy(dtype=object),
                    account=keys["account"].to_numpy(np.int64),
                    evidence={s: np.ascontiguousarray(evidence[:, i]) for i, s in enumerate(SIGNALS)},
                    tokens=tokens)


# ---------------------------------------------------------------- the same steps on tables

def merge_incidences(frames) -> pd.DataFrame:
    """(token, key, weight) with one row per token and key, its strongest tie, sorted by token, key."""
    frames = [f for f in frames if len(f)]
    n_keys = max((int(f["key"].max()) + 1 for f in frames), default=1)
    inc = TokenIncidence.from_frames(frames, n_keys)
    return pd.DataFrame({"token": inc.tokens[inc.token_of], "key": inc.keys, "weight": inc.ties})


def incidence_by_account(incidence: pd.DataFrame, account: np.ndarray) -> pd.DataFrame:
    """TokenIncidence.by_account on a (token, key, weight) table, sorted by token and key."""
    rep = representative_keys(account)
    frame = pd.DataFrame({"token": incidence["token"].to_numpy(dtype=object),
                          "key": rep[incidence["key"].to_numpy(np.int64)],
                          "weight": incidence["weight"].to_numpy(np.float64)})
    return frame.groupby(["token", "key"], sort=True, as_index=False)["weight"].max()


def token_degrees(incidence: pd.DataFrame, account: np.ndarray) -> pd.DataFrame:
    """Per token, sorted by token: distinct accounts and keys (a reduce a distributed engine runs
    separately). `incidence` has columns token and key; `account` maps key → account."""
    code, tokens = sorted_factorize(incidence["token"].to_numpy(dtype=object))
    order = np.argsort(code, kind="stable")
    key = incidence["key"].to_numpy(np.int64)[order]
    indptr = np.zeros(len(tokens) + 1, np.int64)
    np.cumsum(np.bincount(code, minlength=len(tokens)), out=indptr[1:])
    n_acc_total = int(account.max()) + 1 if account.size else 1
    n_keys_total = int(key.max()) + 1 if key.size else 1
    return pd.DataFrame({"token": tokens,
                         "n_accounts": _distinct_per_row(indptr, np.ascontiguousarray(account[key], np.int64), n_acc_total),
                         "n_keys": _distinct_per_row(indptr, key, n_keys_total)})


def hub_table(tokens: pd.DataFrame) -> pd.DataFrame:
    """Hub tokens (token, signal, n_accounts, n_keys), most accounts first, then by token."""
    return tokens.loc[tokens["is_hub"].to_numpy(bool), ["token", "signal", "n_accounts", "n_keys"]] \
        .sort_values(["n_accounts", "token"], ascending=[False, True], kind="stable").reset_index(drop=True)


def project_tokens(inc: pd.DataFrame, projected: pd.DataFrame, n_keys: int):
    """Project the incidence rows of the `projected` tokens (rows of weigh_tokens' table, in that
    order) onto key pairs: `project`'s (src, dst, per-signal weights, strongest token per signal as
    a row of `projected`). `inc` has columns token, key, weight, one row per (token, key)."""
    token_id = pd.Index(projected["token"])
    t = token_id.get_indexer(inc["token"])
    keep = t >= 0
    t = t[keep].astype(np.int64)
    key = inc["key"].to_numpy(np.int64)[keep]
    tie = inc["weight"].to_numpy(np.float64)[keep]
    order = np.lexsort((key, t))
    indptr = np.zeros(len(projected) + 1, np.int64)
    np.cumsum(np.bincount(t, minlength=len(projected)), out=indptr[1:])
    signal = pd.Index(SIGNALS).get_indexer(projected["signal"]).astype(np.int64)
    return project(indptr, key[order], tie[order], projected["weight"].to_numpy(np.float64), signal,
                   n_keys, len(SIGNALS))
