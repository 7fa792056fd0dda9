"""The Leiden/Louvain optimiser of the community stage: fast local moving, refinement, aggregation.

One objective covers modularity and CPM (as in leidenalg, objectives are kept apart from the
optimiser): maximise H = Σ_c [ L_c − γ' K_c² / 2 ], with L_c the edge weight inside c (each edge
once, self-loops included) and K_c the summed node weight of c.
  * modularity with resolution γ: node weight = strength, γ' = γ / 2m  (then Q = H / m);
  * CPM with resolution γ: node weight = 1, γ' = γ                     (then igraph's CPM = H / m).
Moving node v (weight k_v) out of its community into c changes H by w(v, c) − γ' k_v K_c, minus the
same term for the community it leaves (with v already taken out). All kernels are serial: local
moving is inherently sequential, and the CSR and aggregation passes are memory-bound on 2 cores.
"""
from __future__ import annotations

import numba
import numpy as np

from keyfarm.community._graph import rand_uniform, renumber, shuffled

# Randomness of the refinement step (θ in Traag et al. 2019; igraph's `beta`, default 0.01).
THETA = 0.01


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
def move_nodes(indptr, indices, data, node_weight, membership, gamma, state):
    """Fast local moving (Traag et al. 2019, Alg. A.2): visit nodes from a queue in random order, move
    each to the community of largest gain (an empty one included) if that strictly improves H, and
    re-queue the moved node's neighbours outside its new community. Updates `membership` (labels
    0..n-1) in place; returns the total gain in H."""
    n = indptr.size - 1
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
        comm_weight[a] -= kv
        stay = neigh_w[a] - gamma * kv * comm_weight[a]
        best = a
        best_score = stay
        for i in range(1, n_neigh):
            c = neigh[i]
            score = neigh_w[c] - gamma * kv * comm_weight[c]
            if score > best_score:
                best = c
                best_score = score
        for i in range(n_neigh):
            c = neigh[i]
            neigh_w[c] = 0.0
            seen[c] = False
        to_empty = False
        if comm_size[a] > 1 and 0.0 > best_score and n_empty > 0:
            best = empty[n_empty - 1]
            best_score = 0.0
            to_empty = True
        tol = 1e-12 * (wv + gamma * kv * total_weight)
        if best != a and best_score - stay > tol:
            if to_empty:
                n_empty -= 1
            comm_size[a] -= 1
            if comm_size[a] == 0:
                empty[n_empty] = a
                n_empty += 1
            comm_weight[best] += kv
            comm_size[best] += 1
            membership[v] = best
            total_gain += best_score - stay
            for j in range(indptr[v], indptr[v + 1]):
                u = indices[j]
                if not in_queue[u] and membership[u] != best:
                    in_queue[u] = True
                    tail = head + count
                    if tail >= n:
                        tail -= n
                    queue[tail] = u
                    count += 1
        else:
            comm_weight[a] += kv
    return total_gain


@numba.njit(cache=True, nogil=True)
def refine(indptr, indices, data, node_weight, membership, gamma, theta, state):
    """Refinement (Traag et al. 2019, Alg. A.3): inside each community of `membership`, start from
    singletons and merge each still-singleton, well-connected node into a well-connected refined
    cluster of its community, chosen at random with probability ∝ exp(gain / θ) among non-negative
    gains. Merges follow edges, so every refined cluster is connected. Returns refined labels."""
    n = indptr.size - 1
    comm_weight = np.zeros(n, np.float64)
    for v in range(n):
        comm_weight[membership[v]] += node_weight[v]
    refined = np.arange(n)
    r_weight = node_weight.copy()
    r_ext = np.zeros(n, np.float64)   # weight from a refined cluster to the rest of its community
    for v in range(n):
        c = membership[v]
        s = 0.0
        for j in range(indptr[v], indptr[v + 1]):
            u = indices[j]
            if u != v and membership[u] == c:
                s += data[j]
        r_ext[v] = s
    singleton = np.ones(n, np.bool_)
    neigh_w = np.zeros(n, np.float64)
    seen = np.zeros(n, np.bool_)
    neigh = np.empty(n, np.int64)
    gains = np.empty(n, np.float64)
    order = shuffled(n, state)
    for i in range(n):
        v = order[i]
        if not singleton[v]:
            continue
        c = membership[v]
        kv = node_weight[v]
        k_c = comm_weight[c]
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
                neigh[n_neigh] = t
                n_neigh += 1
            neigh_w[t] += data[j]
        # Candidates: v itself (gain 0) and well-connected clusters with gain >= 0.
        best = 0.0
        n_cand = 0
        for k in range(n_neigh):
            t = neigh[k]
            g = neigh_w[t] - gamma * kv * r_weight[t]
            if g >= 0.0 and r_ext[t] >= gamma * r_weight[t] * (k_c - r_weight[t]):
                neigh[n_cand] = t
                gains[n_cand] = g
                n_cand += 1
                if g > best:
                    best = g
            else:
                neigh_w[t] = 0.0
                seen[t] = False
        chosen = v
        if n_cand > 0:
            total = 1.0 if best == 0.0 else np.exp(-best / theta)
            for k in range(n_cand):
                gains[k] = np.exp((gains[k] - best) / theta)
                total += gains[k]
            r = rand_uniform(state) * total
            acc = 1.0 if best == 0.0 else np.exp(-best / theta)
            if r >= acc:
                for k in range(n_cand):
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
        for k in range(n_cand):
            t = neigh[k]
            neigh_w[t] = 0.0
            seen[t] = False
    return refined


