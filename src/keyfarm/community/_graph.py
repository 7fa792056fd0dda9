"""Shared plumbing of the community stage: input checks, a canonical CSR, a seeded PRNG, relabelling.

Every algorithm in `keyfarm.community` goes through `edges_from_args` and `canonical_csr`, so all of
them accept the same inputs and none depends on the order of the input edges.
"""
from __future__ import annotations

import numbers

import numba
import numpy as np

from keyfarm.errors import KeyfarmInputError

GOLDEN = np.uint64(0x9E3779B97F4A7C15)   # splitmix64's increment (2^64 / golden ratio)


class CommunityInputError(KeyfarmInputError, ValueError):
    """Invalid edge list or membership given to a community function (also a ValueError)."""


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def edges_from_args(src, dst=None, weight=None, n_nodes=None, *, weighted: bool = True):
    """Validated (src, dst, weight, n_nodes) from arrays, or from a KeyGraph-like first argument.

    A KeyGraph-like object is anything with `src`, `dst`, `n_nodes` (and `weight`) attributes.
    `weight=None` means every edge weighs 1; `n_nodes=None` means max endpoint + 1.
    """
    if hasattr(src, "src") and hasattr(src, "dst") and hasattr(src, "n_nodes"):
        graph = src
        if dst is not None or n_nodes is not None:
            raise CommunityInputError("pass either a graph object or (src, dst, weight, n_nodes), not both")
        src, dst, n_nodes = graph.src, graph.dst, graph.n_nodes
        weight = getattr(graph, "weight", None) if weighted else None
    if dst is None:
        raise CommunityInputError("dst is required when src is an array", table="edges", column="dst")
    src = _int_array(src, "src")
    dst = _int_array(dst, "dst")
    if src.shape != dst.shape:
        raise CommunityInputError(f"src and dst differ in length ({src.size} vs {dst.size})",
                                  table="edges", column="dst")
    if weight is None:
        weight = np.ones(src.size, np.float64)
    else:
        weight = np.ascontiguousarray(weight, dtype=np.float64)
        if weight.ndim != 1 or weight.size != src.size:
            raise CommunityInputError(f"weight must hold one value per edge ({src.size}), got shape "
                                      f"{weight.shape}", table="edges", column="weight")
        bad = ~np.isfinite(weight) | (weight < 0)
        if bad.any():
            row = _first_bad(bad)
            raise CommunityInputError(f"edge weights must be finite and >= 0; edge {row} has {weight[row]}",
                                      table="edges", column="weight", row=row)
    top = int(max(src.max(initial=-1), dst.max(initial=-1)))
    if n_nodes is None:
        n_nodes = top + 1
    if not isinstance(n_nodes, numbers.Integral) or isinstance(n_nodes, bool) or n_nodes < 0:
        raise CommunityInputError(f"n_nodes must be a non-negative integer, got {n_nodes!r}")
    n_nodes = int(n_nodes)
    for name, arr in (("src", src), ("dst", dst)):
        bad = (arr < 0) | (arr >= n_nodes)
        if bad.any():
            row = _first_bad(bad)
            raise CommunityInputError(f"edge endpoints must lie in 0..n_nodes-1 = {n_nodes - 1}; "
                                      f"edge {row} has {name}={arr[row]}", table="edges", column=name, row=row)
    return src, dst, weight, n_nodes


