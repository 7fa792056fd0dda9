"""Absorption after CPM (community stage): accounts far more tied to a big community than to their own join it.

CPM asks a community's every member to be linked to a γ share of it (a move into community C pays
γ·|C|), so a large, sparse farm — thousands of accounts, each hopping over a few of a proxy pool's
exits and so linked to a few percent of the others — cannot hold its members: an account with 90
links into a 234-account farm (weight 42, below γ·234 = 47) is left in a 3-account group with
the two home users whose address it once borrowed, and at 1M keys the farm shatters. What CPM
misses is relative: the account is tied to the farm as strongly as the farm's own members are.

`absorb` moves an account v from its community A to the neighbouring community B it is most tied
to (w(v, B): the sum of its links into B) when
- w(v, B) ≥ `share` × the median of B's members' ties to the rest of B (v is tied to B as a
  typical member is, whatever B's size: no density threshold that moves with the job's size), and
- w(v, B) ≥ DOMINANCE × w(v, A \\ {v}) (v belongs to B far more than to where CPM left it), and
- B has at least two accounts (CPM already weighs joining a lone account or a small group).
The first condition is waived for an account that shares a card or a device with B's members
(`control`: its links of those signals alone, summing to at least `control_min` into B): a farm's
account opened on one of its cards is the farm's however few of its members it is tied to, while
a proxy farm's borrowed home address is no such evidence.
A campus tied to a farm by a stray edge stays apart (the edge is a small share of a farm member's
ties), and so does the home user whose address a proxy farm borrowed (one shared exit against a
farm member's many). Nodes are visited in ascending order, each move applied at once (medians
fixed per round), rounds repeat until nothing moves (at most MAX_ROUNDS); a community left
disconnected by the moves is split into its connected parts. Every step reads only a node's
component, so running it per connected component (the Spark engine) gives the same partition.
"""
from __future__ import annotations

import numba
import numpy as np

from keyfarm.community._graph import canonical_csr, relabel
from keyfarm.community.components import connected_components

DOMINANCE = 2.0   # w(v, B) against w(v, own community): v belongs to B far more than to A
MAX_ROUNDS = 10   # rounds of moves, at most (each round visits every node once)


def absorb(src, dst, weight, n_nodes: int, labels, *, share: float = 0.5, csr=None, control=None,
           control_min: float = 0.0) -> np.ndarray:
    """Labels after absorption (see the module docstring): 0..k−1 in order of the nodes' first
    appearance; `share` 0 returns `labels` renumbered the same way, unchanged otherwise.

    Parameters
    ----------
    src, dst, weight : arrays
        The undirected edges (each once, either direction; duplicates summed).
    n_nodes : int
    labels : array of int
        A partition (e.g. CPM Leiden's), one non-negative label per node.
    share : float
        A node joins B when its tie to B is at least `share` × the median member's tie to B.
    csr : tuple, optional
        canonical_csr(src, dst, weight, n_nodes) when the caller has it already.
    control : tuple (src, dst, weight), optional
        The links of control evidence alone (cards, devices), on the same nodes.
    control_min : float
        A node tied to B by control links summing to this (> 0) joins B whatever its share.
    """
    labels = np.asarray(labels, np.int64)
    if labels.size != n_nodes:
        raise ValueError(f"labels has {labels.size} entries for {n_nodes} nodes")
    if share <= 0 or n_nodes == 0:
        return relabel(labels)
    src = np.asarray(src, np.int64)
    dst = np.asarray(dst, np.int64)
    weight = np.asarray(weight, np.float64)
    indptr, indices, data = canonical_csr(src, dst, weight, n_nodes) if csr is None else csr
    if control is not None and control_min > 0 and np.size(control[0]):
        c_indptr, c_indices, c_data = canonical_csr(np.asarray(control[0], np.int64), np.asarray(control[1], np.int64),
                                                    np.asarray(control[2], np.float64), n_nodes)
    else:   # no control waiver: an empty CSR
        c_indptr, c_indices, c_data = np.zeros(n_nodes + 1, np.int64), np.zeros(0, np.int64), np.zeros(0)
        control_min = np.inf
    cur = relabel(labels)   # a new array, moved in place
    n_labels = int(cur.max()) + 1
    moved_any = False
    for _ in range(MAX_ROUNDS):
        own = member_ties(indptr, indices, data, cur)
        median = community_medians(cur, own, n_labels)
        size = np.bincount(cur, minlength=n_labels).astype(np.int64)
        if _absorb_round(indptr, indices, data, c_indptr, c_indices, c_data, cur, size, median, float(share),
                         DOMINANCE, float(control_min)) == 0:
            break
        moved_any = True
    if not moved_any:
        return cur
    # a community a move left in pieces is split into its connected parts
    inside = cur[src] == cur[dst]
    return connected_components(src[inside], dst[inside], n_nodes)


def community_medians(labels: np.ndarray, own: np.ndarray, n_labels: int) -> np.ndarray:
    """Per label: the median of its members' ties to the rest of it (0 for a lone node)."""
    order = np.lexsort((own, labels))
    sorted_labels = labels[order]
    start = np.searchsorted(sorted_labels, np.arange(n_labels))
    end = np.searchsorted(sorted_labels, np.arange(n_labels), side="right")
    count = end - start
    median = np.zeros(n_labels)
    ok = count > 0
    lo = start[ok] + (count[ok] - 1) // 2
    hi = start[ok] + count[ok] // 2
    median[ok] = 0.5 * (own[order][lo] + own[order][hi])
    return median


@numba.njit(cache=True, nogil=True)
def member_ties(indptr, indices, data, labels):
    """Per node: the weight of its links to the other members of its community."""
    n = indptr.size - 1
    out = np.zeros(n)
    for v in range(n):
        a = labels[v]
        s = 0.0
        for q in range(indptr[v], indptr[v + 1]):
            u = indices[q]
            if u != v and labels[u] == a:
                s += data[q]
        out[v] = s
    return out


@numba.njit(cache=True, nogil=True)
def _absorb_round(indptr, indices, data, c_indptr, c_indices, c_data, labels, size, median, share, dominance,
                  control_min):
    """One pass over the nodes in ascending order, moving each by the rule of `absorb` (c_*: the
    CSR of control links); labels and sizes are updated in place. Returns the number of moves."""
    n = indptr.size - 1
    tie = np.zeros(size.size)
    touched = np.empty(size.size, np.int64)
    moved = 0
    for v in range(n):
        a = labels[v]
        k = 0
        for q in range(indptr[v], indptr[v + 1]):
            u = indices[q]
            if u == v:
                continue
            c = labels[u]
            if tie[c] == 0.0:
                touched[k] = c
                k += 1
            tie[c] += data[q]
        own = tie[a]
        best = -1
        best_tie = 0.0
        for i in range(k):
            c = touched[i]
            if c != a and size[c] >= 2 and (tie[c] > best_tie or (tie[c] == best_tie and c < best)):
                best = c
                best_tie = tie[c]
        for i in range(k):
            tie[touched[i]] = 0.0
        if best < 0 or best_tie < dominance * own:
            continue
        typical = median[best] > 0.0 and best_tie >= share * median[best]
        if not typical:   # the waiver: control links into best
            control = 0.0
            for q in range(c_indptr[v], c_indptr[v + 1]):
                if labels[c_indices[q]] == best and c_indices[q] != v:
                    control += c_data[q]
            typical = control >= control_min
        if typical:
            labels[v] = best
            size[a] -= 1
            size[best] += 1
            moved += 1
    return moved
