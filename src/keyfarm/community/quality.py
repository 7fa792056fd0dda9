"""Quality functions, kept apart from the optimisers: modularity and CPM.

Modularity with resolution γ: Q = Σ_c [ L_c/m − γ (d_c / 2m)² ], L_c the weight inside c, d_c the
total strength of c (a self-loop adds its weight to L_c and twice its weight to d_c, as igraph does).
CPM uses igraph's scaling: Q = (1/2m) Σ_c [ 2 L_c − γ n_c² ], n_c the number of nodes in c.
"""
from __future__ import annotations

import numpy as np

from keyfarm.community._graph import unpack


def _sums(src, dst, weight, membership):
    membership = np.asarray(membership, np.int64)
    k = int(membership.max()) + 1 if membership.size else 0
    inside = membership[src] == membership[dst]
    internal = np.bincount(membership[src[inside]], weights=weight[inside], minlength=k)
    strength = np.bincount(membership[src], weights=weight, minlength=k) + \
        np.bincount(membership[dst], weights=weight, minlength=k)
    return internal, strength, membership, k


def modularity(src, dst=None, weight=None, membership=None, resolution: float = 1.0) -> float:
    """Weighted modularity of a partition (igraph's definition, with resolution γ)."""
    if hasattr(src, "src"):
        membership = dst if membership is None else membership
        src, dst, weight, _ = unpack(src)
    else:
        src, dst, weight, _ = unpack(src, dst, weight, len(membership))
    internal, strength, _, _ = _sums(src, dst, weight, membership)
    m = weight.sum()
    if m == 0:
        return float("nan")
    return float(internal.sum() / m - resolution * np.sum((strength / (2 * m)) ** 2))


def cpm(src, dst=None, weight=None, membership=None, resolution: float = 1.0) -> float:
    """Constant Potts Model quality, igraph's scaling (1/2m) Σ_c [2 L_c − γ n_c²]."""
    if hasattr(src, "src"):
        membership = dst if membership is None else membership
        src, dst, weight, _ = unpack(src)
    else:
        src, dst, weight, _ = unpack(src, dst, weight, len(membership))
    internal, _, membership, k = _sums(src, dst, weight, membership)
    sizes = np.bincount(membership, minlength=k)
    m = weight.sum()
    if m == 0:
        return float("nan")
    return float((2 * internal.sum() - resolution * np.sum(sizes.astype(float) ** 2)) / (2 * m))
