"""Leiden on many small graphs in one kernel call (community stage, per-component runs).

The job runs Leiden on every connected component of the account graph alone; most components
have a handful of nodes, and a Python call per component (checks, CSR, optimiser set-up) costs far
more than the optimisation itself. `optimise_many` runs the serial optimiser of `_optimiser` on
each graph of a batch inside Numba: the same kernels in the same order, every graph from the same
seeded PRNG state, so each graph gets the membership `leiden()` gives it alone. It covers the CPM
objective (node weight 1); modularity's 2m is a NumPy sum whose rounding a kernel would not repeat,
so leiden_many runs modularity graph by graph.
"""
from __future__ import annotations

import numba
import numpy as np

from keyfarm.community._graph import _canonical_csr, renumber
from keyfarm.community._moving import move_nodes
from keyfarm.community._optimiser import next_level


@numba.njit(cache=True, nogil=True)
def _one_iteration_serial(indptr, indices, data, node_weight, membership, gamma, use_refinement, theta, state):
    """`_optimiser.one_iteration` with one thread and no colouring (graphs below the optimiser's
    parallel thresholds): move nodes, refine, aggregate, until every community is one node."""
    node_map = np.arange(indptr.size - 1)
    part = membership.copy()
    while True:
        move_nodes(indptr, indices, data, node_weight, part, gamma, state)
        part, k = renumber(part)
        if k == indptr.size - 1:
            break
        part, clusters, indptr, indices, data, node_weight = next_level(
            indptr, indices, data, node_weight, part, k, gamma, use_refinement, theta, state, 1)
        node_map = clusters[node_map]
    return part[node_map]


@numba.njit(cache=True, nogil=True)
def optimise_many(node_ptr, edge_ptr, src, dst, weight, gamma, use_refinement, theta, n_iterations, seed_state,
                  initial, has_initial):
    """CPM Leiden/Louvain on each graph g of a batch: nodes 0..node_ptr[g+1]−node_ptr[g]−1 (local
    ids), edges edge_ptr[g]:edge_ptr[g+1] of (src, dst, weight). Every graph starts from a copy of
    `seed_state` and, when `has_initial`, from initial[node_ptr[g]:node_ptr[g+1]]. `n_iterations`
    < 0 iterates until stable. Returns (labels per node, 0..k−1 per graph; k per graph)."""
    n_graphs = node_ptr.size - 1
    labels = np.empty(node_ptr[n_graphs], np.int64)
    n_labels = np.empty(n_graphs, np.int64)
    state = np.empty(1, np.uint64)
    for g in range(n_graphs):
        lo, hi = node_ptr[g], node_ptr[g + 1]
        n = hi - lo
        e_lo, e_hi = edge_ptr[g], edge_ptr[g + 1]
        indptr, indices, data = _canonical_csr(src[e_lo:e_hi], dst[e_lo:e_hi], weight[e_lo:e_hi], np.int64(n))
        node_weight = np.ones(n, np.float64)
        state[0] = seed_state[0]
        if has_initial:
            membership = renumber(initial[lo:hi])[0]
        else:
            membership = np.arange(n)
        done = 0
        while n_iterations < 0 or done < n_iterations:
            new = renumber(_one_iteration_serial(indptr, indices, data, node_weight, membership, gamma,
                                                 use_refinement, theta, state))[0]
            done += 1
            stable = True
            for i in range(n):
                if new[i] != membership[i]:
                    stable = False
                    break
            membership = new
            if stable:
                break
        k = 0
        for i in range(n):
            labels[lo + i] = membership[i]
            if membership[i] + 1 > k:
                k = membership[i] + 1
        n_labels[g] = k
    return labels, n_labels
