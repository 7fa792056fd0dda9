"""Connected components by union-find (path halving, union by index), in Numba."""
from __future__ import annotations

import numba
import numpy as np

from keyfarm.community._graph import relabel, unpack


@numba.njit(cache=True, nogil=True)
def _union_find(src, dst, n):
    parent = np.arange(n)
    for i in range(src.size):
        a, b = src[i], dst[i]
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        if a != b:
            if a < b:
                parent[b] = a
            else:
                parent[a] = b
    for i in range(n):
        r = i
        while parent[r] != r:
            r = parent[r]
        parent[i] = r
    return parent


def connected_components(src, dst=None, n_nodes=None) -> np.ndarray:
    """Component label per node (0..k−1, in order of first appearance)."""
    src, dst, _, n_nodes = unpack(src, dst, None, n_nodes) if not hasattr(src, "src") else unpack(src)
    return relabel(_union_find(src, dst, n_nodes))
