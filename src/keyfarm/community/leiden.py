"""Leiden community detection (community stage): the membership of every key in the key graph."""
from __future__ import annotations

import math
import numbers

import numpy as np

from keyfarm.community._graph import (CommunityInputError, canonical_csr, edges_from_args, make_state,
                                      membership_array, renumber, strength)
from keyfarm.community._optimiser import optimise

OBJECTIVES = ("modularity", "cpm")


def leiden(src, dst=None, weight=None, n_nodes=None, *, resolution: float = 1.0,
           objective: str = "modularity", seed: int | None = 0, n_iterations: int | None = 2,
           initial_membership=None) -> np.ndarray:
    """Communities by the Leiden algorithm, maximising modularity or the Constant Potts Model.

    Leiden improves on Louvain with a refinement step: communities are split into well-connected
    sub-communities before aggregation, so every community it returns is connected.

    Parameters
    ----------
    src, dst : array of int
        Endpoints of the undirected edges, each edge given once (either direction). Duplicate edges
        are summed; self-loops are allowed. Instead of arrays, a KeyGraph-like object (attributes
        `src`, `dst`, `weight`, `n_nodes`) may be passed as the only positional argument.
    weight : array of float, optional
        Non-negative edge weights (None: all 1). Zero-weight edges are ignored.
    n_nodes : int, optional
        Number of nodes (None: largest endpoint + 1); nodes without edges stay alone.
    resolution : float
        γ. For modularity, Q = Σ_c [L_c/m − γ (d_c/2m)²]: larger γ gives more, smaller communities.
        For CPM, Q = (1/2m) Σ_c [2 L_c − γ n_c²] (igraph's scaling): a community's internal edge
        density must exceed γ, which suits many small dense groups such as key farms.
    objective : {"modularity", "cpm"}
    seed : int or None
        Seed of the random node orders and refinement choices; the same seed and graph give the
        same membership whatever the order of the edges and whatever the number of Numba threads
        (`numba.set_num_threads`) the optimiser spreads over. None draws fresh entropy.
    n_iterations : int or None
        Number of Leiden iterations: 2 by default, as igraph's `community_leiden`; None (or −1,
        the value a TOML configuration can hold) iterates until an iteration changes nothing, a
        long tail of iterations that each move a few nodes on large graphs.
    initial_membership : array of int, optional
        A partition to start from (as leidenalg's `initial_membership`), one non-negative label
        per node; None: every node alone. A daily run starts from yesterday's clusters, so a day of
        little new traffic gives nearly the same partition. Deterministic for a given seed.

    Returns
    -------
    numpy.ndarray of int64
        Community label of each node, 0..k−1, numbered in order of the nodes' first appearance.

    References
    ----------
    V. A. Traag, L. Waltman, N. J. van Eck, "From Louvain to Leiden: guaranteeing well-connected
    communities", Scientific Reports 9, 5233 (2019).

    Examples
    --------
    >>> leiden([0, 1, 0, 3, 4, 3, 2], [1, 2, 2, 4, 5, 5, 3], None, 6)
    array([0, 0, 0, 1, 1, 1])
    """
    return run_optimiser(src, dst, weight, n_nodes, resolution=resolution, objective=objective, seed=seed,
                         n_iterations=n_iterations, use_refinement=True, initial=initial_membership)


def run_optimiser(src, dst, weight, n_nodes, *, resolution, objective, seed, n_iterations, use_refinement,
                  initial=None):
    """Validate the arguments, build the canonical graph and run the shared optimiser."""
    src, dst, weight, n_nodes = edges_from_args(src, dst, weight, n_nodes)
    n_iterations = _checked_settings(resolution, objective, n_iterations)
    if initial is not None:
        initial = membership_array(initial, n_nodes)
    state = make_state(seed)
    indptr, indices, data = canonical_csr(src, dst, weight, n_nodes)
    if objective == "modularity":
        node_weight = strength(indptr, indices, data)
        two_m = float(node_weight.sum())
        if two_m == 0.0:
            return np.arange(n_nodes, dtype=np.int64) if initial is None else renumber(initial)[0]
        gamma = float(resolution) / two_m
    else:
        node_weight = np.ones(n_nodes, np.float64)
        gamma = float(resolution)
    return optimise(indptr, indices, data, node_weight, gamma, use_refinement=use_refinement,
                    n_iterations=n_iterations, state=state, initial=initial)


