"""Local moving of the Leiden/Louvain optimiser (community stage): nodes move to the neighbouring
community of largest gain in H = Σ_c [ L_c − γ' K_c² / 2 ] (see `_optimiser`).

Two kernels. `move_nodes` is the serial fast local moving of Traag et al. (2019): a queue in random
order, a moved node's neighbours re-queued. `move_nodes_parallel` spreads the work over Numba
threads as GVE-Leiden does (Sahu, arXiv 2312.13936: evaluate nodes in parallel, revisit only the
neighbours of moved nodes), but deterministically: nodes are taken one colour class of a seeded
greedy colouring at a time, their best moves found in parallel against a frozen state and then
committed serially in a fixed order, each re-checked. Its membership depends on the seed and the
graph only, never on the thread count or timing. Starting a parallel loop costs ~10 µs (far more
when other processes hold the cores), so work is handed to threads a colour at a time, never per
node or per small batch.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from keyfarm.community._graph import balanced_blocks, rand_next, shuffled

# Graphs with at least this many nodes would use colour-parallel local moving (aggregate graphs
# are small and dense: colour classes would be many and small); a function of the graph only, so
# never of the thread count. None: the serial queue everywhere, the default since on the 1M-key
# world's account graph (708k accounts) colour order lost 0.0023 modularity at 2 iterations
# (0.81679 against the queue's 0.81908 and igraph's 0.81905; CPM γ=0.2 equal to igraph's).
PARALLEL_MIN_NODES = None
# A colour class (or a set of moved nodes) with fewer edges than this to scan runs serially: the
# work would not repay starting the threads. Speed only: the result is the same either way.
MIN_PARALLEL_WORK = 50_000


@numba.njit(cache=True, nogil=True)
def move_gain(indptr, indices, data, node_weight, membership, comm_weight, gamma, v, target):
    """Change of H when node v moves from its community to `target` (comm_weight includes v)."""
    a = membership[v]
    if a == target:
        return 0.0
    kv = node_weight[v]
    w_a = 0.0
    w_t = 0.0
    for j in range(indptr[v], indptr[v + 1]):
        u = indices[j]
        if u == v:
            continue
        c = membership[u]
        if c == a:
            w_a += data[j]
        elif c == target:
            w_t += data[j]
    return (w_t - gamma * kv * comm_weight[target]) - (w_a - gamma * kv * (comm_weight[a] - kv))


@numba.njit(cache=True, nogil=True)
def best_move(indptr, indices, data, node_weight, membership, comm_weight, gamma, v, neigh_w, seen, neigh):
    """Best neighbouring community of v against `comm_weight` (which includes v), ties to the first
    seen: (community, w(v, community), w(v, own community), v's strength to others). Scores are
    w(v, c) − γ' k_v K_c, with K of v's own community taken without v. `neigh_w`, `seen` and
    `neigh` are scratch arrays (one slot per community), left cleared."""
    a = membership[v]
    kv = node_weight[v]
    neigh[0] = a
    seen[a] = True
    n_neigh = 1
    wv = 0.0
    for j in range(indptr[v], indptr[v + 1]):
        u = indices[j]
        if u == v:
            continue
        c = membership[u]
        if not seen[c]:
            seen[c] = True
            neigh[n_neigh] = c
            n_neigh += 1
        neigh_w[c] += data[j]
        wv += data[j]
    w_own = neigh_w[a]
    best = a
    best_score = w_own - gamma * kv * (comm_weight[a] - kv)
    for i in range(1, n_neigh):
        c = neigh[i]
        score = neigh_w[c] - gamma * kv * comm_weight[c]
        if score > best_score:
            best = c
            best_score = score
    w_best = neigh_w[best]
    for i in range(n_neigh):
        c = neigh[i]
        neigh_w[c] = 0.0
        seen[c] = False
    return best, w_best, w_own, wv


@numba.njit(cache=True, nogil=True)
def _community_totals(node_weight, membership):
    """Summed node weight and size of each community, total node weight, stack of empty labels."""
    n = node_weight.size
    comm_weight = np.zeros(n, np.float64)
    comm_size = np.zeros(n, np.int64)
    total_weight = 0.0
    for v in range(n):
        comm_weight[membership[v]] += node_weight[v]
        comm_size[membership[v]] += 1
        total_weight += node_weight[v]
    empty = np.empty(n, np.int64)
    n_empty = 0
    for c in range(n - 1, -1, -1):
        if comm_size[c] == 0:
            empty[n_empty] = c
            n_empty += 1
    return comm_weight, comm_size, total_weight, empty, n_empty


@numba.njit(cache=True, nogil=True)
def _decide(kv, a, best, w_best, w_own, wv, comm_weight, comm_size, total_weight, gamma, n_empty):
    """(target, gain) of v's move given its best neighbouring community and the current totals;
    target −1 means "a fresh empty community", target == a means stay. A move must beat staying by
    more than rounding error, so moves never cycle."""
    stay = w_own - gamma * kv * (comm_weight[a] - kv)
    best_score = stay
    target = a
    if best != a:
        score = w_best - gamma * kv * comm_weight[best]
        if score > stay:
            best_score = score
            target = best
    if comm_size[a] > 1 and 0.0 > best_score and n_empty > 0:
        best_score = 0.0
        target = -1
    tol = 1e-12 * (wv + gamma * kv * total_weight)
    if target != a and best_score - stay > tol:
        return target, best_score - stay
    return a, 0.0


@numba.njit(cache=True, nogil=True)
def _apply_move(v, a, target, kv, membership, comm_weight, comm_size, empty, n_empty):
    """Move v (weight kv) from community a to `target` (−1: a fresh empty one), keeping the totals
    and the stack of empty labels; returns (the community v joined, the new number of empty labels)."""
    if target < 0:
        n_empty -= 1
        target = empty[n_empty]
    comm_weight[a] -= kv
    comm_size[a] -= 1
    if comm_size[a] == 0:
        empty[n_empty] = a
        n_empty += 1
    comm_weight[target] += kv
    comm_size[target] += 1
    membership[v] = target
    return target, n_empty


@numba.njit(cache=True, nogil=True)
def move_nodes(indptr, indices, data, node_weight, membership, gamma, state):
    """Fast local moving (Traag et al. 2019, Alg. A.2): visit nodes from a queue in random order, move
    each to the community of largest gain (an empty one included) if that strictly improves H, and
    re-queue the moved node's neighbours outside its new community. Updates `membership` (labels
    0..n-1) in place; returns the total gain in H."""
    n = indptr.size - 1
    comm_weight, comm_size, total_weight, empty, n_empty = _community_totals(node_weight, membership)
    neigh_w = np.zeros(n, np.float64)
    seen = np.zeros(n, np.bool_)
    neigh = np.empty(n, np.int64)
    queue = shuffled(n, state)
    in_queue = np.ones(n, np.bool_)
    head = 0
    count = n
    total_gain = 0.0
    while count > 0:
        v = queue[head]
        head += 1
        if head == n:
            head = 0
        count -= 1
        in_queue[v] = False
        a = membership[v]
        kv = node_weight[v]
        best, w_best, w_own, wv = best_move(indptr, indices, data, node_weight, membership, comm_weight,
                                            gamma, v, neigh_w, seen, neigh)
        target, gain = _decide(kv, a, best, w_best, w_own, wv, comm_weight, comm_size, total_weight,
                               gamma, n_empty)
        if target == a:
            continue
        target, n_empty = _apply_move(v, a, target, kv, membership, comm_weight, comm_size, empty, n_empty)
        total_gain += gain
        for j in range(indptr[v], indptr[v + 1]):
            u = indices[j]
            if not in_queue[u] and membership[u] != target:
                in_queue[u] = True
                tail = head + count
                if tail >= n:
                    tail -= n
                queue[tail] = u
                count += 1
    return total_gain


@numba.njit(cache=True, nogil=True)
def colour_classes(indptr, indices, order):
    """Greedy colouring in `order` (each node the smallest colour none of its neighbours has):
    (start, members), the nodes of colour k being members[start[k]:start[k+1]] in `order` order.
    Nodes of one colour are never adjacent."""
    n = indptr.size - 1
    max_degree = 0
    for v in range(n):
        max_degree = max(max_degree, indptr[v + 1] - indptr[v])
    colour = np.full(n, -1, np.int64)
    taken_by = np.full(max_degree + 2, -1, np.int64)
    n_colours = 0
    for v in order:
        for j in range(indptr[v], indptr[v + 1]):
            k = colour[indices[j]]
            if k >= 0:
                taken_by[k] = v
        k = 0
        while taken_by[k] == v:
            k += 1
        colour[v] = k
        n_colours = max(n_colours, k + 1)
    start = np.zeros(n_colours + 1, np.int64)
    for v in range(n):
        start[colour[v] + 1] += 1
    for k in range(n_colours):
        start[k + 1] += start[k]
    fill = start[:-1].copy()
    members = np.empty(n, np.int64)
    for v in order:
        members[fill[colour[v]]] = v
        fill[colour[v]] += 1
    return start, members


@numba.njit(cache=True, nogil=True)
def _propose_range(lo, hi, indptr, indices, data, node_weight, membership, comm_weight, gamma, batch,
                   neigh_w, seen, neigh, best, w_best, w_own, wv):
    """Best move of each of batch[lo:hi] against the frozen state."""
    for i in range(lo, hi):
        best[i], w_best[i], w_own[i], wv[i] = best_move(indptr, indices, data, node_weight, membership,
                                                        comm_weight, gamma, batch[i], neigh_w, seen, neigh)


@numba.njit(cache=True, nogil=True, parallel=True)
def _propose(blocks, indptr, indices, data, node_weight, membership, comm_weight, gamma, batch,
             scratch_w, scratch_seen, scratch_neigh, best, w_best, w_own, wv):
    """`_propose_range` over blocks of the batch, one block and one scratch row per thread."""
    for p in prange(blocks.size - 1):
        _propose_range(blocks[p], blocks[p + 1], indptr, indices, data, node_weight, membership, comm_weight,
                       gamma, batch, scratch_w[p], scratch_seen[p], scratch_neigh[p], best, w_best, w_own, wv)


@numba.njit(cache=True, nogil=True)
def _mark_range(lo, hi, indptr, indices, membership, moved, affected):
    """Flag the neighbours of moved[lo:hi] that lie outside the mover's new community."""
    for i in range(lo, hi):
        v = moved[i]
        c = membership[v]
        for j in range(indptr[v], indptr[v + 1]):
            u = indices[j]
            if membership[u] != c:
                affected[u] = True


