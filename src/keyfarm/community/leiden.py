"""Leiden community detection (and Louvain, the same optimiser without refinement) in Numba.

Follows Traag, Waltman & van Eck (2019), "From Louvain to Leiden: guaranteeing well-connected
communities", Sci. Rep. 9:5233: fast local moving with a queue, a randomised refinement that
merges nodes only within their community and only into well-connected subsets (so every community
is connected), aggregation on the refined partition with the unrefined one as the starting point.

The quality is modularity with a resolution γ, or CPM (igraph's scaling; see quality.py). Both are
Σ_c [L_c − g · M_c²/2]-shaped, so one kernel serves both: a node's mass is its strength and
g = γ/2m for modularity, its size and g = γ for CPM.
"""
from __future__ import annotations

import numba
import numpy as np

from keyfarm.community._graph import canonical_csr, make_state, rand_uniform, relabel, shuffled, unpack


@numba.njit(cache=True, nogil=True)
def _local_move(indptr, indices, data, mass, g, memb, state):
    """Move nodes to the neighbouring community of largest gain until none improves (queue based).
    Returns the number of moves."""
    n = indptr.size - 1
    comm_mass = np.zeros(n)
    for u in range(n):
        comm_mass[memb[u]] += mass[u]
    empty = np.empty(n, np.int64)
    n_empty = 0
    used = np.zeros(n, np.bool_)
    for u in range(n):
        used[memb[u]] = True
    for c in range(n - 1, -1, -1):
        if not used[c]:
            empty[n_empty] = c
            n_empty += 1
    queue = shuffled(n, state)
    in_queue = np.ones(n, np.bool_)
    head, size = 0, n
    acc = np.zeros(n)
    seen = np.zeros(n, np.bool_)
    neigh = np.empty(n, np.int64)
    moves = 0
    while size > 0:
        v = queue[head]
        head = (head + 1) % n
        size -= 1
        in_queue[v] = False
        cv = memb[v]
        nl = 0
        for e in range(indptr[v], indptr[v + 1]):
            u = indices[e]
            if u == v:
                continue
            c = memb[u]
            if not seen[c]:
                seen[c] = True
                neigh[nl] = c
                nl += 1
            acc[c] += data[e]
        comm_mass[cv] -= mass[v]
        best_c = cv
        best_gain = acc[cv] - g * mass[v] * comm_mass[cv]
        for i in range(nl):
            c = neigh[i]
            gain = acc[c] - g * mass[v] * comm_mass[c]
            if gain > best_gain:
                best_gain = gain
                best_c = c
        if best_gain < 0.0 and comm_mass[cv] > 0.0 and n_empty > 0:
            n_empty -= 1
            best_c = empty[n_empty]
        for i in range(nl):
            acc[neigh[i]] = 0.0
            seen[neigh[i]] = False
        memb[v] = best_c
        comm_mass[best_c] += mass[v]
        if best_c != cv:
            moves += 1
            if comm_mass[cv] <= 0.0:
                comm_mass[cv] = 0.0
                empty[n_empty] = cv
                n_empty += 1
            for e in range(indptr[v], indptr[v + 1]):
                u = indices[e]
                if u != v and not in_queue[u] and memb[u] != best_c:
                    queue[(head + size) % n] = u
                    size += 1
                    in_queue[u] = True
    return moves