def _checked_settings(resolution, objective, n_iterations) -> int | None:
    """Check the optimiser's settings; returns n_iterations with −1 read as None (until stable)."""
    if objective not in OBJECTIVES:
        raise CommunityInputError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if not isinstance(resolution, numbers.Real) or not math.isfinite(resolution) or resolution < 0:
        raise CommunityInputError(f"resolution must be a finite number >= 0, got {resolution!r}")
    if n_iterations is not None and (not isinstance(n_iterations, numbers.Integral) or isinstance(n_iterations, bool)
                                     or n_iterations < -1):
        raise CommunityInputError(f"n_iterations must be an integer >= 0, or None (-1) for until stable, "
                                  f"got {n_iterations!r}")
    return None if n_iterations is None or n_iterations == -1 else int(n_iterations)


def leiden_many(node_ptr, edge_ptr, src, dst, weight, *, resolution: float = 1.0, objective: str = "modularity",
                seed: int | None = 0, n_iterations: int | None = 2, initial=None) -> tuple[np.ndarray, np.ndarray]:
    """`leiden` on each of many small graphs, with the same membership it gives each graph alone.

    Graph g has nodes 0..node_ptr[g+1]−node_ptr[g]−1 and the edges edge_ptr[g]:edge_ptr[g+1] of
    (src, dst, weight), endpoints numbered within the graph; `initial` (one label per node of all
    graphs, or None) is each graph's warm start. Every graph is run from the same seed, as separate
    `leiden` calls would be. With the CPM objective the whole batch is one Numba call
    (community._many); modularity runs graph by graph. Graphs should be small (the serial
    optimiser runs them; `leiden` would spread a large one over threads, with the same result).

    Returns
    -------
    (labels, n_labels): int64 labels per node, 0..k−1 within each graph in order of first
    appearance, and k per graph.
    """
    from keyfarm.community._many import optimise_many
    from keyfarm.community._optimiser import THETA

    n_iterations = _checked_settings(resolution, objective, n_iterations)
    node_ptr = np.ascontiguousarray(node_ptr, np.int64)
    edge_ptr = np.ascontiguousarray(edge_ptr, np.int64)
    n_graphs = node_ptr.size - 1
    if edge_ptr.size != node_ptr.size or n_graphs < 0 or np.any(np.diff(node_ptr) < 0) \
            or np.any(np.diff(edge_ptr) < 0) or node_ptr[0] != 0 or edge_ptr[0] != 0:
        raise CommunityInputError("node_ptr and edge_ptr must be non-decreasing offsets from 0, one per graph + 1")
    src, dst, weight, _ = edges_from_args(src, dst, weight, None)
    if src.size != edge_ptr[-1]:
        raise CommunityInputError(f"edge_ptr ends at {edge_ptr[-1]}, but {src.size} edges were given")
    size = np.repeat(np.diff(node_ptr), np.diff(edge_ptr))
    outside = (src >= size) | (dst >= size)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise CommunityInputError(f"edge {row} has an endpoint outside its graph's nodes",
                                  table="edges", column="src", row=row)
    if initial is not None:
        initial = membership_array(initial, int(node_ptr[-1]))
    if objective != "cpm":
        labels = np.empty(int(node_ptr[-1]), np.int64)
        n_labels = np.zeros(n_graphs, np.int64)
        for g in range(n_graphs):
            lo, hi, e = node_ptr[g], node_ptr[g + 1], slice(edge_ptr[g], edge_ptr[g + 1])
            part = leiden(src[e], dst[e], weight[e], int(hi - lo), resolution=resolution, objective=objective,
                          seed=seed, n_iterations=n_iterations,
                          initial_membership=None if initial is None else initial[lo:hi])
            labels[lo:hi] = part
            n_labels[g] = int(part.max()) + 1 if part.size else 0
        return labels, n_labels
    return optimise_many(node_ptr, edge_ptr, src, dst, weight, float(resolution), True, THETA,
                         -1 if n_iterations is None else n_iterations, make_state(seed),
                         np.zeros(0, np.int64) if initial is None else initial, initial is not None)
