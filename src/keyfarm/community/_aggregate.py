"""Aggregation of the Leiden/Louvain optimiser (community stage): the graph with one node per
cluster, on which the next level of local moving runs.

Rows of the aggregate graph are independent, so blocks of clusters are built on Numba threads;
each row lists its neighbours in the order its members' edges are met, so the result is the same
whatever the thread count.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from keyfarm.community._graph import _counting_order, balanced_blocks


@numba.njit(cache=True, nogil=True)
def aggregate(indptr, indices, data, node_weight, clusters, n_clusters, n_blocks=1):
    """Aggregate graph with one node per cluster (labels 0..n_clusters-1): summed node weights,
    summed edge weights, the weight inside a cluster as its self-loop. `n_blocks` (threads to
    spread over; 1: serial) changes the speed only, never the result."""
    n = indptr.size - 1
    start = np.zeros(n_clusters + 1, np.int64)
    for v in range(n):
        start[clusters[v] + 1] += 1
    for c in range(n_clusters):
        start[c + 1] += start[c]
    members = _counting_order(clusters, n, n_clusters)   # nodes by cluster, in node order
    cost = np.zeros(n_clusters, np.float64)
    for v in range(n):
        cost[clusters[v]] += indptr[v + 1] - indptr[v]
    # Each row gets room for its members' edges plus a self-loop, compacted afterwards.
    room = np.zeros(n_clusters + 1, np.int64)
    for c in range(n_clusters):
        room[c + 1] = room[c] + np.int64(cost[c]) + 1
    blocks = balanced_blocks(cost, n_blocks)
    new_weight = np.zeros(n_clusters, np.float64)
    row_len = np.zeros(n_clusters, np.int64)
    wide_indices = np.empty(room[n_clusters], np.int64)
    wide_data = np.empty(room[n_clusters], np.float64)
    scratch_w = np.zeros((n_blocks, n_clusters), np.float64)
    scratch_seen = np.zeros((n_blocks, n_clusters), np.bool_)
    if n_blocks > 1:
        _rows(indptr, indices, data, node_weight, clusters, start, members, room, blocks, scratch_w, scratch_seen,
              new_weight, row_len, wide_indices, wide_data)
    else:
        _rows_range(indptr, indices, data, node_weight, clusters, start, members, room, 0, n_clusters,
                    scratch_w[0], scratch_seen[0], new_weight, row_len, wide_indices, wide_data)
    new_indptr = np.zeros(n_clusters + 1, np.int64)
    for c in range(n_clusters):
        new_indptr[c + 1] = new_indptr[c] + row_len[c]
    new_indices = np.empty(new_indptr[n_clusters], np.int64)
    new_data = np.empty(new_indptr[n_clusters], np.float64)
    if n_blocks > 1:
        _compact(blocks, room, new_indptr, wide_indices, wide_data, new_indices, new_data)
    else:
        _compact_range(0, n_clusters, room, new_indptr, wide_indices, wide_data, new_indices, new_data)
    return new_indptr, new_indices, new_data, new_weight


@numba.njit(cache=True, nogil=True, parallel=True)
def _rows(indptr, indices, data, node_weight, clusters, start, members, room, blocks, scratch_w, scratch_seen,
          new_weight, row_len, wide_indices, wide_data):
    """One block of clusters per thread, each with its own scratch row."""
    for p in prange(blocks.size - 1):
        _rows_range(indptr, indices, data, node_weight, clusters, start, members, room, blocks[p], blocks[p + 1],
                    scratch_w[p], scratch_seen[p], new_weight, row_len, wide_indices, wide_data)


@numba.njit(cache=True, nogil=True)
def _rows_range(indptr, indices, data, node_weight, clusters, start, members, room, c_lo, c_hi, neigh_w, seen,
                new_weight, row_len, wide_indices, wide_data):
    """Rows c_lo..c_hi-1 of the aggregate graph, row c into wide_*[room[c]:] and its length into
    row_len[c]: the self-loop first (if any weight lies inside c), then the other clusters in the
    order first met."""
    for c in range(c_lo, c_hi):
        inside = 0.0
        w_c = 0.0
        base = room[c] + 1       # slot room[c] is kept for the self-loop
        n_neigh = 0
        for m in range(start[c], start[c + 1]):
            v = members[m]
            w_c += node_weight[v]
            for j in range(indptr[v], indptr[v + 1]):
                u = indices[j]
                d = clusters[u]
                if d == c:
                    # an edge inside c is seen from both ends, a self-loop once
                    inside += data[j] if u == v else 0.5 * data[j]
                else:
                    if not seen[d]:
                        seen[d] = True
                        wide_indices[base + n_neigh] = d
                        n_neigh += 1
                    neigh_w[d] += data[j]
        new_weight[c] = w_c
        e = room[c]
        if inside > 0.0:
            wide_indices[e] = c
            wide_data[e] = inside
            e += 1
        for k in range(base, base + n_neigh):
            d = wide_indices[k]
            wide_indices[e] = d
            wide_data[e] = neigh_w[d]
            e += 1
            neigh_w[d] = 0.0
            seen[d] = False
        row_len[c] = e - room[c]


@numba.njit(cache=True, nogil=True, parallel=True)
def _compact(blocks, room, new_indptr, wide_indices, wide_data, new_indices, new_data):
    """Copy each row from its room to its place in the compact CSR, a block of rows per thread."""
    for p in prange(blocks.size - 1):
        _compact_range(blocks[p], blocks[p + 1], room, new_indptr, wide_indices, wide_data, new_indices, new_data)


@numba.njit(cache=True, nogil=True)
def _compact_range(c_lo, c_hi, room, new_indptr, wide_indices, wide_data, new_indices, new_data):
    for c in range(c_lo, c_hi):
        src = room[c]
        for e in range(new_indptr[c], new_indptr[c + 1]):
            new_indices[e] = wide_indices[src]
            new_data[e] = wide_data[src]
            src += 1


@numba.njit(cache=True, nogil=True)
def cluster_of(clusters, membership, n_clusters):
    """For each cluster, the community (in `membership`) of its members."""
    out = np.zeros(n_clusters, np.int64)
    for v in range(clusters.size):
        out[clusters[v]] = membership[v]
    return out