@numba.njit(cache=True, nogil=True)
def _refine(indptr, indices, data, mass, g, memb, state, theta):
    """Refined partition inside each community of `memb`: singletons merged, in random order, into
    well-connected refined communities, chosen with probability ∝ exp(gain/θ)."""
    n = indptr.size - 1
    refined = np.arange(n)
    r_mass = mass.copy()
    r_size = np.ones(n, np.int64)
    s_mass = np.zeros(n)
    for u in range(n):
        s_mass[memb[u]] += mass[u]
    ext = np.zeros(n)  # weight from each refined community to the rest of its community
    for u in range(n):
        for e in range(indptr[u], indptr[u + 1]):
            w = indices[e]
            if w != u and memb[w] == memb[u]:
                ext[u] += data[e]
    acc = np.zeros(n)
    seen = np.zeros(n, np.bool_)
    neigh = np.empty(n, np.int64)
    gains = np.empty(n)
    order = shuffled(n, state)
    for i in range(n):
        v = order[i]
        if refined[v] != v or r_size[v] != 1:
            continue
        s = memb[v]
        if ext[v] < g * mass[v] * (s_mass[s] - mass[v]):
            continue  # v is not well connected to its community
        nl = 0
        for e in range(indptr[v], indptr[v + 1]):
            u = indices[e]
            if u == v or memb[u] != s:
                continue
            c = refined[u]
            if not seen[c]:
                seen[c] = True
                neigh[nl] = c
                nl += 1
            acc[c] += data[e]
        best = 0.0
        nc = 0
        for j in range(nl):
            c = neigh[j]
            gain = acc[c] - g * mass[v] * r_mass[c]
            if gain >= 0.0 and ext[c] >= g * r_mass[c] * (s_mass[s] - r_mass[c]):
                neigh[nc] = c
                gains[nc] = gain
                nc += 1
                if gain > best:
                    best = gain
            else:
                acc[c] = 0.0
                seen[c] = False
        if nc > 0:
            total = 1.0  # staying alone: gain 0
            for j in range(nc):
                gains[j] = np.exp((gains[j] - best) / theta) if theta > 0 else (1.0 if gains[j] == best else 0.0)
                total += gains[j]
            stay = np.exp(-best / theta) if theta > 0 else (1.0 if best == 0.0 else 0.0)
            total = total - 1.0 + stay
            r = rand_uniform(state) * total
            chosen = -1
            cum = stay
            if r >= cum:
                for j in range(nc):
                    cum += gains[j]
                    if r < cum:
                        chosen = neigh[j]
                        break
                if chosen < 0:
                    chosen = neigh[nc - 1]
            if chosen >= 0:
                k_vc = acc[chosen]
                refined[v] = chosen
                r_mass[chosen] += mass[v]
                r_size[chosen] += 1
                ext[chosen] = ext[chosen] + ext[v] - 2.0 * k_vc
                r_mass[v] = 0.0
                r_size[v] = 0
        for j in range(nc):
            acc[neigh[j]] = 0.0
            seen[neigh[j]] = False
    return refined


@numba.njit(cache=True, nogil=True)
def _aggregate(indptr, indices, data, mass, part, k):
    """Graph of the communities of `part` (labels 0..k-1): edge weights summed, internal weight
    kept as a self-loop, masses summed."""
    n = indptr.size - 1
    count = np.zeros(k + 1, np.int64)
    for u in range(n):
        count[part[u] + 1] += 1
    start = np.cumsum(count)
    members = np.empty(n, np.int64)
    fill = start[:-1].copy()
    for u in range(n):
        members[fill[part[u]]] = u
        fill[part[u]] += 1
    new_mass = np.zeros(k)
    for u in range(n):
        new_mass[part[u]] += mass[u]
    acc = np.zeros(k)
    seen = np.zeros(k, np.bool_)
    neigh = np.empty(k, np.int64)
    out_ptr = np.zeros(k + 1, np.int64)
    cap = max(indices.size, 1)
    out_idx = np.empty(cap, np.int64)
    out_w = np.empty(cap)
    nnz = 0
    for c in range(k):
        nl = 0
        for i in range(start[c], start[c + 1]):
            u = members[i]
            for e in range(indptr[u], indptr[u + 1]):
                v = indices[e]
                d = part[v]
                w = data[e]
                if d == c and v != u:
                    w = w / 2.0  # an internal edge is seen from both ends
                if not seen[d]:
                    seen[d] = True
                    neigh[nl] = d
                    nl += 1
                acc[d] += w
        sorted_neigh = np.sort(neigh[:nl])
        for j in range(nl):
            d = sorted_neigh[j]
            out_idx[nnz] = d
            out_w[nnz] = acc[d]
            nnz += 1
            acc[d] = 0.0
            seen[d] = False
        out_ptr[c + 1] = nnz
    return out_ptr, out_idx[:nnz].copy(), out_w[:nnz].copy(), new_mass


@numba.njit(cache=True, nogil=True)
def _relabel_first(memb):
    n = memb.size
    label = np.full(n + 1, -1, np.int64)
    out = np.empty(n, np.int64)
    k = 0
    for i in range(n):
        c = memb[i]
        if label[c] < 0:
            label[c] = k
            k += 1
        out[i] = label[c]
    return out, k


