"""What a cluster page draws: nodes, edges, a precomputed layout, and how the cluster was reduced.

Stage: report. Keys are nodes (coloured by account, sized by tokens) and edges are coloured by
their strongest signal. A cluster above `max_nodes` keys is drawn at account level; above
`max_edges` links only a maximum spanning forest plus the strongest remaining links are kept.
Positions come from a seeded Fruchterman–Reingold layout (igraph), so the browser runs no physics
and a page of 1,500 nodes is usable at once.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import igraph
import numpy as np
import pandas as pd
from pyvis.edge import Edge
from pyvis.network import Network

from keyfarm.report.escape import plain
from keyfarm.report.outputs import SIGNALS

SIGNAL_COLOURS = {"account": "#8c8c8c", "payment": "#d62728", "ip": "#1f77b4", "device": "#ff7f0e",
                  "prompt": "#9467bd", "timing": "#2ca02c"}
ACCOUNT_PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
                   "#ff9da7", "#9c755f", "#bab0ac", "#86bcb6", "#d4a6c8", "#8cd17d", "#f1ce63",
                   "#a0cbe8", "#ffbe7d", "#499894", "#d37295", "#79706e", "#b6992d")
PROMPT_CHARS = 300
PAYMENT_PREFIX = 12


@dataclass
class ClusterDrawing:
    """Everything the cluster page's graph needs; `network` is the pyvis Network holding it."""

    level: str                       # "key" or "account"
    network: Network
    n_nodes_total: int               # keys (or accounts) in the cluster
    n_edges_total: int               # links in the cluster (at the drawn level)
    notes: list[str] = field(default_factory=list)
    accounts: list[tuple[str, str]] = field(default_factory=list)   # (account_id, colour) for the legend

    @property
    def nodes(self) -> list[dict]:
        return self.network.nodes

    @property
    def edges(self) -> list[dict]:
        return self.network.edges


def strongest_signal(edges: pd.DataFrame) -> np.ndarray:
    """Per edge, the signal with the largest w_<signal> (ties: the order of SIGNALS)."""
    if len(edges) == 0:
        return np.array([], dtype=object)
    stacked = edges[[f"w_{s}" for s in SIGNALS]].to_numpy(float)
    return np.array(SIGNALS, dtype=object)[np.nan_to_num(stacked).argmax(axis=1)]


def _evidence(row: dict) -> dict:
    """The shared tokens behind one link, shortened for display (payment: a prefix only)."""
    ev = {}
    pay = row.get("evidence_payment")
    if isinstance(pay, str) and pay:
        ev["payment"] = pay if len(pay) <= PAYMENT_PREFIX else pay[:PAYMENT_PREFIX] + "…"
    for signal in ("ip", "device", "prompt", "timing"):
        token = row.get(f"evidence_{signal}")
        if isinstance(token, str) and token:
            ev[signal] = token
    examples = [row.get("prompt_example_a"), row.get("prompt_example_b")]
    examples = [p if len(p) <= PROMPT_CHARS else p[:PROMPT_CHARS] + "…" for p in examples if isinstance(p, str)]
    if examples:
        ev["prompts"] = examples
    return ev


def _max_spanning_forest_first(a: np.ndarray, b: np.ndarray, weight: np.ndarray, n: int) -> np.ndarray:
    """Edge order: a maximum spanning forest (Kruskal) first, then the rest, both by weight desc."""
    order = np.lexsort((b, a, -weight))
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    tree, rest = [], []
    for e in order.tolist():
        ra, rb = find(int(a[e])), find(int(b[e]))
        if ra != rb:
            parent[ra] = rb
            tree.append(e)
        else:
            rest.append(e)
    return np.array(tree + rest, dtype=np.int64)


