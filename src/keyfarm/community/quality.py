"""Quality functions of the community stage, kept apart from the optimisers: modularity and CPM.

Modularity with resolution γ: Q = Σ_c [ L_c/m − γ (d_c / 2m)² ], L_c the edge weight inside c, d_c
the total strength of c, m the total edge weight (a self-loop adds its weight to L_c and twice its
weight to d_c, as in igraph and networkx).
CPM uses igraph's scaling (`Graph.community_leiden(objective_function="CPM")`):
Q = (1/2m) Σ_c [ 2 L_c − γ n_c² ], n_c the number of nodes in c. leidenalg's CPMVertexPartition
reports Σ_c [L_c − γ n_c(n_c−1)/2] and networkx Σ_c [L_c − γ n_c²/2]; for a fixed γ all three rank
partitions identically (they differ by the factor 1/m and by γ n / 2, both constant).
"""
from __future__ import annotations

import numpy as np

from keyfarm.community._graph import CommunityInputError, edges_from_args, membership_array


def _args(src, dst, weight, membership):
    """(src, dst, weight, membership) whether a graph object or arrays were given."""
    if hasattr(src, "src") and hasattr(src, "n_nodes"):
        if membership is None:                      # modularity(graph, membership)
            membership = dst
        src, dst, weight, n_nodes = edges_from_args(src)
    else:
        src, dst, weight, n_nodes = edges_from_args(src, dst, weight, None)
        if membership is not None and np.size(membership) < n_nodes:
            raise CommunityInputError(f"membership has {np.size(membership)} labels but the edges reach node "
                                      f"{n_nodes - 1}", column="membership")
        n_nodes = n_nodes if membership is None else np.size(membership)
    return src, dst, weight, membership_array(membership, n_nodes)


def _sums(src, dst, weight, membership):
    k = int(membership.max()) + 1 if membership.size else 0
    inside = membership[src] == membership[dst]
    internal = np.bincount(membership[src[inside]], weights=weight[inside], minlength=k)
    strength = (np.bincount(membership[src], weights=weight, minlength=k)
                + np.bincount(membership[dst], weights=weight, minlength=k))
    return internal, strength, k


def modularity(src, dst=None, weight=None, membership=None, resolution: float = 1.0) -> float:
    """Weighted modularity of a partition, igraph's definition with resolution γ.

    Call as ``modularity(src, dst, weight, membership)`` (weight None: all 1) or
    ``modularity(graph, membership)`` with a KeyGraph-like object. NaN when the graph has no weight.
    """
    src, dst, weight, membership = _args(src, dst, weight, membership)
    internal, strength, _ = _sums(src, dst, weight, membership)
    m = weight.sum()
    if m == 0:
        return float("nan")
    return float(internal.sum() / m - float(resolution) * np.sum((strength / (2 * m)) ** 2))


def cpm(src, dst=None, weight=None, membership=None, resolution: float = 1.0) -> float:
    """Constant Potts Model quality in igraph's scaling (1/2m) Σ_c [2 L_c − γ n_c²].

    Same calling conventions as `modularity`. NaN when the graph has no weight.
    """
    src, dst, weight, membership = _args(src, dst, weight, membership)
    internal, _, k = _sums(src, dst, weight, membership)
    sizes = np.bincount(membership, minlength=k).astype(np.float64)
    m = weight.sum()
    if m == 0:
        return float("nan")
    return float((2 * internal.sum() - float(resolution) * np.sum(sizes ** 2)) / (2 * m))