def _one_pass(indptr, indices, data, mass, g, init, refine, state, theta):
    """One multilevel pass from an initial partition; returns the membership of the original nodes."""
    n = indptr.size - 1
    node_map = np.arange(n)
    memb, _ = _relabel_first(init.copy())
    cur = (indptr, indices, data, mass)
    while True:
        _local_move(cur[0], cur[1], cur[2], cur[3], g, memb, state)
        memb, k = _relabel_first(memb)
        n_cur = cur[0].size - 1
        if k == n_cur:
            break
        if refine:
            part, kr = _relabel_first(_refine(cur[0], cur[1], cur[2], cur[3], g, memb, state, theta))
        else:
            part, kr = memb, k
        if kr == n_cur:
            break
        agg_memb = np.empty(kr, np.int64)
        agg_memb[part] = memb
        cur = _aggregate(cur[0], cur[1], cur[2], cur[3], part, kr)
        node_map = part[node_map]
        memb = agg_memb if refine else np.arange(kr)
    return memb[node_map]


def _optimise(src, dst, weight, n_nodes, resolution, objective, seed, n_iterations, refine,
              node_sizes=None):
    if objective not in ("modularity", "cpm"):
        raise ValueError("objective must be 'modularity' or 'cpm'")
    if resolution < 0:
        raise ValueError("resolution must be non-negative")
    src, dst, weight, n_nodes = unpack(src, dst, weight, n_nodes)
    if n_nodes == 0:
        return np.zeros(0, np.int64)
    indptr, indices, data = canonical_csr(src, dst, weight, n_nodes)
    strength = np.bincount(np.repeat(np.arange(n_nodes), np.diff(indptr)), weights=data,
                           minlength=n_nodes)
    loops = np.zeros(n_nodes)
    rows = np.repeat(np.arange(n_nodes), np.diff(indptr))
    is_loop = rows == indices
    np.add.at(loops, rows[is_loop], data[is_loop])
    strength = strength + loops  # a self-loop counts twice towards strength
    two_m = strength.sum()
    if two_m == 0:
        return np.arange(n_nodes, dtype=np.int64)
    if objective == "modularity":
        mass, g = strength, resolution / two_m
    else:
        mass = np.ones(n_nodes) if node_sizes is None else np.asarray(node_sizes, np.float64)
        g = float(resolution)
    state = make_state(seed)
    memb = np.arange(n_nodes, dtype=np.int64)
    iterations = 0
    while True:
        new = _one_pass(indptr, indices, data, mass, g, memb, refine, state, 0.01)
        iterations += 1
        stable = np.array_equal(relabel(new), relabel(memb))
        memb = new
        if stable or (n_iterations is not None and 0 < n_iterations <= iterations):
            break
    return relabel(memb)


def leiden(src, dst=None, weight=None, n_nodes=None, *, resolution: float = 1.0,
           objective: str = "modularity", seed: int | None = 0, n_iterations: int = -1,
           node_sizes=None) -> np.ndarray:
    """Communities by the Leiden algorithm; every community induces a connected subgraph.

    Parameters
    ----------
    src, dst, weight, n_nodes : undirected edges given once each (duplicates are summed), or a
        KeyGraph-like object (attributes src, dst, weight, n_nodes) as `src`.
    resolution : γ of modularity, or the density threshold of CPM.
    objective : "modularity" or "cpm" (igraph's CPM scaling).
    seed : same seed, same membership; None draws fresh entropy.
    n_iterations : passes of the algorithm; −1 repeats until the partition is stable.
    node_sizes : CPM node sizes (default 1 each).

    Returns
    -------
    membership : int64 array, labels 0..k−1 in order of first appearance.

    References
    ----------
    V. A. Traag, L. Waltman, N. J. van Eck (2019), From Louvain to Leiden: guaranteeing
    well-connected communities. Scientific Reports 9, 5233.

    Example
    -------
    >>> leiden([0, 1, 2, 3, 4, 5, 2], [1, 2, 0, 4, 5, 3, 3], n_nodes=6).tolist()
    [0, 0, 0, 1, 1, 1]
    """
    return _optimise(src, dst, weight, n_nodes, resolution, objective, seed, n_iterations, True,
                     node_sizes)


def louvain(src, dst=None, weight=None, n_nodes=None, *, resolution: float = 1.0,
            objective: str = "modularity", seed: int | None = 0, n_iterations: int = -1,
            node_sizes=None) -> np.ndarray:
    """Communities by Louvain (Blondel et al. 2008): Leiden's optimiser without refinement, so a
    community may be internally disconnected. Same parameters and result as `leiden`."""
    return _optimise(src, dst, weight, n_nodes, resolution, objective, seed, n_iterations, False,
                     node_sizes)