def _int_array(values, name: str, table: str | None = "edges") -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise CommunityInputError(f"{name} must be one-dimensional, got shape {arr.shape}",
                                  table=table, column=name)
    if arr.size == 0:
        return np.zeros(0, np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            return np.ascontiguousarray(arr, dtype=np.int64)
        raise CommunityInputError(f"{name} must hold integers, got dtype {arr.dtype}",
                                  table=table, column=name)
    return np.ascontiguousarray(arr, dtype=np.int64)


def membership_array(membership, n_nodes: int) -> np.ndarray:
    """Validated int64 membership: one non-negative integer label per node."""
    if membership is None:
        raise CommunityInputError("membership is required", column="membership")
    arr = _int_array(membership, "membership", None) if np.size(membership) else np.zeros(0, np.int64)
    if arr.size != n_nodes:
        raise CommunityInputError(f"membership must hold one label per node ({n_nodes}), got {arr.size}",
                                  column="membership")
    if arr.size and arr.min() < 0:
        row = _first_bad(arr < 0)
        raise CommunityInputError(f"membership labels must be >= 0; node {row} has {arr[row]}",
                                  column="membership", row=row)
    return arr


def canonical_csr(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n_nodes: int):
    """Symmetric CSR (indptr, indices, data) with duplicates summed, zero weights dropped, a self-loop
    stored once in its row, columns sorted: identical bits whatever the order of the input edges."""
    return _canonical_csr(src, dst, weight, np.int64(n_nodes))


@numba.njit(cache=True, nogil=True)
def _canonical_csr(src, dst, weight, n_nodes):
    n_in = src.size
    a = np.empty(n_in, np.int64)
    b = np.empty(n_in, np.int64)
    w = np.empty(n_in, np.float64)
    e = 0
    for i in range(n_in):
        if weight[i] > 0.0:
            x, y = src[i], dst[i]
            if x > y:
                x, y = y, x
            a[e] = x
            b[e] = y
            w[e] = weight[i]
            e += 1
    # Two stable counting sorts: by b, then by a, give (a, b) order in O(E + n).
    order_b = _counting_order(b, e, n_nodes)
    a_by_b = np.empty(e, np.int64)
    for i in range(e):
        a_by_b[i] = a[order_b[i]]
    order_a = _counting_order(a_by_b, e, n_nodes)
    sa = np.empty(e, np.int64)
    sb = np.empty(e, np.int64)
    sw = np.empty(e, np.float64)
    for i in range(e):
        k = order_b[order_a[i]]
        sa[i] = a[k]
        sb[i] = b[k]
        sw[i] = w[k]
    # Merge duplicates; sum each group's weights in sorted order so the float sum is order-free.
    u = 0
    i = 0
    while i < e:
        j = i + 1
        while j < e and sa[j] == sa[i] and sb[j] == sb[i]:
            j += 1
        if j - i > 1:
            group = np.sort(sw[i:j])
            total = 0.0
            for x in group:
                total += x
        else:
            total = sw[i]
        sa[u] = sa[i]
        sb[u] = sb[i]
        sw[u] = total
        u += 1
        i = j
    indptr = np.zeros(n_nodes + 1, np.int64)
    for i in range(u):
        indptr[sa[i] + 1] += 1
        if sa[i] != sb[i]:
            indptr[sb[i] + 1] += 1
    for r in range(n_nodes):
        indptr[r + 1] += indptr[r]
    fill = indptr[:-1].copy()
    indices = np.empty(indptr[n_nodes], np.int64)
    data = np.empty(indptr[n_nodes], np.float64)
    # Lower entries (column < row) first, in increasing column order, then the row's own and higher ones.
    for i in range(u):
        if sa[i] != sb[i]:
            r = sb[i]
            indices[fill[r]] = sa[i]
            data[fill[r]] = sw[i]
            fill[r] += 1
    for i in range(u):
        r = sa[i]
        indices[fill[r]] = sb[i]
        data[fill[r]] = sw[i]
        fill[r] += 1
    return indptr, indices, data


@numba.njit(cache=True, nogil=True)
def _counting_order(keys, size, n_keys):
    """Stable order of keys[:size] by value (0..n_keys-1)."""
    start = np.zeros(n_keys + 1, np.int64)
    for i in range(size):
        start[keys[i] + 1] += 1
    for k in range(n_keys):
        start[k + 1] += start[k]
    order = np.empty(size, np.int64)
    for i in range(size):
        order[start[keys[i]]] = i
        start[keys[i]] += 1
    return order


@numba.njit(cache=True, nogil=True)
def strength(indptr, indices, data):
    """Weighted degree of each node; a self-loop counts twice (as in igraph and networkx)."""
    n = indptr.size - 1
    out = np.zeros(n, np.float64)
    for v in range(n):
        s = 0.0
        for j in range(indptr[v], indptr[v + 1]):
            s += data[j]
            if indices[j] == v:
                s += data[j]
        out[v] = s
    return out


@numba.njit(cache=True, nogil=True)
def renumber(labels):
    """Labels 0..k-1 in order of first appearance, and k."""
    n = labels.size
    top = 0
    for i in range(n):
        if labels[i] > top:
            top = labels[i]
    new_id = np.full(top + 1, -1, np.int64)
    out = np.empty(n, np.int64)
    k = 0
    for i in range(n):
        c = labels[i]
        if new_id[c] < 0:
            new_id[c] = k
            k += 1
        out[i] = new_id[c]
    return out, k


def relabel(membership: np.ndarray) -> np.ndarray:
    """Labels 0..k-1 in order of first appearance (deterministic)."""
    membership = np.ascontiguousarray(membership, dtype=np.int64)
    if membership.size == 0:
        return membership.copy()
    return renumber(membership)[0]


@numba.njit(cache=True, nogil=True)
def mix64(z):
    """splitmix64's output function: a well-mixed uint64 from a uint64 counter."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def rand_next(state):
    """splitmix64 step on state[0]; returns a uint64."""
    state[0] += GOLDEN
    return mix64(state[0])


@numba.njit(cache=True, nogil=True)
def rand_uniform(state):
    """A float in [0, 1) from the state."""
    return np.float64(rand_next(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True, nogil=True)
def stream_uniform(counter):
    """(next counter, a float in [0, 1)): a splitmix64 stream held in a scalar, so each of many
    independent tasks (one per community in a parallel loop) draws from its own stream."""
    counter += GOLDEN
    return counter, np.float64(mix64(counter) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True, nogil=True)
def shuffled(n, state):
    """A random permutation of 0..n-1 (Fisher–Yates)."""
    order = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = np.int64(rand_next(state) % np.uint64(i + 1))
        order[i], order[j] = order[j], order[i]
    return order


def make_state(seed) -> np.ndarray:
    """PRNG state array for the kernels from a seed (None: fresh entropy, not reproducible)."""
    if seed is not None and (not isinstance(seed, numbers.Integral) or isinstance(seed, bool)):
        raise CommunityInputError(f"seed must be an integer or None, got {seed!r}")
    rng = np.random.default_rng(seed)
    return np.array([rng.integers(0, 2**63)], dtype=np.uint64)


@numba.njit(cache=True, nogil=True)
def balanced_blocks(cost, n_blocks):
    """Boundaries (n_blocks + 1 of them) splitting items 0..cost.size-1 into contiguous blocks of
    about equal summed cost, for parallel loops: Numba's prange hands each thread an equal count of
    iterations, so one block per thread evens out skewed work (hubs, big communities)."""
    m = cost.size
    total = 0.0
    for i in range(m):
        total += cost[i] + 1.0
    bounds = np.empty(n_blocks + 1, np.int64)
    bounds[0] = 0
    acc = 0.0
    p = 1
    for i in range(m):
        acc += cost[i] + 1.0
        while p < n_blocks and acc >= total * p / n_blocks:
            bounds[p] = i + 1
            p += 1
    while p <= n_blocks:
        bounds[p] = m
        p += 1
    return bounds
