"""Projection of the key–token incidence onto key pairs (Numba), in the style of Gustavson's SpGEMM.

For each key a, walk its tokens, and for each token the keys b > a after a in the token's sorted
key list, accumulating token_weight × min(tie_a, tie_b) per signal into a row accumulator. Two
passes (count each row's distinct neighbours, allocate exactly, fill): work is linear in the number
of (pair, shared token) contributions, memory is the output plus O(keys) per block of rows, rows
come out sorted with no global sort, and only the upper triangle is computed. Blocks of rows run
in parallel on large graphs (each row is computed alone, so the result is the same). Hub tokens never reach this module, so no
token expands to more than (its signal's cap)² / 2 contributions, since projection runs on one
representative key per account (graph.build.representative_keys). Each contribution is rounded to a multiple of
2**-32, so sums are exact and the same whatever the order they are added in (a distributed engine
gets identical weights).
"""
from __future__ import annotations

import numba
import numpy as np

from keyfarm.kernels import serial_and_parallel

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


def _count_body(k_indptr, k_token, k_pos, t_indptr, t_keys, n_keys, bounds):
    """Output row pointers: the distinct neighbours b > a of every key a (blocks of rows, each
    block with its own mark array, so blocks run in parallel)."""
    counts = np.zeros(n_keys + 1, np.int64)
    for blk in numba.prange(bounds.size - 1):
        mark = np.full(n_keys, -1, np.int64)
        for a in range(bounds[blk], bounds[blk + 1]):
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


def _fill_body(k_indptr, k_token, k_pos, t_indptr, t_keys, t_tie, token_weight, token_signal,
               n_keys, n_signals, out_indptr, max_row, bounds):
    """Neighbours, per-signal weights and strongest token of every output row (signal-major
    (n_signals, nnz) arrays). Rows write disjoint slices, so blocks of rows run in parallel, each
    with its own slot array and scratch for the strongest contribution of the row being filled."""
    nnz = out_indptr[-1]
    dst = np.empty(nnz, np.int64)
    w = np.empty((n_signals, nnz), np.float64)      # each entry is set when its row meets the pair
    best = np.empty((n_signals, nnz), np.int64)
    for blk in numba.prange(bounds.size - 1):
        best_w = np.zeros((n_signals, max_row), np.float64)
        slot = np.full(n_keys, -1, np.int64)
        for a in range(bounds[blk], bounds[blk + 1]):
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
                        for r in range(n_signals):
                            best_w[r, pos - start] = 0.0
                            w[r, pos] = 0.0
                            best[r, pos] = -1
                        pos += 1
                    e = slot[b]
                    c = np.floor(tw * min(tie_a, t_tie[q]) * QUANTUM + 0.5) / QUANTUM
                    w[s, e] += c
                    if c > best_w[s, e - start]:  # ties keep the first token in token order
                        best_w[s, e - start] = c
                        best[s, e] = t
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
                for s in range(w.shape[0]):
                    w[s, j - 1], w[s, j] = w[s, j], w[s, j - 1]
                    best[s, j - 1], best[s, j] = best[s, j], best[s, j - 1]
                j -= 1
        return
    order = np.argsort(dst[start:stop], kind="mergesort") + start
    dst[start:stop] = dst[order]
    for s in range(w.shape[0]):
        w[s, start:stop] = w[s][order]
        best[s, start:stop] = best[s][order]


# one body each, compiled serial (small graphs: no thread start-up) and parallel (blocks of rows)
_count_rows, _count_rows_parallel = serial_and_parallel(_count_body)
_fill_rows, _fill_rows_parallel = serial_and_parallel(_fill_body)
PARALLEL_MIN_KEYS = 50_000    # smaller graphs project in milliseconds: threads buy little there
BLOCKS_PER_THREAD = 8         # rows are uneven: several blocks per thread even out the load


def _row_blocks(n_keys: int, parallel: bool) -> np.ndarray:
    n_blocks = numba.get_num_threads() * BLOCKS_PER_THREAD if parallel else 1
    return np.unique(np.linspace(0, n_keys, max(n_blocks, 1) + 1).astype(np.int64))


def project(t_indptr: np.ndarray, t_keys: np.ndarray, t_tie: np.ndarray, token_weight: np.ndarray,
            token_signal: np.ndarray, n_keys: int, n_signals: int, *, parallel: bool | None = None):
    """Key pairs sharing tokens, from a token → keys CSR.

    Parameters
    ----------
    t_indptr, t_keys : token t's keys are t_keys[t_indptr[t]:t_indptr[t + 1]], sorted, distinct,
        in 0..n_keys-1.
    t_tie : float64 per entry, the key's tie to the token (0, 1].
    token_weight : float64 per token; token_signal : int64 per token in 0..n_signals-1.
    parallel : run blocks of rows on all Numba threads; None: when n_keys >= PARALLEL_MIN_KEYS.
        The result is the same either way (each row is computed alone).

    Returns
    -------
    src, dst : int64 (m,), src < dst, sorted by (src, dst), each pair once.
    w : float64 (m, n_signals), Σ over shared tokens of token_weight × min(tie_a, tie_b), each term
        rounded to a multiple of 2**-32 (so sums are exact in any order).
    best : int64 (m, n_signals), the token with the largest term per signal (−1: none; ties: the
        first token). w and best are column-contiguous views, so w[:, s] costs no copy.
    """
    t_indptr = np.ascontiguousarray(t_indptr, np.int64)
    t_keys = np.ascontiguousarray(t_keys, np.int64)
    t_tie = np.ascontiguousarray(t_tie, np.float64)
    token_weight = np.ascontiguousarray(token_weight, np.float64)
    token_signal = np.ascontiguousarray(token_signal, np.int64)
    n_tokens = t_indptr.size - 1
    if t_indptr[0] != 0 or t_indptr[-1] != t_keys.size or t_tie.size != t_keys.size \
            or token_weight.size != n_tokens or token_signal.size != n_tokens:
        raise ValueError("project: inconsistent CSR (t_indptr, t_keys, t_tie, token_weight, token_signal)")
    if t_keys.size and (t_keys.min() < 0 or t_keys.max() >= n_keys):
        raise ValueError(f"project: key index outside 0..{n_keys - 1}")
    if n_tokens and (token_signal.min() < 0 or token_signal.max() >= n_signals):
        raise ValueError(f"project: token_signal outside 0..{n_signals - 1}")
    k_indptr, k_token, k_pos = _transpose(t_indptr, t_keys, n_keys)
    parallel = n_keys >= PARALLEL_MIN_KEYS if parallel is None else parallel
    bounds = _row_blocks(n_keys, parallel)
    count, fill = (_count_rows_parallel, _fill_rows_parallel) if parallel else (_count_rows, _fill_rows)
    out_indptr = count(k_indptr, k_token, k_pos, t_indptr, t_keys, n_keys, bounds)
    max_row = int(np.diff(out_indptr).max()) if n_keys else 0
    dst, w, best = fill(k_indptr, k_token, k_pos, t_indptr, t_keys, t_tie, token_weight,
                        token_signal, n_keys, n_signals, out_indptr, max_row, bounds)
    src = np.repeat(np.arange(n_keys, dtype=np.int64), np.diff(out_indptr))
    return src, dst, w.T, best.T
