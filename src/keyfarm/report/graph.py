"""What a cluster page draws: one node per account, the account pairs with every signal they carry,
a precomputed layout, and how the cluster was reduced.

Stage: report. Accounts are the nodes (limits apply per account; a key's links are its account's),
sized by the tokens they drew; each linked pair carries one weight per signal, and the page draws
one line per signal so hiding a signal keeps the pair's others. Above `max_nodes` accounts the
accounts with the most link weight are drawn; above `max_edges` pairs a maximum spanning forest
plus the strongest remaining pairs. Positions come from a deterministic Fruchterman–Reingold
layout (report.layout), so the browser runs no physics. Shared strings (evidence tokens, prompts) are stored
once per page and referenced by index, so a pair costs a few numbers, not two prompts.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
import pandas as pd

from keyfarm.community.components import find_root   # the one union-find kernel

from keyfarm.report.escape import column_array, column_values, records
from keyfarm.report.layout import layout
from keyfarm.report.outputs import SIGNALS, sort_rows

SIGNAL_COLOURS = {"account": "#8c8c8c", "payment": "#d62728", "ip": "#1f77b4", "device": "#ff7f0e",
                  "prompt": "#9467bd", "timing": "#2ca02c"}
LINK_SIGNALS = tuple(s for s in SIGNALS if s != "account")
PROMPT_CHARS = 240
MAX_PROMPTS = 120     # distinct example prompts per page, from the strongest pairs down
NODE_SIZE_FULL = 60   # up to this many drawn accounts the dots have their full size (8-30 px)
KEYS_LISTED = 50      # keys of an account listed in its node's details (all are in the keys table)
GRAPH_OPTIONS = {"physics": {"enabled": False}, "edges": {"smooth": False},
                 "interaction": {"hover": True, "tooltipDelay": 120, "hideEdgesOnDrag": False},
                 "nodes": {"shape": "dot", "font": {"size": 11}}}


@dataclass
class ClusterDrawing:
    """Everything the cluster page's graph needs, as plain JSON-ready lists."""

    nodes: list[dict]                # one per drawn account: id, x, y, size, label, info
    pairs: dict                      # the drawn account pairs as columns (pair_columns_drawn)
    strings: list[str]               # evidence tokens, referenced by index from pairs' `ev`
    prompts: list[str]               # example prompts, referenced by index from pairs' `p`
    n_nodes_total: int               # accounts in the cluster
    n_edges_total: int               # linked account pairs in the cluster
    notes: list[str] = field(default_factory=list)
    options: dict = field(default_factory=lambda: dict(GRAPH_OPTIONS))

    @property
    def n_pairs(self) -> int:
        return len(self.pairs["a"])


def strongest_signal(edges: pd.DataFrame) -> np.ndarray:
    """Per edge, the signal with the largest w_<signal> (ties: the order of SIGNALS)."""
    if len(edges) == 0:
        return np.array([], dtype=object)
    stacked = edges[[f"w_{s}" for s in SIGNALS]].to_numpy(float)
    return np.array(SIGNALS, dtype=object)[np.nan_to_num(stacked).argmax(axis=1)]


def _max_spanning_forest_first(a: np.ndarray, b: np.ndarray, weight: np.ndarray, n: int) -> np.ndarray:
    """Edge order: a maximum spanning forest (Kruskal) first, then the rest, both by weight desc."""
    order = np.lexsort((b, a, -weight))
    in_forest = _forest_of(np.asarray(a, np.int64), np.asarray(b, np.int64), order, np.int64(n))
    return np.concatenate([order[in_forest], order[~in_forest]]).astype(np.int64)


@numba.njit(cache=True, nogil=True)
def _forest_of(a, b, order, n):
    """Kruskal over edges in `order`: True where the edge joins two trees (the forest's edges)."""
    parent = np.arange(n)
    in_forest = np.zeros(order.size, np.bool_)
    for i in range(order.size):
        e = order[i]
        ra, rb = find_root(parent, a[e]), find_root(parent, b[e])
        if ra != rb:
            parent[ra] = rb
            in_forest[i] = True
    return in_forest


