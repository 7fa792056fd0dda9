"""The Leiden/Louvain optimiser of the community stage: levels of local moving, refinement and
aggregation, repeated for a number of iterations.

One objective covers modularity and CPM (as in leidenalg, objectives are kept apart from the
optimiser): maximise H = Σ_c [ L_c − γ' K_c² / 2 ], with L_c the edge weight inside c (each edge
once, self-loops included) and K_c the summed node weight of c.
  * modularity with resolution γ: node weight = strength, γ' = γ / 2m  (then Q = H / m);
  * CPM with resolution γ: node weight = 1, γ' = γ                     (then igraph's CPM = H / m).
Moving node v (weight k_v) out of its community into c changes H by w(v, c) − γ' k_v K_c, minus the
same term for the community it leaves (with v already taken out).

The kernels live apart: `_moving` (local moving: the serial queue, and a colour-parallel kernel
that is off by default, see PARALLEL_MIN_NODES), `_refine`, `_aggregate`. Refinement and
aggregation run on Numba threads where the graph is large enough to pay, and nothing lets the
thread count or timing change the result: the same seed and graph give the same membership with
1 thread or many.
"""
from __future__ import annotations

import numba
import numpy as np

from keyfarm.community._aggregate import aggregate, cluster_of
from keyfarm.community._graph import renumber, shuffled
from keyfarm.community._moving import (MIN_PARALLEL_WORK, PARALLEL_MIN_NODES, colour_classes, move_gain, move_nodes,
                                      move_nodes_parallel)
from keyfarm.community._refine import refine

__all__ = ["aggregate", "move_gain", "move_nodes", "one_iteration", "optimise", "refine"]

# Randomness of the refinement step (θ in Traag et al. 2019; igraph's `beta`, default 0.01).
THETA = 0.01
# Levels with fewer stored edges refine and aggregate serially: threads would not repay starting.
PARALLEL_MIN_EDGES = 200_000


def colouring(indptr, indices, state):
    """A seeded greedy colouring for colour-parallel local moving, or None on graphs small enough
    for the serial queue. Which one depends on the graph size only, never on the thread count."""
    n = indptr.size - 1
    if PARALLEL_MIN_NODES is None or n < PARALLEL_MIN_NODES:
        return None
    return colour_classes(indptr, indices, shuffled(n, state))


def local_moving(indptr, indices, data, node_weight, membership, gamma, state, n_threads, colours):
    """Local moving on one level: colour-parallel given a colouring, else the serial queue."""
    if colours is None:
        return move_nodes(indptr, indices, data, node_weight, membership, gamma, state)
    return move_nodes_parallel(indptr, indices, data, node_weight, membership, gamma, state, n_threads,
                               MIN_PARALLEL_WORK, colours[0], colours[1])


def one_iteration(indptr, indices, data, node_weight, membership, gamma, use_refinement, state, n_threads=1,
                  colours=None):
    """One Leiden (or, without refinement, Louvain) iteration from `membership`: move nodes, refine,
    aggregate, repeat on the aggregate graph until every community is a single aggregate node.
    `colours`: the input graph's colouring (`colouring`), kept across iterations."""
    node_map = np.arange(indptr.size - 1)
    part = membership.copy()
    level = 0
    while True:
        n_blocks = n_threads if indices.size >= PARALLEL_MIN_EDGES else 1
        if level > 0:
            colours = colouring(indptr, indices, state)
        local_moving(indptr, indices, data, node_weight, part, gamma, state, n_threads, colours)
        level += 1
        part, k = renumber(part)
        if k == indptr.size - 1:
            break
        part, clusters, indptr, indices, data, node_weight = next_level(
            indptr, indices, data, node_weight, part, k, gamma, use_refinement, THETA, state, n_blocks)
        node_map = clusters[node_map]
    return part[node_map]


@numba.njit(cache=True, nogil=True)
def next_level(indptr, indices, data, node_weight, part, k, gamma, use_refinement, theta, state, n_blocks):
    """From a level's communities `part` (k of them, fewer than its nodes): refine them, then
    aggregate on the refined clusters. Returns (the aggregate nodes' communities, each node's
    cluster, the aggregate graph: indptr, indices, data, node_weight)."""
    clusters, n_clusters = part, k
    if use_refinement:
        refined, n_refined = renumber(refine(indptr, indices, data, node_weight, part, gamma, theta, state,
                                             n_blocks))
        # As igraph does: if refinement merged nothing, aggregate on the communities themselves.
        if n_refined < indptr.size - 1:
            clusters, n_clusters = refined, n_refined
    communities = cluster_of(clusters, part, n_clusters)
    indptr, indices, data, node_weight = aggregate(indptr, indices, data, node_weight, clusters, n_clusters,
                                                   n_blocks)
    return communities, clusters, indptr, indices, data, node_weight


def optimise(indptr, indices, data, node_weight, gamma, *, use_refinement, n_iterations, state,
             initial=None):
    """Run `n_iterations` iterations, or (None) until an iteration leaves the membership unchanged."""
    n = indptr.size - 1
    n_threads = numba.get_num_threads()
    membership = np.arange(n) if initial is None else renumber(initial)[0]
    colours = colouring(indptr, indices, state)
    done = 0
    while n_iterations is None or done < n_iterations:
        new = renumber(one_iteration(indptr, indices, data, node_weight, membership, gamma,
                                     use_refinement, state, n_threads, colours))[0]
        done += 1
        stable = np.array_equal(new, membership)
        membership = new
        if stable:
            break
    return membership
