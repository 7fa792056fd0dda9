"""Refinement of the Leiden optimiser (community stage): each community split into well-connected
sub-communities before aggregation, which is what guarantees connected communities.

Communities are refined independently of one another (a node only ever merges with nodes of its
own community), so they are spread over Numba threads, each community with its own random stream
derived from the seed and its label: the result does not depend on the thread count or timing.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from keyfarm.community._graph import balanced_blocks, mix64, rand_next, shuffled, stream_uniform


@numba.njit(cache=True, nogil=True)
def refine(indptr, indices, data, node_weight, membership, gamma, theta, state, n_blocks=1):
    """Refinement (Traag et al. 2019, Alg. A.3): inside each community of `membership`, start from
    singletons and merge each still-singleton, well-connected node into a well-connected refined
    cluster of its community, chosen at random with probability ∝ exp(gain / θ) among non-negative
    gains. Merges follow edges, so every refined cluster is connected. Nodes of a community are
    visited in one seeded order. Returns refined labels (node ids of the clusters' first members).
    `n_blocks` (threads to spread over; 1: serial) changes the speed only, never the result."""
    n = indptr.size - 1
    comm_weight = np.zeros(n, np.float64)
    comm_size = np.zeros(n + 1, np.int64)
    for v in range(n):
        comm_weight[membership[v]] += node_weight[v]
        comm_size[membership[v] + 1] += 1
    # The nodes of each community, in one random order: a stable counting sort of a shuffle.
    start = comm_size
    for c in range(n):
        start[c + 1] += start[c]
    members = np.empty(n, np.int64)
    fill = start[:-1].copy()
    order = shuffled(n, state)
    for i in range(n):
        v = order[i]
        c = membership[v]
        members[fill[c]] = v
        fill[c] += 1
    stream = rand_next(state)
    cost = np.zeros(n, np.float64)
    for v in range(n):
        cost[membership[v]] += indptr[v + 1] - indptr[v]
    blocks = balanced_blocks(cost, n_blocks)
    refined = np.arange(n)
    r_weight = node_weight.copy()
    r_ext = np.empty(n, np.float64)   # weight from a refined cluster to the rest of its community
    singleton = np.ones(n, np.bool_)
    neigh_w = np.zeros(n, np.float64)
    seen = np.zeros(n, np.bool_)
    neigh = np.empty(n, np.int64)
    gains = np.empty(n, np.float64)
    if n_blocks > 1:
        _refine_blocks(indptr, indices, data, node_weight, membership, gamma, theta, stream, blocks, start,
                       members, comm_weight, refined, r_weight, r_ext, singleton, neigh_w, seen, neigh, gains)
    else:
        _refine_range(indptr, indices, data, node_weight, membership, gamma, theta, stream, 0, n, start,
                      members, comm_weight, refined, r_weight, r_ext, singleton, neigh_w, seen, neigh, gains)
    return refined


@numba.njit(cache=True, nogil=True, parallel=True)
def _refine_blocks(indptr, indices, data, node_weight, membership, gamma, theta, stream, blocks, start,
                   members, comm_weight, refined, r_weight, r_ext, singleton, neigh_w, seen, neigh, gains):
    """One block of communities per thread. Every array is written only at the nodes of the
    community being refined (scratch `neigh`/`gains` in that community's slice of `members`), so
    the threads never touch the same entries."""
    for p in prange(blocks.size - 1):
        _refine_range(indptr, indices, data, node_weight, membership, gamma, theta, stream, blocks[p],
                      blocks[p + 1], start, members, comm_weight, refined, r_weight, r_ext, singleton, neigh_w,
                      seen, neigh, gains)


@numba.njit(cache=True, nogil=True)
def _refine_range(indptr, indices, data, node_weight, membership, gamma, theta, stream, c_lo, c_hi, start,
                  members, comm_weight, refined, r_weight, r_ext, singleton, neigh_w, seen, neigh, gains):
    """Refine communities c_lo..c_hi-1, each from its own random stream."""
    for c in range(c_lo, c_hi):
        if start[c + 1] > start[c]:
            _refine_one(indptr, indices, data, node_weight, membership, gamma, theta,
                        mix64(stream ^ np.uint64(c)), start[c], start[c + 1], members, comm_weight[c],
                        refined, r_weight, r_ext, singleton, neigh_w, seen, neigh, gains)


@numba.njit(cache=True, nogil=True)
def _refine_one(indptr, indices, data, node_weight, membership, gamma, theta, counter, lo, hi, members, k_c,
                refined, r_weight, r_ext, singleton, neigh_w, seen, neigh, gains):
    """Refine the community whose nodes are members[lo:hi] (in visiting order), of total weight k_c."""
    c = membership[members[lo]]
    for m in range(lo, hi):
        v = members[m]
        s = 0.0
        for j in range(indptr[v], indptr[v + 1]):
            u = indices[j]
            if u != v and membership[u] == c:
                s += data[j]
        r_ext[v] = s
    for m in range(lo, hi):
        v = members[m]
        if not singleton[v]:
            continue
        kv = node_weight[v]
        if r_ext[v] < gamma * kv * (k_c - kv):
            continue
        n_neigh = 0
        for j in range(indptr[v], indptr[v + 1]):
            u = indices[j]
            if u == v or membership[u] != c:
                continue
            t = refined[u]
            if not seen[t]:
                seen[t] = True
                neigh[lo + n_neigh] = t
                n_neigh += 1
            neigh_w[t] += data[j]
        # Candidates: v itself (gain 0) and well-connected clusters with gain >= 0.
        best = 0.0
        n_cand = 0
        for k in range(lo, lo + n_neigh):
            t = neigh[k]
            g = neigh_w[t] - gamma * kv * r_weight[t]
            if g >= 0.0 and r_ext[t] >= gamma * r_weight[t] * (k_c - r_weight[t]):
                neigh[lo + n_cand] = t
                gains[lo + n_cand] = g
                n_cand += 1
                if g > best:
                    best = g
            else:
                neigh_w[t] = 0.0
                seen[t] = False
        chosen = v
        if n_cand > 0:
            total = 1.0 if best == 0.0 else np.exp(-best / theta)
            for k in range(lo, lo + n_cand):
                gains[k] = np.exp((gains[k] - best) / theta)
                total += gains[k]
            counter, r = stream_uniform(counter)
            r *= total
            acc = 1.0 if best == 0.0 else np.exp(-best / theta)
            if r >= acc:
                for k in range(lo, lo + n_cand):
                    acc += gains[k]
                    chosen = neigh[k]
                    if r < acc:
                        break
        if chosen != v:
            w_vt = neigh_w[chosen]
            r_weight[chosen] += kv
            r_ext[chosen] += r_ext[v] - 2.0 * w_vt
            r_weight[v] = 0.0
            refined[v] = chosen
            singleton[v] = False
            singleton[chosen] = False
        for k in range(lo, lo + n_cand):
            t = neigh[k]
            neigh_w[t] = 0.0
            seen[t] = False
