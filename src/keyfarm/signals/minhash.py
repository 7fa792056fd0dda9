"""Numba kernels for prompt similarity: shingle hashing, MinHash signatures, LSH band hashes.

Kernels take flat arrays (UTF-8 bytes of many documents plus offsets) and return arrays; the
Python-facing functions live in keyfarm.signals.prompt.
"""
from __future__ import annotations

import numba
import numpy as np

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)


@numba.njit(cache=True, nogil=True, inline="always")
def _mix64(x):
    """splitmix64 finaliser: a fast, well-distributed 64-bit mixer."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def _fnv(buf, start, stop):
    h = FNV_OFFSET
    for i in range(start, stop):
        h = (h ^ np.uint64(buf[i])) * FNV_PRIME
    return h


@numba.njit(cache=True, nogil=True)
def shingle_hashes(buf, offsets, k, char_n):
    """Hashes of each document's word k-shingles (documents of fewer than k words: character
    n-grams over the bytes, or the whole text when shorter than n). Returns (indptr, hashes)."""
    n_docs = offsets.size - 1
    counts = np.zeros(n_docs, np.int64)
    for d in range(n_docs):
        a, b = offsets[d], offsets[d + 1]
        if b == a:
            continue
        words = 1
        for i in range(a, b):
            if buf[i] == 32:
                words += 1
        if words >= k:
            counts[d] = words - k + 1
        else:
            counts[d] = max(b - a - char_n + 1, 1)
    indptr = np.zeros(n_docs + 1, np.int64)
    for d in range(n_docs):
        indptr[d + 1] = indptr[d] + counts[d]
    out = np.empty(indptr[-1], np.uint64)
    word_hash = np.empty(0, np.uint64)
    for d in range(n_docs):
        a, b = offsets[d], offsets[d + 1]
        if b == a:
            continue
        pos = indptr[d]
        n_sh = counts[d]
        words = 1
        for i in range(a, b):
            if buf[i] == 32:
                words += 1
        if words >= k:
            if word_hash.size < words:
                word_hash = np.empty(words * 2, np.uint64)
            w, start = 0, a
            for i in range(a, b + 1):
                if i == b or buf[i] == 32:
                    word_hash[w] = _fnv(buf, start, i)
                    w += 1
                    start = i + 1
            for s in range(n_sh):
                h = np.uint64(0x9E3779B97F4A7C15)
                for j in range(k):
                    h = _mix64(h ^ word_hash[s + j])
                out[pos + s] = h
        elif b - a >= char_n:
            for s in range(n_sh):
                out[pos + s] = _mix64(_fnv(buf, a + s, a + s + char_n))
        else:
            out[pos] = _mix64(_fnv(buf, a, b))
    return indptr, out


def _minhash_body(indptr, hashes, seeds):
    n_docs = indptr.size - 1
    num_perm = seeds.size
    sig = np.empty((n_docs, num_perm), np.uint32)
    for d in numba.prange(n_docs):
        a, b = indptr[d], indptr[d + 1]
        for p in range(num_perm):
            best = np.uint64(0xFFFFFFFF)
            s = seeds[p]
            for i in range(a, b):
                v = _mix64(hashes[i] ^ s) >> np.uint64(32)
                if v < best:
                    best = v
            sig[d, p] = np.uint32(best)
    return sig


minhash_serial = numba.njit(cache=True, nogil=True)(_minhash_body)
minhash_parallel = numba.njit(cache=True, parallel=True)(_minhash_body)


@numba.njit(cache=True, nogil=True)
def band_hashes(sig, bands, rows):
    """One 64-bit hash per (document, band) of the band's `rows` signature values and its index."""
    n = sig.shape[0]
    out = np.empty((n, bands), np.uint64)
    for d in range(n):
        for j in range(bands):
            h = _mix64(np.uint64(j + 1) * np.uint64(0x9E3779B97F4A7C15))
            for r in range(rows):
                h = _mix64(h ^ np.uint64(sig[d, j * rows + r]))
            out[d, j] = h
    return out
