"""Label propagation of the community stage (Raghavan, Albert & Kumara 2007): weighted, asynchronous."""
from __future__ import annotations

import numbers

import numba
import numpy as np

from keyfarm.community._graph import (CommunityInputError, canonical_csr, edges_from_args, make_state,
                                      rand_next, relabel, shuffled)


def label_propagation(src, dst=None, weight=None, n_nodes=None, *, seed: int | None = 0,
                      max_sweeps: int | None = 1000) -> np.ndarray:
    """Communities by weighted label propagation.

    Nodes, in a fresh random order each sweep, take the label carrying the largest incident weight
    (ties broken at random, the current label kept when it is among the best), until a sweep
    changes nothing or `max_sweeps` sweeps (None: no limit). Near-linear and simple, with no
    quality guarantee; useful as a fast baseline. Deterministic for a given seed, independent of
    edge order. Returns labels 0..k−1 in order of first appearance.

    References
    ----------
    U. N. Raghavan, R. Albert, S. Kumara, "Near linear time algorithm to detect community structures
    in large-scale networks", Phys. Rev. E 76, 036106 (2007).
    """
    src, dst, weight, n_nodes = edges_from_args(src, dst, weight, n_nodes)
    if max_sweeps is None:
        max_sweeps = -1
    elif not isinstance(max_sweeps, numbers.Integral) or max_sweeps < 1:
        raise CommunityInputError(f"max_sweeps must be a positive integer or None, got {max_sweeps!r}")
    indptr, indices, data = canonical_csr(src, dst, weight, n_nodes)
    return relabel(_propagate(indptr, indices, data, make_state(seed), np.int64(max_sweeps)))


@numba.njit(cache=True, nogil=True)
def _propagate(indptr, indices, data, state, max_sweeps):
    n = indptr.size - 1
    label = np.arange(n)
    acc = np.zeros(n, np.float64)
    seen = np.zeros(n, np.bool_)
    neigh = np.empty(n, np.int64)
    sweep = 0
    while max_sweeps < 0 or sweep < max_sweeps:
        sweep += 1
        changed = 0
        order = shuffled(n, state)
        for i in range(n):
            v = order[i]
            n_neigh = 0
            for j in range(indptr[v], indptr[v + 1]):
                u = indices[j]
                if u == v:
                    continue
                c = label[u]
                if not seen[c]:
                    seen[c] = True
                    neigh[n_neigh] = c
                    n_neigh += 1
                acc[c] += data[j]
            if n_neigh == 0:
                continue
            best = 0.0
            for k in range(n_neigh):
                if acc[neigh[k]] > best:
                    best = acc[neigh[k]]
            # weights summed in a different order may differ in the last bits: treat as ties
            floor = best * (1.0 - 1e-12)
            keep = seen[label[v]] and acc[label[v]] >= floor
            if not keep:
                n_best = 0
                chosen = -1
                for k in range(n_neigh):
                    c = neigh[k]
                    if acc[c] >= floor:
                        n_best += 1
                        # reservoir sampling: uniform among the tied labels
                        if rand_next(state) % np.uint64(n_best) == 0:
                            chosen = c
                label[v] = chosen
                changed += 1
            for k in range(n_neigh):
                acc[neigh[k]] = 0.0
                seen[neigh[k]] = False
        if changed == 0:
            break
    return label
