"""Community detection one connected component at a time, by a rule a partitioned engine can follow.

A community never spans two components, but an optimiser run on the whole graph draws one random
node order and one stream of refinement choices for all components together, so its result on a
component depends on the rest of the graph (on a 50k-key world, Leiden on the whole account graph
and Leiden per component differ in the giant component). The rule here makes each component's
partition a function of that component alone: its nodes numbered 0..n−1 in ascending order, its
edges as given (the optimisers ignore edge order), and the job's seed unchanged. The Spark engine
runs `component_communities` in one group per component and gets the same partition.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from keyfarm.community._optimiser import PARALLEL_MIN_EDGES
from keyfarm.community.components import connected_components


# Components up to this size go to `detect.batch` together: the serial optimiser runs them (the
# parallel one starts only on levels of PARALLEL_MIN_EDGES stored edges, which these never reach).
BATCH_MAX_NODES = 2000
BATCH_MAX_STORED_EDGES = PARALLEL_MIN_EDGES


def component_communities(nodes: np.ndarray, src: np.ndarray, dst: np.ndarray, weight: np.ndarray,
                          detect: Callable, initial: np.ndarray | None = None) -> np.ndarray:
    """Labels 0..k−1 of one component's `nodes` (any ids; sorted here) from its edges (ids of
    `nodes`): `detect(src, dst, weight, n_nodes, initial)` on the nodes renumbered in ascending
    order. `initial` (per node of the sorted `nodes`, or None) is a warm start."""
    nodes = np.asarray(nodes, np.int64)
    if nodes.size and np.any(nodes[1:] <= nodes[:-1]):
        raise ValueError("component nodes must be sorted and distinct")
    local_src = np.searchsorted(nodes, np.asarray(src, np.int64))
    local_dst = np.searchsorted(nodes, np.asarray(dst, np.int64))
    return np.asarray(detect(local_src, local_dst, np.asarray(weight, np.float64), nodes.size, initial), np.int64)


def communities_by_component(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n_nodes: int,
                             detect: Callable, initial: np.ndarray | None = None,
                             component: np.ndarray | None = None) -> np.ndarray:
    """Labels 0..k−1 of nodes 0..n_nodes−1: `detect` run by component_communities on each connected
    component (`component`: labels if already known), labels numbered component after component
    (components in order of their smallest node). `initial` (per node, or None) is a warm start.

    When `detect` has a `batch` attribute (as pipeline.component_leiden's has: leiden_many with the
    same settings), the small components (at most BATCH_MAX_NODES nodes) go to it in one call,
    numbered as component_communities numbers them; it must give each the labels `detect` would.
    """
    src = np.asarray(src, np.int64)
    dst = np.asarray(dst, np.int64)
    weight = np.asarray(weight, np.float64)
    comp = connected_components(src, dst, n_nodes) if component is None else np.asarray(component, np.int64)
    out = np.empty(n_nodes, np.int64)
    if n_nodes == 0:
        return out
    n_comp = int(comp.max()) + 1
    size = np.bincount(comp, minlength=n_comp)
    node_order = np.argsort(comp, kind="stable")            # ascending nodes within each component
    node_starts = np.concatenate([[0], np.cumsum(size)])
    edge_comp = comp[src]
    edge_order = np.argsort(edge_comp, kind="stable")
    edge_starts = np.searchsorted(edge_comp[edge_order], np.arange(n_comp + 1))
    n_labels = np.ones(n_comp, np.int64)                    # a lone node is one community
    local = np.zeros(n_nodes, np.int64)                     # each node's label within its component
    batch = getattr(detect, "batch", None)
    small = np.zeros(n_comp, bool) if batch is None else \
        (size >= 2) & (size <= BATCH_MAX_NODES) & (2 * np.diff(edge_starts) < BATCH_MAX_STORED_EDGES)
    position = np.empty(n_nodes, np.int64)                 # rank of each node within its component
    position[node_order] = np.arange(n_nodes) - np.repeat(node_starts[:-1], size)
    if small.any():
        local[:] = _batch_communities(src, dst, weight, comp, small, size, position, node_order, edge_order,
                                      edge_comp, np.diff(edge_starts), batch, initial, n_labels)
    for c in np.flatnonzero((size > 1) & ~small):
        nodes = node_order[node_starts[c]:node_starts[c + 1]]
        e = edge_order[edge_starts[c]:edge_starts[c + 1]]
        # component_communities' numbering (nodes ascending), by the ranks known here
        labels = np.asarray(detect(position[src[e]], position[dst[e]], weight[e], nodes.size,
                                   None if initial is None else initial[nodes]), np.int64)
        local[nodes] = labels
        n_labels[c] = int(labels.max()) + 1
    first = np.full(n_comp, n_nodes, np.int64)
    np.minimum.at(first, comp, np.arange(n_nodes))
    order = np.argsort(first, kind="stable")
    offset = np.empty(n_comp, np.int64)
    offset[order] = np.concatenate([[0], np.cumsum(n_labels[order])[:-1]])
    out[:] = local + offset[comp]
    return out



def _batch_communities(src, dst, weight, comp, small, size, position, node_order, edge_order, edge_comp,
                       edge_counts, batch, initial, n_labels) -> np.ndarray:
    """Labels within their component of the nodes of the `small` components, by one `batch` call
    on them numbered as component_communities numbers them (nodes ascending, edges in input order;
    `position`: each node's rank in its component); sets their n_labels. Other nodes get 0."""
    nodes = node_order[small[comp[node_order]]]
    edges = edge_order[small[edge_comp[edge_order]]]
    chosen = np.flatnonzero(small)
    node_ptr = np.concatenate([[0], np.cumsum(size[chosen])])
    edge_ptr = np.concatenate([[0], np.cumsum(edge_counts[chosen])])
    labels, k = batch(node_ptr, edge_ptr, position[src[edges]], position[dst[edges]], weight[edges],
                      initial=None if initial is None else initial[nodes])
    n_labels[chosen] = k
    local = np.zeros(comp.size, np.int64)
    local[nodes] = labels
    return local
