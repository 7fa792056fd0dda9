"""Connected components of the community stage: union-find in Numba (path halving, smaller root wins)."""
from __future__ import annotations

import numba
import numpy as np

from keyfarm.community._graph import edges_from_args, relabel


def connected_components(src, dst=None, n_nodes=None) -> np.ndarray:
    """Component label of each node: 0..k−1, numbered in order of the nodes' first appearance.

    Every given edge connects its endpoints, whatever its weight (so a KeyGraph's zero-weight
    edges count too). Accepts (src, dst, n_nodes) arrays or a KeyGraph-like object.

    Examples
    --------
    >>> connected_components([0, 3], [1, 4], 5)
    array([0, 0, 1, 2, 2])
    """
    src, dst, _, n_nodes = edges_from_args(src, dst, None, n_nodes, weighted=False)
    return relabel(union_find_roots(src, dst, np.int64(n_nodes)))


@numba.njit(cache=True, nogil=True)
def find_root(parent, a):
    """Root of `a` in the union-find forest `parent`, halving the path on the way (kernel shared
    with scoring.features' spanning forest)."""
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@numba.njit(cache=True, nogil=True)
def union_find_roots(src, dst, n):
    """Root (smallest node of its component) of each node: the one union-find kernel (connected
    components here, control groups and hub groups in scoring)."""
    parent = np.arange(n)
    for i in range(src.size):
        a = find_root(parent, src[i])
        b = find_root(parent, dst[i])
        if a < b:
            parent[b] = a
        elif b < a:
            parent[a] = b
    for v in range(n):
        parent[v] = find_root(parent, v)
    return parent