def layout(n: int, a: np.ndarray, b: np.ndarray, weight: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Deterministic 2-D positions (pixels) for n nodes: Fruchterman–Reingold from a circle.

    igraph's layout draws random numbers; a seeded generator is installed for the call and the
    default (Python's `random` module) restored, so the same cluster always gets the same picture.
    """
    if n == 0:
        return np.zeros((0, 2))
    if n == 1:
        return np.zeros((1, 2))
    angle = 2 * np.pi * np.arange(n) / n
    start = np.column_stack([np.cos(angle), np.sin(angle)]) * np.sqrt(n)
    graph = igraph.Graph(n=n, edges=np.column_stack([a, b]).tolist())
    igraph.set_random_number_generator(random.Random(seed))
    try:
        coords = np.array(graph.layout_fruchterman_reingold(
            weights=(weight / weight.max()).tolist() if len(weight) else None,
            seed=start.tolist(), niter=500).coords, dtype=float)
    finally:
        igraph.set_random_number_generator(random)
    coords -= coords.mean(axis=0)
    span = np.abs(coords).max() or 1.0
    return np.round(coords / span * (60.0 * np.sqrt(n) + 100.0), 1)


def _account_level(members: pd.DataFrame, edges: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Contract keys to accounts: one node per account, the strongest key pair per account pair."""
    nodes = members.groupby("account_id", sort=True).agg(
        n_keys=("key_id", "size"), total_tokens=("total_tokens", lambda s: pd.to_numeric(s).sum()),
        org_id=("org_id", "first"), email_domain=("email_domain", "first"),
        created_at=("created_at", "min"), example_key=("key_id", "first")).reset_index()
    account_of = pd.Series(members["account_id"].to_numpy(), index=members["key_id"].to_numpy())
    pairs = edges.assign(acc_a=account_of.reindex(edges["key_a"]).to_numpy(),
                         acc_b=account_of.reindex(edges["key_b"]).to_numpy())
    pairs = pairs[pairs["acc_a"] != pairs["acc_b"]]
    x, y = pairs["acc_a"].to_numpy(str), pairs["acc_b"].to_numpy(str)
    lo, hi = np.where(x < y, x, y), np.where(x < y, y, x)
    pairs = pairs.assign(acc_a=lo, acc_b=hi)
    if len(pairs):
        pairs = pairs.sort_values(["weight", "key_a", "key_b"], ascending=[False, True, True], kind="stable")
        n_pairs = pairs.groupby(["acc_a", "acc_b"]).size().rename("n_key_pairs")
        pairs = pairs.drop_duplicates(["acc_a", "acc_b"]).merge(n_pairs, on=["acc_a", "acc_b"])
    else:
        pairs = pairs.assign(n_key_pairs=pd.Series(dtype=np.int64))
    return nodes, pairs.reset_index(drop=True)


def cluster_drawing(members: pd.DataFrame, edges: pd.DataFrame, *, max_nodes: int = 500,
                    max_edges: int | None = None, seed: int = 0) -> ClusterDrawing:
    """Nodes, edges and layout for one cluster's members and intra-cluster edges.

    `max_nodes` keys or fewer: one node per key. More: one node per account (and, beyond
    `max_nodes` accounts, the accounts with the most link weight). `max_edges` (default
    3 × max_nodes) caps the links drawn, keeping a maximum spanning forest so nothing drawn floats.
    """
    max_edges = 3 * max_nodes if max_edges is None else max_edges
    members = members.sort_values("key_id", kind="stable").reset_index(drop=True)
    notes: list[str] = []
    if len(members) <= max_nodes:
        level = "key"
        nodes = members
        ids = nodes["key_id"].to_numpy(str)
        links = edges.rename(columns={"key_a": "end_a", "key_b": "end_b"})
    else:
        level = "account"
        nodes, links = _account_level(members, edges)
        notes.append(f"{len(members):,} keys exceed the {max_nodes:,}-node limit: drawn at account level "
                     f"({len(nodes):,} accounts; each link is the strongest key pair between two accounts).")
        ids = nodes["account_id"].to_numpy(str)
        links = links.rename(columns={"acc_a": "end_a", "acc_b": "end_b"})
    n_nodes_total = len(nodes)
    n_edges_total = len(links)
    index = pd.Series(np.arange(len(ids)), index=ids)
    a = index.reindex(links["end_a"]).to_numpy()
    b = index.reindex(links["end_b"]).to_numpy()
    links = links[~(pd.isna(a) | pd.isna(b))]
    a = index.reindex(links["end_a"]).to_numpy(np.int64)
    b = index.reindex(links["end_b"]).to_numpy(np.int64)
    w = links["weight"].to_numpy(float)

    if level == "account" and len(nodes) > max_nodes:
        strength = np.bincount(a, w, len(nodes)) + np.bincount(b, w, len(nodes))
        keep_nodes = np.sort(np.lexsort((np.arange(len(nodes)), -strength))[:max_nodes])
        notes.append(f"{len(nodes):,} accounts exceed the {max_nodes:,}-node limit: the {max_nodes:,} accounts "
                     "with the most link weight are drawn.")
        remap = np.full(len(nodes), -1, np.int64)
        remap[keep_nodes] = np.arange(keep_nodes.size)
        nodes = nodes.iloc[keep_nodes].reset_index(drop=True)
        ok = (remap[a] >= 0) & (remap[b] >= 0)
        links, a, b, w = links[ok], remap[a[ok]], remap[b[ok]], w[ok]

    order = _max_spanning_forest_first(a, b, w, len(nodes))
    if order.size > max_edges:
        notes.append(f"{order.size:,} links exceed the {max_edges:,}-link limit: a maximum spanning forest and "
                     f"the strongest other links are drawn ({max_edges:,} links).")
        order = order[:max_edges]
    order = np.sort(order)
    links, a, b, w = links.iloc[order].reset_index(drop=True), a[order], b[order], w[order]

    pos = layout(len(nodes), a, b, w, seed=seed)
    network = Network(height="100%", width="100%", cdn_resources="in_line")
    network.set_options('{"physics": {"enabled": false}, "edges": {"smooth": false}, '
                        '"interaction": {"hover": true, "tooltipDelay": 120, "hideEdgesOnDrag": %s}, '
                        '"nodes": {"shape": "dot", "font": {"size": 11}}}'
                        % ("true" if len(nodes) > 400 else "false"))

    account_ids = sorted(set(nodes["account_id"].astype(str)))
    colour = {acc: ACCOUNT_PALETTE[i % len(ACCOUNT_PALETTE)] for i, acc in enumerate(account_ids)}
    tokens = pd.to_numeric(nodes["total_tokens"], errors="coerce").fillna(0).to_numpy(float)
    top = tokens.max() if tokens.size and tokens.max() > 0 else 1.0
    show_labels = len(nodes) <= 60
    for i, row in enumerate(nodes.to_dict("records")):
        info = {k: plain(v) for k, v in row.items()}
        name = str(row["key_id"] if level == "key" else row["account_id"])
        network.add_node(i, label=(name[:18] if show_labels else " "), color=colour[str(row["account_id"])],
                         size=round(8 + 22 * float(np.sqrt(tokens[i] / top)), 2),
                         x=float(pos[i, 0]), y=float(pos[i, 1]), physics=False, info=info)

    signal = strongest_signal(links)
    top_w = w.max() if w.size else 1.0
    for j, row in enumerate(links.to_dict("records")):
        weights = {s: round(float(row[f"w_{s}"]), 4) for s in SIGNALS if row[f"w_{s}"] > 0}
        info = {"a": str(row["end_a"]), "b": str(row["end_b"]), "weight": round(float(row["weight"]), 4),
                "signal": signal[j], "weights": weights, "evidence": _evidence(row)}
        if level == "account":
            info.update(key_a=str(row["key_a"]), key_b=str(row["key_b"]), n_key_pairs=int(row["n_key_pairs"]))
        # pyvis's add_edge scans every edge for duplicates (quadratic); the pairs here are unique
        network.edges.append(Edge(int(a[j]), int(b[j]), False, color=SIGNAL_COLOURS[signal[j]],
                                  width=round(1 + 5 * float(w[j] / top_w), 2), info=info).options)
    legend = [(acc, colour[acc]) for acc in account_ids]
    return ClusterDrawing(level=level, network=network, n_nodes_total=n_nodes_total,
                          n_edges_total=n_edges_total, notes=notes, accounts=legend)
