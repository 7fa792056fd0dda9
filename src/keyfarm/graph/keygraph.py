"""The weighted key graph (graph stage's output): edge arrays (src < dst), per-signal weights,
per-edge evidence, symmetric CSR, and networkx / igraph interop."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from keyfarm.graph.weighting import SIGNALS


@dataclass
class KeyGraph:
    """Undirected key–key graph. Node i is the key in row i of tables.keys (sorted by key_id, so
    src < dst also orders the key ids).

    `w[signal]` (also `w_<signal>`) is the signal's evidence on each edge: Σ over shared tokens of
    token weight × the weaker key's tie (see keyfarm.graph.weighting); `weight` is their plain sum,
    the per-signal scaling being the base weights of config.weights. `evidence[signal]` holds, per
    edge, the index in `tokens` of the strongest shared token of that signal (−1: none).
    """

    n_nodes: int
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    w: dict[str, np.ndarray]
    key_id: np.ndarray
    account_id: np.ndarray
    account: np.ndarray
    evidence: dict[str, np.ndarray] = field(default_factory=dict)
    tokens: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    _csr: tuple | None = field(default=None, repr=False)

    def __post_init__(self):
        m = self.src.size
        if self.dst.size != m or self.weight.size != m or any(v.size != m for v in self.w.values()):
            raise ValueError("KeyGraph: src, dst, weight and w[...] must have one entry per edge")
        if self.key_id.size != self.n_nodes or self.account_id.size != self.n_nodes:
            raise ValueError("KeyGraph: key_id and account_id must have one entry per node")

    @property
    def n_edges(self) -> int:
        return int(self.src.size)

    def _signal(self, name: str) -> np.ndarray:
        return self.w.get(name, np.zeros(self.n_edges))

    w_account = property(lambda self: self._signal("account"), doc="Account evidence per edge.")
    w_payment = property(lambda self: self._signal("payment"), doc="Payment evidence per edge.")
    w_ip = property(lambda self: self._signal("ip"), doc="Network evidence per edge.")
    w_device = property(lambda self: self._signal("device"), doc="Device evidence per edge.")
    w_prompt = property(lambda self: self._signal("prompt"), doc="Prompt evidence per edge.")

    def _build_csr(self):
        n = self.n_nodes
        rows = np.concatenate([self.src, self.dst])
        cols = np.concatenate([self.dst, self.src])
        data = np.concatenate([self.weight, self.weight])
        order = np.lexsort((cols, rows))
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
        return indptr, cols[order], data[order]

    def csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Symmetric CSR (indptr, indices, data): each undirected edge in both rows, columns sorted."""
        if self._csr is None:
            self._csr = self._build_csr()
        return self._csr

    @property
    def indptr(self) -> np.ndarray:
        return self.csr()[0]

    @property
    def indices(self) -> np.ndarray:
        return self.csr()[1]

    @property
    def data(self) -> np.ndarray:
        return self.csr()[2]

    def to_networkx(self):
        """networkx.Graph with key_id/account_id node attributes and per-signal edge weights."""
        import networkx as nx

        g = nx.Graph()
        g.add_nodes_from((i, {"key_id": k, "account_id": a})
                         for i, (k, a) in enumerate(zip(self.key_id, self.account_id)))
        cols = {s: self.w[s] for s in SIGNALS if s in self.w}
        g.add_edges_from(
            (int(a), int(b), {"weight": float(wt), **{f"w_{s}": float(v[i]) for s, v in cols.items()}})
            for i, (a, b, wt) in enumerate(zip(self.src, self.dst, self.weight)))
        return g

    def to_igraph(self):
        """igraph.Graph with the same vertex order, `weight` and `w_<signal>` edge attributes."""
        import igraph as ig

        g = ig.Graph(n=self.n_nodes, edges=np.column_stack([self.src, self.dst]).tolist(), directed=False)
        g.vs["key_id"] = list(self.key_id)
        g.vs["account_id"] = list(self.account_id)
        g.es["weight"] = self.weight.tolist()
        for s, v in self.w.items():
            g.es[f"w_{s}"] = v.tolist()
        return g

    def evidence_text(self, signal: str) -> np.ndarray:
        """Per edge, the strongest shared token of `signal` as text (None where none)."""
        ids = self.evidence.get(signal)
        if ids is None:
            return np.full(self.n_edges, None, dtype=object)
        table = np.append(self.tokens, None).astype(object)
        return table[np.where(ids >= 0, ids, len(self.tokens))]

    def edges_frame(self) -> pd.DataFrame:
        """SCHEMA.md edges: key_a < key_b (key ids of different accounts: each account is linked
        through its representative key), weight, w_<signal> (+ evidence_<signal>, the strongest
        shared token's text)."""
        frame = pd.DataFrame({"key_a": self.key_id[self.src], "key_b": self.key_id[self.dst],
                              "weight": self.weight})
        for s in SIGNALS[1:]:   # keys of one account are linked through their account, not listed
            frame[f"w_{s}"] = self.w.get(s, np.zeros(self.n_edges))
        for s in SIGNALS[1:]:
            frame[f"evidence_{s}"] = self.evidence_text(s)
        return frame
