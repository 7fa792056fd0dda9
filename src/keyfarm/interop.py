"""The account graph of a linkage run for networkx and igraph (LinkResult.to_networkx/to_igraph).

Stage: outputs. One node per account (the unit limits apply to and the graph keyfarm clusters),
carrying its cluster, the cluster's verdict and score, its keys and tokens; one edge per linked
pair of accounts, carrying the strongest key pair's weight and, per signal, the strongest weight
between the two accounts (edges.parquet lists key pairs; keys of one account are one node).
Built from the SCHEMA.md tables only, so an OUT_DIR read back gives the same graph.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

NODE_COLUMNS = ("cluster_id", "verdict", "score", "n_keys", "total_tokens")


def account_table(members: pd.DataFrame, clusters: pd.DataFrame) -> pd.DataFrame:
    """One row per account, sorted by account_id: cluster_id, verdict and score of its cluster
    (`alone`/None for an account in no cluster of 2+ accounts), n_keys, total_tokens."""
    tokens = pd.to_numeric(members["total_tokens"], errors="coerce").fillna(0) if "total_tokens" in members \
        else pd.Series(0, index=members.index)
    per = members.assign(_tokens=tokens).groupby(members["account_id"].astype(str), sort=True).agg(
        cluster_id=("cluster_id", "first"), n_keys=("key_id", "size"), total_tokens=("_tokens", "sum"))
    judged = clusters.set_index(clusters["cluster_id"].astype(np.int64))
    ids = per["cluster_id"].astype(np.int64).to_numpy()
    verdict = judged["verdict"].reindex(ids).to_numpy(dtype=object) if "verdict" in judged else \
        np.full(len(ids), None, object)
    per["verdict"] = np.where(pd.isna(verdict), "alone", verdict).astype(object)
    score = pd.to_numeric(judged["score"], errors="coerce").reindex(ids).to_numpy(np.float64) \
        if "score" in judged else np.full(len(ids), np.nan)
    per["score"] = score   # NaN for an account alone: None on the graphs (_plain)
    per["cluster_id"] = ids
    per["total_tokens"] = per["total_tokens"].astype(np.int64)
    per.index.name = "account_id"
    return per[list(NODE_COLUMNS)]


def account_links(members: pd.DataFrame, edges: pd.DataFrame) -> pd.DataFrame:
    """Key links contracted to account pairs (account_a < account_b, sorted): weight (the
    strongest key pair's), w_<signal> (the strongest per signal), n_key_pairs."""
    signals = [c for c in edges.columns if c.startswith("w_")]
    account_of = pd.Series(members["account_id"].astype(str).to_numpy(), index=members["key_id"].astype(str).to_numpy())
    a = account_of.reindex(edges["key_a"].astype(str)).to_numpy(dtype=object)
    b = account_of.reindex(edges["key_b"].astype(str)).to_numpy(dtype=object)
    ok = ~(pd.isna(a) | pd.isna(b))
    ok[ok] = a[ok] != b[ok]
    a, b = a[ok], b[ok]
    first = a < b
    frame = edges.loc[ok, ["weight", *signals]].astype(np.float64).assign(
        account_a=np.where(first, a, b), account_b=np.where(first, b, a))
    agg = {"weight": ("weight", "max"), **{s: (s, "max") for s in signals}, "n_key_pairs": ("weight", "size")}
    return frame.groupby(["account_a", "account_b"], sort=True).agg(**agg).reset_index()


def to_networkx(members: pd.DataFrame, clusters: pd.DataFrame, edges: pd.DataFrame):
    """networkx.Graph of accounts (node = account_id) with NODE_COLUMNS as node attributes and
    weight, w_<signal>, n_key_pairs as edge attributes."""
    import networkx as nx

    nodes = account_table(members, clusters)
    links = account_links(members, edges)
    g = nx.Graph()
    g.add_nodes_from((acc, _attrs(row)) for acc, row in zip(nodes.index, nodes.to_dict("records")))
    values = links.drop(columns=["account_a", "account_b"])
    g.add_edges_from((x, y, _attrs(row)) for x, y, row in
                     zip(links["account_a"], links["account_b"], values.to_dict("records")))
    return g


def to_igraph(members: pd.DataFrame, clusters: pd.DataFrame, edges: pd.DataFrame):
    """igraph.Graph of accounts (vertex attribute `name` = account_id, in account_id order) with
    the same attributes as to_networkx."""
    import igraph as ig

    nodes = account_table(members, clusters)
    links = account_links(members, edges)
    position = pd.Series(np.arange(len(nodes)), index=nodes.index)
    pairs = np.column_stack([position.reindex(links["account_a"]).to_numpy(np.int64),
                             position.reindex(links["account_b"]).to_numpy(np.int64)]) if len(links) \
        else np.zeros((0, 2), np.int64)
    g = ig.Graph(n=len(nodes), edges=pairs.tolist(), directed=False)
    g.vs["name"] = nodes.index.tolist()
    for column in NODE_COLUMNS:
        g.vs[column] = [_plain(v) for v in nodes[column].tolist()]
    for column in links.columns[2:]:
        g.es[column] = [_plain(v) for v in links[column].tolist()]
    return g


def _plain(value):
    """A NumPy scalar as Python; NaN (no score) as None."""
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and np.isnan(value) else value


def _attrs(row: dict) -> dict:
    return {k: _plain(v) for k, v in row.items()}