@numba.njit(cache=True, nogil=True)
def aggregate(indptr, indices, data, node_weight, clusters, n_clusters):
    """Aggregate graph with one node per cluster (labels 0..n_clusters-1): summed node weights,
    summed edge weights, the weight inside a cluster as its self-loop."""
    n = indptr.size - 1
    start = np.zeros(n_clusters + 1, np.int64)
    for v in range(n):
        start[clusters[v] + 1] += 1
    for c in range(n_clusters):
        start[c + 1] += start[c]
    members = np.empty(n, np.int64)
    fill = start[:-1].copy()
    for v in range(n):
        c = clusters[v]
        members[fill[c]] = v
        fill[c] += 1
    new_weight = np.zeros(n_clusters, np.float64)
    new_indptr = np.zeros(n_clusters + 1, np.int64)
    new_indices = np.empty(indices.size, np.int64)
    new_data = np.empty(indices.size, np.float64)
    neigh_w = np.zeros(n_clusters, np.float64)
    seen = np.zeros(n_clusters, np.bool_)
    neigh = np.empty(n_clusters, np.int64)
    e = 0
    for c in range(n_clusters):
        inside = 0.0
        n_neigh = 0
        for m in range(start[c], start[c + 1]):
            v = members[m]
            new_weight[c] += node_weight[v]
            for j in range(indptr[v], indptr[v + 1]):
                u = indices[j]
                d = clusters[u]
                if d == c:
                    # an edge inside c is seen from both ends, a self-loop once
                    inside += data[j] if u == v else 0.5 * data[j]
                else:
                    if not seen[d]:
                        seen[d] = True
                        neigh[n_neigh] = d
                        n_neigh += 1
                    neigh_w[d] += data[j]
        if inside > 0.0:
            new_indices[e] = c
            new_data[e] = inside
            e += 1
        for k in range(n_neigh):
            d = neigh[k]
            new_indices[e] = d
            new_data[e] = neigh_w[d]
            e += 1
            neigh_w[d] = 0.0
            seen[d] = False
        new_indptr[c + 1] = e
    return new_indptr, new_indices[:e].copy(), new_data[:e].copy(), new_weight


@numba.njit(cache=True, nogil=True)
def cluster_of(clusters, membership, n_clusters):
    """For each cluster, the community (in `membership`) of its members."""
    out = np.zeros(n_clusters, np.int64)
    for v in range(clusters.size):
        out[clusters[v]] = membership[v]
    return out


def one_iteration(indptr, indices, data, node_weight, membership, gamma, use_refinement, state):
    """One Leiden (or, without refinement, Louvain) iteration from `membership`: move nodes, refine,
    aggregate, repeat on the aggregate graph until every community is a single aggregate node."""
    node_map = np.arange(indptr.size - 1)
    part = membership.copy()
    while True:
        move_nodes(indptr, indices, data, node_weight, part, gamma, state)
        part, k = renumber(part)
        n_current = indptr.size - 1
        if k == n_current:
            break
        clusters, n_clusters = part, k
        if use_refinement:
            refined, n_refined = renumber(refine(indptr, indices, data, node_weight, part, gamma, THETA, state))
            # As igraph does: if refinement merged nothing, aggregate on the communities themselves.
            if n_refined < n_current:
                clusters, n_clusters = refined, n_refined
        part = cluster_of(clusters, part, n_clusters)
        indptr, indices, data, node_weight = aggregate(indptr, indices, data, node_weight, clusters, n_clusters)
        node_map = clusters[node_map]
    return part[node_map]


def optimise(indptr, indices, data, node_weight, gamma, *, use_refinement, n_iterations, state,
             initial=None):
    """Run iterations until the membership stops changing (n_iterations < 0) or n_iterations times."""
    n = indptr.size - 1
    membership = np.arange(n) if initial is None else renumber(initial)[0]
    done = 0
    while n_iterations < 0 or done < n_iterations:
        new = renumber(one_iteration(indptr, indices, data, node_weight, membership, gamma,
                                     use_refinement, state))[0]
        done += 1
        stable = np.array_equal(new, membership)
        membership = new
        if stable:
            break
    return membership
