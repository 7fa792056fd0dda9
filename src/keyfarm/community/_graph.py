"""Shared plumbing of the community algorithms: input checks, canonical CSR, a seeded PRNG."""
from __future__ import annotations

import numba
import numpy as np


def unpack(src, dst=None, weight=None, n_nodes=None):
    """Accept (src, dst, weight, n_nodes) arrays or a KeyGraph-like object as the first argument."""
    if hasattr(src, "src") and hasattr(src, "dst"):
        g = src
        return (np.asarray(g.src, np.int64), np.asarray(g.dst, np.int64),
                np.asarray(g.weight, np.float64), int(g.n_nodes))
    src = np.asarray(src, np.int64)
    dst = np.asarray(dst, np.int64)
    if src.shape != dst.shape or src.ndim != 1:
        raise ValueError("src and dst must be 1-d arrays of the same length")
    weight = np.ones(src.size) if weight is None else np.asarray(weight, np.float64)
    if weight.shape != src.shape:
        raise ValueError("weight must have one value per edge")
    if n_nodes is None:
        n_nodes = int(max(src.max(initial=-1), dst.max(initial=-1))) + 1
    n_nodes = int(n_nodes)
    if src.size and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n_nodes):
        raise ValueError("edge endpoints must lie in 0..n_nodes-1")
    if np.any(~np.isfinite(weight)) or np.any(weight < 0):
        raise ValueError("weights must be finite and non-negative")
    return src, dst, weight, n_nodes


def canonical_csr(src, dst, weight, n_nodes):
    """Symmetric CSR with duplicate edges summed and a self-loop stored once, rows sorted; the same
    whatever the order of the input edges. Zero-weight edges are dropped."""
    keep = weight > 0
    src, dst, weight = src[keep], dst[keep], weight[keep]
    a = np.minimum(src, dst)
    b = np.maximum(src, dst)
    order = np.lexsort((b, a))
    a, b, weight = a[order], b[order], weight[order]
    if a.size:
        new = np.ones(a.size, bool)
        new[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
        groups = np.cumsum(new) - 1
        weight = np.bincount(groups, weights=weight)
        a, b = a[new], b[new]
    loop = a == b
    rows = np.concatenate([a, b[~loop]])
    cols = np.concatenate([b, a[~loop]])
    data = np.concatenate([weight, weight[~loop]])
    order = np.lexsort((cols, rows))
    indptr = np.zeros(n_nodes + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n_nodes), out=indptr[1:])
    return indptr, cols[order].astype(np.int64), data[order].astype(np.float64)


def relabel(membership: np.ndarray) -> np.ndarray:
    """Labels 0..k-1 in order of first appearance (deterministic)."""
    membership = np.asarray(membership, np.int64)
    if membership.size == 0:
        return membership
    _, first, inverse = np.unique(membership, return_index=True, return_inverse=True)
    rank = np.empty(first.size, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse]


@numba.njit(cache=True, nogil=True)
def rand_next(state):
    """splitmix64 step on state[0]; returns a uint64."""
    state[0] += np.uint64(0x9E3779B97F4A7C15)
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def rand_uniform(state):
    return (rand_next(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True, nogil=True)
def shuffled(n, state):
    """A random permutation of 0..n-1 (Fisher–Yates)."""
    order = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = np.int64(rand_next(state) % np.uint64(i + 1))
        order[i], order[j] = order[j], order[i]
    return order


def make_state(seed) -> np.ndarray:
    """PRNG state array from a seed (None: fresh entropy, non-deterministic)."""
    rng = np.random.default_rng(seed)
    return np.array([rng.integers(0, 2**63)], dtype=np.uint64)