@numba.njit(cache=True, nogil=True, parallel=True)
def _mark(blocks, indptr, indices, membership, moved, affected):
    """`_mark_range` over blocks, one per thread. Every writer writes True, so the flags do not
    depend on which thread writes first."""
    for p in prange(blocks.size - 1):
        _mark_range(blocks[p], blocks[p + 1], indptr, indices, membership, moved, affected)


@numba.njit(cache=True, nogil=True)
def move_nodes_parallel(indptr, indices, data, node_weight, membership, gamma, state, n_threads, min_work,
                        start, members):
    """Local moving as `move_nodes`, spread over `n_threads` threads (see the module docstring).

    (start, members) is a colouring of the graph (`colour_classes`); each call visits the nodes of
    a colour in a fresh seeded order. A sweep takes the colours one at a time and,
    of each, the nodes marked affected (all at first; later the neighbours of moved nodes outside
    the mover's new community). Nodes of one colour are not adjacent, so their best moves, found in
    parallel against the state frozen at the colour's start, see exact edge weights; the moves are
    committed one by one, each re-checked against the current community totals, so each strictly
    raises H. Sweeps repeat until one moves nothing. A colour with less than `min_work` edges to
    scan runs serially, which is faster and gives the same result: neither `n_threads` nor
    `min_work` changes the membership. Updates `membership` (labels 0..n-1) in place; returns the
    total gain in H."""
    n = indptr.size - 1
    comm_weight, comm_size, total_weight, empty, n_empty = _community_totals(node_weight, membership)
    members = members.copy()
    for k in range(start.size - 1):           # Fisher-Yates within each colour
        lo = start[k]
        for i in range(start[k + 1] - 1, lo, -1):
            j = lo + np.int64(rand_next(state) % np.uint64(i - lo + 1))
            members[i], members[j] = members[j], members[i]
    affected = np.ones(n, np.bool_)
    scratch_w = np.zeros((n_threads, n), np.float64)
    scratch_seen = np.zeros((n_threads, n), np.bool_)
    scratch_neigh = np.empty((n_threads, n), np.int64)
    batch = np.empty(n, np.int64)
    cost = np.empty(n, np.float64)
    best = np.empty(n, np.int64)
    w_best = np.empty(n, np.float64)
    w_own = np.empty(n, np.float64)
    wv = np.empty(n, np.float64)
    moved = np.empty(n, np.int64)
    moved_cost = np.empty(n, np.float64)
    total_gain = 0.0
    any_moved = True
    while any_moved:
        any_moved = False
        for k in range(start.size - 1):
            b = 0
            work = 0
            for m in range(start[k], start[k + 1]):
                v = members[m]
                if affected[v]:
                    affected[v] = False
                    batch[b] = v
                    cost[b] = indptr[v + 1] - indptr[v]
                    work += indptr[v + 1] - indptr[v]
                    b += 1
            if b == 0:
                continue
            if n_threads > 1 and work >= min_work:
                _propose(balanced_blocks(cost[:b], n_threads), indptr, indices, data, node_weight, membership,
                         comm_weight, gamma, batch, scratch_w, scratch_seen, scratch_neigh, best, w_best, w_own, wv)
            else:
                _propose_range(0, b, indptr, indices, data, node_weight, membership, comm_weight, gamma, batch,
                               scratch_w[0], scratch_seen[0], scratch_neigh[0], best, w_best, w_own, wv)
            n_moved = 0
            work = 0
            for i in range(b):
                v = batch[i]
                a = membership[v]
                kv = node_weight[v]
                target, gain = _decide(kv, a, best[i], w_best[i], w_own[i], wv[i], comm_weight, comm_size,
                                       total_weight, gamma, n_empty)
                if target == a:
                    continue
                target, n_empty = _apply_move(v, a, target, kv, membership, comm_weight, comm_size, empty, n_empty)
                total_gain += gain
                moved[n_moved] = v
                moved_cost[n_moved] = cost[i]
                work += cost[i]
                n_moved += 1
            if n_moved == 0:
                continue
            any_moved = True
            if n_threads > 1 and work >= min_work:
                _mark(balanced_blocks(moved_cost[:n_moved], n_threads), indptr, indices, membership, moved, affected)
            else:
                _mark_range(0, n_moved, indptr, indices, membership, moved, affected)
    return total_gain
