"""Label propagation (Raghavan, Albert & Kumara 2007), weighted, asynchronous, seeded, in Numba."""
from __future__ import annotations

import numba
import numpy as np

from keyfarm.community._graph import canonical_csr, make_state, rand_next, relabel, shuffled, unpack


@numba.njit(cache=True, nogil=True)
def _propagate(indptr, indices, data, state, max_sweeps):
    n = indptr.size - 1
    label = np.arange(n)
    acc = np.zeros(n)
    seen = np.zeros(n, np.bool_)
    neigh = np.empty(n, np.int64)
    for _ in range(max_sweeps):
        changed = 0
        order = shuffled(n, state)
        for i in range(n):
            v = order[i]
            nl = 0
            for e in range(indptr[v], indptr[v + 1]):
                u = indices[e]
                if u == v:
                    continue
                c = label[u]
                if not seen[c]:
                    seen[c] = True
                    neigh[nl] = c
                    nl += 1
                acc[c] += data[e]
            if nl > 0:
                best = -1.0
                for j in range(nl):
                    if acc[neigh[j]] > best:
                        best = acc[neigh[j]]
                n_best = 0
                keep = False
                for j in range(nl):
                    if acc[neigh[j]] == best:
                        neigh[n_best] = neigh[j]
                        n_best += 1
                        if neigh[j] == label[v]:
                            keep = True
                if not keep:
                    pick = neigh[np.int64(rand_next(state) % np.uint64(n_best))]
                    label[v] = pick
                    changed += 1
                for j in range(nl):
                    acc[neigh[j]] = 0.0
                    seen[neigh[j]] = False
                for e in range(indptr[v], indptr[v + 1]):
                    c = label[indices[e]]
                    acc[c] = 0.0
                    seen[c] = False
        if changed == 0:
            break
    return label


def label_propagation(src, dst=None, weight=None, n_nodes=None, *, seed: int | None = 0,
                      max_sweeps: int = 100) -> np.ndarray:
    """Communities by weighted label propagation: each node takes the label of largest incident
    weight (ties broken at random), until no label changes. Fast, no quality guarantee."""
    src, dst, weight, n_nodes = unpack(src, dst, weight, n_nodes)
    indptr, indices, data = canonical_csr(src, dst, weight, n_nodes)
    return relabel(_propagate(indptr, indices, data, make_state(seed), max_sweeps))