def account_nodes(members: pd.DataFrame) -> pd.DataFrame:
    """One row per account of `members`: keys, tokens, requests, peak day, limit, created, org
    (sorted by account_id; one call for a whole report is far cheaper than one per cluster)."""
    tokens = pd.to_numeric(members["total_tokens"], errors="coerce")
    frame = members.assign(_tokens=tokens, _req=pd.to_numeric(members["n_requests"], errors="coerce"),
                           _peak=pd.to_numeric(members["peak_daily_tokens"], errors="coerce"),
                           _limit=pd.to_numeric(members["daily_token_limit"], errors="coerce"),
                           _usage=pd.to_numeric(members["usage"], errors="coerce"))
    extra = {"cluster_id": ("cluster_id", "first")} if "cluster_id" in frame else {}
    return frame.groupby("account_id", sort=True).agg(
        **extra, n_keys=("key_id", "size"), total_tokens=("_tokens", "sum"), n_requests=("_req", "sum"),
        peak_daily_tokens=("_peak", "sum"), daily_token_limit=("_limit", "sum"), usage=("_usage", "mean"),
        org_id=("org_id", "first"), email_domain=("email_domain", "first"),
        created_at=("created_at", "min")).reset_index()


def account_pairs(members: pd.DataFrame, edges: pd.DataFrame) -> pd.DataFrame:
    """Key links contracted to account pairs (acc_a < acc_b, sorted by the pair): per signal the
    strongest weight and its token, the strongest key pair with its weight, prompt examples and
    cluster_id, and how many key pairs link the two accounts. Ties go to the smaller (key_a,
    key_b), so the result does not depend on the order of the rows."""
    columns = ["acc_a", "acc_b", "key_a", "key_b", "weight", "cluster_id", "n_key_pairs",
               "prompt_example_a", "prompt_example_b"] + [f"w_{s}" for s in SIGNALS] \
        + [f"evidence_{s}" for s in LINK_SIGNALS]
    codes, accounts = pd.factorize(members["account_id"].to_numpy(dtype=object), sort=True)
    code_of = pd.Series(codes, index=members["key_id"].to_numpy())
    x = code_of.reindex(edges["key_a"]).to_numpy(np.float64)
    y = code_of.reindex(edges["key_b"]).to_numpy(np.float64)
    ok = ~(np.isnan(x) | np.isnan(y))
    ok[ok] = x[ok] != y[ok]
    edges = sort_rows(edges[ok], ["key_a", "key_b"])   # position = the tie-break
    x = code_of.reindex(edges["key_a"]).to_numpy(np.int64)
    y = code_of.reindex(edges["key_b"]).to_numpy(np.int64)
    if not len(edges):
        return pd.DataFrame({c: pd.Series(dtype=np.int64 if c in ("cluster_id", "n_key_pairs") else object)
                             for c in columns})
    lo, hi = np.minimum(x, y), np.maximum(x, y)
    pair = lo * np.int64(len(accounts)) + hi
    pos = np.arange(len(edges))

    def strongest(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.lexsort((pos, -weight, pair))
        starts = np.flatnonzero(np.r_[True, np.diff(pair[order]) != 0])
        return order[starts], starts

    first, starts = strongest(edges["weight"].to_numpy(np.float64))
    n_key_pairs = np.diff(np.r_[starts, len(edges)])
    out = pd.DataFrame({"acc_a": np.asarray(accounts, dtype=object)[lo[first]],
                        "acc_b": np.asarray(accounts, dtype=object)[hi[first]]})
    for c in ("key_a", "key_b", "weight", "cluster_id", "prompt_example_a", "prompt_example_b"):
        out[c] = edges[c].to_numpy()[first] if c in edges else -1
    out["n_key_pairs"] = n_key_pairs.astype(np.int64)
    for s in SIGNALS:
        w = edges[f"w_{s}"].to_numpy(np.float64)
        best, _ = strongest(w)
        out[f"w_{s}"] = w[best]
        if s in LINK_SIGNALS:
            column = f"evidence_{s}"
            out[column] = edges[column].to_numpy(dtype=object)[best] if column in edges else None
    return out[columns]


def keys_by_account(members: pd.DataFrame) -> dict[str, list[str]]:
    """account_id → its first KEYS_LISTED key ids (in key order), for the nodes' details."""
    members = sort_rows(members, ["key_id"])
    keys = members["key_id"].to_numpy(dtype=object)
    codes, accounts = pd.factorize(members["account_id"].to_numpy(dtype=object))
    order = np.argsort(codes, kind="stable")   # each account's keys together, in key order
    ends = np.cumsum(np.bincount(codes, minlength=len(accounts)))
    listed = keys[order].tolist()
    return {acc: listed[end - n:end - n + min(n, KEYS_LISTED)]
            for acc, end, n in zip(accounts.tolist(), ends.tolist(), np.diff(np.r_[0, ends]).tolist())}


def rows_by_cluster(frame: pd.DataFrame, ids) -> dict[int, list[dict]]:
    """cluster_id → `records` of its rows (cluster_id dropped), for the clusters `ids`: one pass
    over a whole report's table instead of a DataFrame per cluster."""
    frame = frame[frame["cluster_id"].isin(ids)]
    cids = frame["cluster_id"].to_numpy(np.int64).tolist()
    out: dict[int, list[dict]] = {}
    for cid, row in zip(cids, records(frame.drop(columns=["cluster_id"]))):
        out.setdefault(cid, []).append(row)
    return out


class ColumnsByCluster:
    """A table's columns as NumPy arrays (escape.column_array), sliced per cluster.

    The account pairs of a report are ~10⁴–10⁵ rows of ~20 columns, most of them in a few large
    clusters whose pages draw at most `max_edges` pairs each (on a 50k world, 2 in 3 pairs are
    not drawn): a page turns only the rows it draws into plain values (cluster_drawing).
    """

    def __init__(self, frame: pd.DataFrame, ids):
        frame = frame[frame["cluster_id"].isin(ids)]
        cids = frame["cluster_id"].to_numpy(np.int64)
        order = np.argsort(cids, kind="stable")
        self.columns = {c: column_array(frame[c])[order] for c in frame.columns if c != "cluster_id"}
        cids = cids[order]
        self.ids, starts = np.unique(cids, return_index=True)
        self.bounds = np.r_[starts, cids.size].tolist()

    def get(self, cluster_id: int) -> dict[str, np.ndarray]:
        """The cluster's rows as {column: array} (empty arrays for a cluster without rows)."""
        i = int(np.searchsorted(self.ids, cluster_id))
        if i == self.ids.size or self.ids[i] != cluster_id:
            return {c: v[:0] for c, v in self.columns.items()}
        lo, hi = self.bounds[i], self.bounds[i + 1]
        return {c: v[lo:hi] for c, v in self.columns.items()}


def pair_columns(members: pd.DataFrame, edges: pd.DataFrame) -> dict[str, np.ndarray]:
    """`account_pairs` of one cluster as {column: array}, the form cluster_drawing takes."""
    frame = account_pairs(members, edges).drop(columns=["cluster_id"], errors="ignore")
    return {c: column_array(frame[c]) for c in frame.columns}


def cluster_drawing(members: pd.DataFrame, edges: pd.DataFrame, *, max_nodes: int = 500,
                    max_edges: int | None = None, nodes: list[dict] | None = None,
                    pairs: dict[str, np.ndarray] | None = None, keys_of: dict | None = None) -> ClusterDrawing:
    """Account nodes, account pairs and layout of one cluster's members and intra-cluster edges.

    Beyond `max_nodes` accounts, the accounts with the most link weight are drawn. `max_edges`
    (default 3 × max_nodes) caps the pairs drawn, keeping a maximum spanning forest so nothing
    drawn floats. `nodes` (records of `account_nodes`), `pairs` (the cluster's `account_pairs`
    as arrays: `pair_columns`, ColumnsByCluster.get; only the drawn rows become plain values)
    and `keys_of` (`keys_by_account`): the cluster's share when the caller computed them for
    many clusters at once.
    """
    max_edges = 3 * max_nodes if max_edges is None else max_edges
    nodes = records(account_nodes(members).drop(columns=["cluster_id"], errors="ignore")) if nodes is None else nodes
    links = pair_columns(members, edges) if pairs is None else pairs
    keys_of = keys_by_account(members) if keys_of is None else keys_of
    notes: list[str] = []
    n_nodes_total, n_edges_total = len(nodes), len(links["acc_a"])
    index = {n["account_id"]: i for i, n in enumerate(nodes)}
    a = np.array([index[x] for x in links["acc_a"].tolist()], np.int64)
    b = np.array([index[x] for x in links["acc_b"].tolist()], np.int64)
    w = np.asarray(links["weight"], np.float64)
    chosen = np.arange(a.size)   # the rows of `links` drawn

    if len(nodes) > max_nodes:
        strength = np.bincount(a, w, len(nodes)) + np.bincount(b, w, len(nodes))
        keep_nodes = np.sort(np.lexsort((np.arange(len(nodes)), -strength))[:max_nodes])
        notes.append(f"{len(nodes):,} accounts exceed the {max_nodes:,}-node limit: the {max_nodes:,} accounts "
                     "with the most link weight are drawn.")
        remap = np.full(len(nodes), -1, np.int64)
        remap[keep_nodes] = np.arange(keep_nodes.size)
        nodes = [nodes[i] for i in keep_nodes.tolist()]
        ok = (remap[a] >= 0) & (remap[b] >= 0)
        chosen = chosen[ok]
        a, b, w = remap[a[ok]], remap[b[ok]], w[ok]

    # the forest decides which pairs are drawn only when some must be left out
    order = _max_spanning_forest_first(a, b, w, len(nodes)) if a.size > max_edges else np.arange(a.size)
    if order.size > max_edges:
        notes.append(f"{order.size:,} linked account pairs exceed the {max_edges:,}-link limit: a maximum "
                     f"spanning forest and the strongest other pairs are drawn ({max_edges:,} pairs).")
        order = order[:max_edges]
    order = np.sort(order)
    chosen, a, b, w = chosen[order], a[order], b[order], w[order]
    pos = layout(len(nodes), a, b, w).tolist()
    drawn_all = chosen.size == n_edges_total

    def column(name):   # the drawn rows of a column, as plain values
        values = links.get(name)
        return None if values is None else column_values(values if drawn_all else values[chosen])

    tokens = np.array([n["total_tokens"] or 0 for n in nodes], np.float64)
    top = tokens.max() if tokens.size and tokens.max() > 0 else 1.0
    shrink = min(1.0, float(np.sqrt(NODE_SIZE_FULL / max(len(nodes), 1))))   # many accounts: smaller dots
    sizes = np.round((8 + 22 * np.sqrt(tokens / top)) * shrink, 2).tolist()
    show_labels = len(nodes) <= 60
    out_nodes = []
    for i, row in enumerate(nodes):
        info = dict(row, keys=keys_of.get(row["account_id"], []))
        name = str(row["account_id"])
        out_nodes.append({"id": i, "x": pos[i][0], "y": pos[i][1], "size": sizes[i],
                          "label": name[:18] if show_labels else " ", "info": info})

    pairs, strings, prompts = pair_columns_drawn(a, b, w, column)
    options = dict(GRAPH_OPTIONS)
    options["interaction"] = dict(GRAPH_OPTIONS["interaction"], hideEdgesOnDrag=len(out_nodes) > 400)
    return ClusterDrawing(nodes=out_nodes, pairs=pairs, strings=strings, prompts=prompts,
                          n_nodes_total=n_nodes_total, n_edges_total=n_edges_total, notes=notes, options=options)


def pair_rows(pairs: dict, rows=None) -> list[dict]:
    """Pairs of `pairs` (columns, see pair_columns_drawn) as one dict each, in the shape the page's
    script unpacks them to: a, b, weight, n, k [key refs], w {signal: weight > 0}, ev {signal:
    ref}, and p [prompt refs, None for none] when the pair has an example. `rows`: which (all)."""
    rows = range(len(pairs["a"])) if rows is None else rows
    out = []
    for j in rows:
        pair = {"a": pairs["a"][j], "b": pairs["b"][j], "weight": pairs["weight"][j], "n": pairs["n"][j],
                "k": [pairs["ka"][j], pairs["kb"][j]],
                "w": {s: v[j] for s, v in pairs["w"].items() if v[j] > 0},
                "ev": {s: v[j] for s, v in pairs["ev"].items() if v[j] >= 0}}
        if pairs["pa"][j] >= 0 or pairs["pb"][j] >= 0:
            pair["p"] = [None if pairs[e][j] < 0 else pairs[e][j] for e in ("pa", "pb")]
        out.append(pair)
    return out


def _shortened(values: list | None, n: int) -> list:
    """Example prompts cut to PROMPT_CHARS (None where there is none: a missing column, a null)."""
    if values is None:
        return [None] * n
    return [v if not isinstance(v, str) or len(v) <= PROMPT_CHARS else v[:PROMPT_CHARS] + "…" for v in values]


def _refs(values: list) -> tuple[list[int], list[str]]:
    """Codes of `values` into the table of their distinct non-empty strings, numbered in order of
    first appearance (−1: none: a null, an empty or a non-string value). A dict, not
    pd.factorize: most pages have a handful of values, where pandas' overhead is the cost."""
    table: dict[str, int] = {}
    codes = [table.setdefault(v, len(table)) if v.__class__ is str and v else -1 for v in values]
    return codes, list(table)


def pair_columns_drawn(a: np.ndarray, b: np.ndarray, w: np.ndarray, column) -> tuple[dict, list[str], list[str]]:
    """The drawn pairs as the page's columns, its strings table and its prompts table.

    `a`, `b`, `w`: per drawn pair its nodes and weight; `column(name)`: that column of the drawn
    pairs as a list (None: absent). Columns: a, b, weight, n (key pairs), ka and kb (the strongest
    key pair, as string refs), w {signal: weight per pair, 0 where the signal is absent}, ev
    {signal: string ref of its strongest token, −1 for none}, for the signals some pair carries,
    and pa, pb (prompt refs of the pair's two example prompts, −1 for none). Strings (evidence
    tokens, then keys) are numbered in order of first appearance; prompts from the strongest pair
    down, the first MAX_PROMPTS distinct ones only. A pair costs a few numbers, not two prompts.
    """
    n = int(a.size)
    weights = {}
    for s in LINK_SIGNALS:
        values = column(f"w_{s}")
        if values is None:
            continue
        values = np.array(values, np.float64)   # None (a missing weight) becomes NaN: not drawn
        present = values > 0
        if present.any():   # present stays > 0 when rounded
            weights[s] = np.where(present, np.maximum(np.round(values, 3), 0.001), 0.0).tolist()
    evidence = [(s, values) for s in LINK_SIGNALS
                if (values := column(f"evidence_{s}")) is not None and values.count(None) != len(values)]
    keys = [k if k.__class__ is str or k is None else str(k) for k in column("key_a") + column("key_b")]
    codes, strings = _refs([v for _, values in evidence for v in values] + keys)
    parts = [codes[i * n:(i + 1) * n] for i in range(len(evidence) + 2)]

    short_a, short_b = _shortened(column("prompt_example_a"), n), _shortened(column("prompt_example_b"), n)
    pa = pb = [-1] * n
    prompts: list[str] = []
    if short_a.count(None) != n or short_b.count(None) != n:
        strongest = np.lexsort((b, a, -w)).tolist()   # prompts are numbered from the strongest pair down
        both = [None] * (2 * n)
        both[0::2] = [short_a[j] for j in strongest]
        both[1::2] = [short_b[j] for j in strongest]
        ranked, prompts = _refs(both)
        ranked = [r if r < MAX_PROMPTS else -1 for r in ranked]
        prompts = prompts[:MAX_PROMPTS]
        pa, pb = [-1] * n, [-1] * n
        for i, j in enumerate(strongest):
            pa[j], pb[j] = ranked[2 * i], ranked[2 * i + 1]
    pairs = {"a": a.tolist(), "b": b.tolist(),
             "weight": np.round(np.array(column("weight"), np.float64), 4).tolist(),
             "n": [int(x) for x in column("n_key_pairs")],
             "ka": parts[-2], "kb": parts[-1],
             "w": weights,
             "ev": {s: parts[i] for i, (s, _) in enumerate(evidence)},
             "pa": pa, "pb": pb}
    return pairs, strings, prompts
