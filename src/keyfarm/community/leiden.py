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
    if objective not in OBJECTIVES:
        raise CommunityInputError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if not isinstance(resolution, numbers.Real) or not math.isfinite(resolution) or resolution < 0:
        raise CommunityInputError(f"resolution must be a finite number >= 0, got {resolution!r}")
    if n_iterations is not None and (not isinstance(n_iterations, numbers.Integral) or isinstance(n_iterations, bool)
                                     or n_iterations < -1):
        raise CommunityInputError(f"n_iterations must be an integer >= 0, or None (-1) for until stable, "
                                  f"got {n_iterations!r}")
    if n_iterations is not None:
        n_iterations = None if n_iterations == -1 else int(n_iterations)
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
