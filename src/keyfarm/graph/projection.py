"""Projection of the key–token incidence onto key pairs (Numba), in the style of Gustavson's SpGEMM.

For each key a, walk its tokens, and for each token the keys b > a after a in the token's sorted
key list, accumulating token_weight × min(tie_a, tie_b) per signal into a row accumulator. Work is
linear in the number of (pair, shared token) contributions and output rows come out sorted, with no
global sort; only the upper triangle is computed. Each contribution is rounded to a multiple of
2**-32, so sums are exact and the same whatever the order they are added in (a distributed engine
gets identical weights).
"""
from __future__ import annotations

import numba
import numpy as np

QUANTUM = 2.0 ** 32


@numba.njit(cache=True, nogil=True)
def _transpose(t_indptr, t_keys, n_keys):
    """key → (token, position of the key in that token's key list) CSR."""
    counts = np.zeros(n_keys + 1, np.int64)
    for q in range(t_keys.size):
        counts[t_keys[q] + 1] += 1
    k_indptr = np.cumsum(counts)
    fill = k_indptr[:-1].copy()
    k_token = np.empty(t_keys.size, np.int64)
    k_pos = np.empty(t_keys.size, np.int64)
    for t in range(t_indptr.size - 1):
        for q in range(t_indptr[t], t_indptr[t + 1]):
            a = t_keys[q]
            k_token[fill[a]] = t
            k_pos[fill[a]] = q
            fill[a] += 1
    return k_indptr, k_token, k_pos


@numba.njit(cache=True, nogil=True)
def _count_rows(k_indptr, k_token, k_pos, t_indptr, t_keys, n_keys, bounds):
    """Distinct neighbours b > a of every key a (row blocks, each with its own marks)."""
    counts = np.zeros(n_keys + 1, np.int64)
    for chunk in range(bounds.size - 1):
        mark = np.full(n_keys, -1, np.int64)
        for a in range(bounds[chunk], bounds[chunk + 1]):
            c = 0
            for p in range(k_indptr[a], k_indptr[a + 1]):
                t = k_token[p]
                for q in range(k_pos[p] + 1, t_indptr[t + 1]):
                    b = t_keys[q]
                    if mark[b] != a:
                        mark[b] = a
                        c += 1
            counts[a + 1] = c
    return np.cumsum(counts)


@numba.njit(cache=True, nogil=True)
def _fill_rows(k_indptr, k_token, k_pos, t_indptr, t_keys, t_tie, token_weight, token_signal,
               n_keys, n_signals, out_indptr, bounds):
    nnz = out_indptr[-1]
    dst = np.empty(nnz, np.int64)
    w = np.zeros((nnz, n_signals), np.float64)
    best = np.full((nnz, n_signals), -1, np.int64)
    best_w = np.zeros((nnz, n_signals), np.float64)
    for chunk in range(bounds.size - 1):
        slot = np.full(n_keys, -1, np.int64)
        for a in range(bounds[chunk], bounds[chunk + 1]):
            start = out_indptr[a]
            pos = start
            for p in range(k_indptr[a], k_indptr[a + 1]):
                t = k_token[p]
                tw = token_weight[t]
                s = token_signal[t]
                tie_a = t_tie[k_pos[p]]
                for q in range(k_pos[p] + 1, t_indptr[t + 1]):
                    b = t_keys[q]
                    if slot[b] < start:
                        slot[b] = pos
                        dst[pos] = b
                        pos += 1
                    e = slot[b]
                    c = np.floor(tw * min(tie_a, t_tie[q]) * QUANTUM + 0.5) / QUANTUM
                    w[e, s] += c
                    if c > best_w[e, s]:
                        best_w[e, s] = c
                        best[e, s] = t
            _sort_row(dst, w, best, start, pos)
    return dst, w, best


@numba.njit(cache=True, nogil=True)
def _sort_row(dst, w, best, start, stop):
    """Order one output row by neighbour: insertion sort (rows are short), argsort when long."""
    n = stop - start
    if n < 2:
        return
    if n <= 32:
        for i in range(start + 1, stop):
            j = i
            while j > start and dst[j - 1] > dst[j]:
                dst[j - 1], dst[j] = dst[j], dst[j - 1]
                for s in range(w.shape[1]):
                    w[j - 1, s], w[j, s] = w[j, s], w[j - 1, s]
                    best[j - 1, s], best[j, s] = best[j, s], best[j - 1, s]
                j -= 1
        return
    order = np.argsort(dst[start:stop], kind="mergesort") + start
    dst[start:stop] = dst[order]
    tmp_w = w[order].copy()
    tmp_b = best[order].copy()
    w[start:stop] = tmp_w
    best[start:stop] = tmp_b


def project(t_indptr: np.ndarray, t_keys: np.ndarray, t_tie: np.ndarray, token_weight: np.ndarray,
            token_signal: np.ndarray, n_keys: int, n_signals: int):
    """Key pairs sharing tokens: (src, dst, per-signal weights (m, n_signals), strongest token
    per signal (m, n_signals), −1 where none). Token key lists must be sorted and duplicate-free."""
    t_indptr = np.ascontiguousarray(t_indptr, np.int64)
    t_keys = np.ascontiguousarray(t_keys, np.int64)
    k_indptr, k_token, k_pos = _transpose(t_indptr, t_keys, n_keys)
    # row blocks of about equal work (a prange over these blocks measured slower on 2 busy cores)
    work = np.cumsum(np.diff(k_indptr)).astype(np.float64)
    n_blocks = max(1, min(n_keys, 4 * numba.get_num_threads()))
    cuts = np.searchsorted(work, np.linspace(0, work[-1] if work.size else 0, n_blocks + 1)[1:-1])
    bounds = np.unique(np.concatenate([[0], cuts, [n_keys]])).astype(np.int64)
    out_indptr = _count_rows(k_indptr, k_token, k_pos, t_indptr, t_keys, n_keys, bounds)
    dst, w, best = _fill_rows(k_indptr, k_token, k_pos, t_indptr, t_keys,
                              np.ascontiguousarray(t_tie, np.float64),
                              np.ascontiguousarray(token_weight, np.float64),
                              np.ascontiguousarray(token_signal, np.int64), n_keys, n_signals,
                              out_indptr, bounds)
    src = np.repeat(np.arange(n_keys, dtype=np.int64), np.diff(out_indptr))
    return src, dst, w, best
