"""Numba kernels of the prompt signal (signals stage): normalisation, shingle hashes, MinHash, LSH bands.

Kernels take flat arrays (UTF-8 bytes of many documents plus int64 offsets) and return arrays; the
validating wrappers and the definitions users read live in keyfarm.signals.prompt. Each per-document
kernel exists twice, built from one undecorated body by keyfarm.kernels.serial_and_parallel.

Fixed hashes (documented so signatures can be recomputed elsewhere):
- word hash: FNV-1a 64 over the word's UTF-8 bytes;
- word n-gram hash: h = 0x9E3779B97F4A7C15, then h = splitmix64(h ^ word_hash) for each word;
- character n-gram hash: splitmix64(FNV-1a 64 over the n-gram's UTF-8 bytes);
- permutation p of shingle hash h: x = h >> 33 (31 bits), (a_p * x + b_p) mod (2**31 - 1).
"""
from __future__ import annotations

import functools
import unicodedata

import numba
import numpy as np

from keyfarm.kernels import serial_and_parallel

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
PRIME = np.uint64(2**31 - 1)          # Mersenne prime of the permutations a*x + b mod PRIME
EMPTY = np.uint32(0xFFFFFFFF)         # signature value of a document without shingles
SEPARATOR, WORD, DIGIT = 0, 1, 2      # character classes of the normalisation table
TABLE_SIZE = 0x40000                  # planes 0-3 (all assigned letters); above: separators
WORDS, CHARS = 0, 1                   # shingle kinds


@functools.lru_cache(maxsize=1)
def char_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per code point: class (letters/marks/numbers → word, Nd digits → digit, else separator)
    and single-code-point lowercase. Built once per process from unicodedata (about 0.2 s)."""
    cls = np.zeros(TABLE_SIZE, np.uint8)
    lower = np.arange(TABLE_SIZE, dtype=np.uint32)
    for cp in range(TABLE_SIZE):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cat == "Nd":
            cls[cp] = DIGIT
        elif cat[0] in "LMN":
            cls[cp] = WORD
            lo = ch.lower()
            if len(lo) == 1:
                lower[cp] = ord(lo)
    return cls, lower


@numba.njit(cache=True, nogil=True, inline="always")
def _mix64(x):
    """splitmix64 finaliser: a fast, well-distributed 64-bit mixer."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True, nogil=True, inline="always")
def _fnv(buf, start, stop):
    h = FNV_OFFSET
    for i in range(start, stop):
        h = (h ^ np.uint64(buf[i])) * FNV_PRIME
    return h


@numba.njit(cache=True, nogil=True, inline="always")
def _decode(buf, i, stop):
    """(code point, byte length) of the UTF-8 sequence at buf[i]; truncated sequences → U+FFFD."""
    c = np.int64(buf[i])
    if c < 0x80:
        return c, 1
    k = 2 if c < 0xE0 else (3 if c < 0xF0 else 4)
    if i + k > stop:
        return np.int64(0xFFFD), stop - i
    cp = c & (0x1F if k == 2 else (0x0F if k == 3 else 0x07))
    for j in range(1, k):
        cp = (cp << 6) | (np.int64(buf[i + j]) & 0x3F)
    return cp, k


@numba.njit(cache=True, nogil=True, inline="always")
def _put(out, pos, cp, write):
    """Append code point cp as UTF-8 (only counted unless write); returns the new position."""
    if cp < 0x80:
        if write:
            out[pos] = cp
        return pos + 1
    if cp < 0x800:
        if write:
            out[pos] = 0xC0 | (cp >> 6)
            out[pos + 1] = 0x80 | (cp & 0x3F)
        return pos + 2
    if cp < 0x10000:
        if write:
            out[pos] = 0xE0 | (cp >> 12)
            out[pos + 1] = 0x80 | ((cp >> 6) & 0x3F)
            out[pos + 2] = 0x80 | (cp & 0x3F)
        return pos + 3
    if write:
        out[pos] = 0xF0 | (cp >> 18)
        out[pos + 1] = 0x80 | ((cp >> 12) & 0x3F)
        out[pos + 2] = 0x80 | ((cp >> 6) & 0x3F)
        out[pos + 3] = 0x80 | (cp & 0x3F)
    return pos + 4


@numba.njit(cache=True, nogil=True)
def _normalize_doc(buf, start, stop, cls, lower, max_chars, out, pos, write):
    """Normalise one document's first max_chars code points into out[pos:]; returns the end."""
    begin = pos
    pending = False
    n_chars = 0
    i = start
    while i < stop and n_chars < max_chars:
        cp, k = _decode(buf, i, stop)
        i += k
        n_chars += 1
        c = cls[cp] if cp < cls.size else SEPARATOR
        if c == SEPARATOR:
            pending = True
            continue
        if pending and pos > begin:
            if write:
                out[pos] = 32
            pos += 1
        pending = False
        pos = _put(out, pos, 48 if c == DIGIT else np.int64(lower[cp]), write)
    return pos


def _normalize_body(buf, offsets, cls, lower, max_chars):
    n = offsets.size - 1
    lengths = np.empty(n, np.int64)
    nothing = np.empty(0, np.uint8)
    for d in numba.prange(n):
        lengths[d] = _normalize_doc(buf, offsets[d], offsets[d + 1], cls, lower, max_chars, nothing, 0, False)
    out_offsets = np.zeros(n + 1, np.int64)
    for d in range(n):
        out_offsets[d + 1] = out_offsets[d] + lengths[d]
    out = np.empty(out_offsets[-1], np.uint8)
    for d in numba.prange(n):
        _normalize_doc(buf, offsets[d], offsets[d + 1], cls, lower, max_chars, out, out_offsets[d], True)
    return out, out_offsets


normalize_serial, normalize_parallel = serial_and_parallel(_normalize_body)


@numba.njit(cache=True, nogil=True)
def doc_shingles(buf, start, stop, kind, size, out):
    """Hashes of one normalised document's shingles into out (len >= stop - start + 1); returns
    their count. Word kind: word `size`-grams; char kind: code-point `size`-grams. A non-empty
    document shorter than one n-gram is a single shingle (its whole text); empty: none."""
    if stop <= start:
        return 0
    if kind == WORDS:
        words = np.empty(stop - start + 1, np.uint64)
        w, begin = 0, start
        for i in range(start, stop + 1):
            if i == stop or buf[i] == 32:
                words[w] = _fnv(buf, begin, i)
                w += 1
                begin = i + 1
        m = w - size + 1 if w >= size else 1
        span = size if w >= size else w
        for s in range(m):
            h = GOLDEN
            for j in range(span):
                h = _mix64(h ^ words[s + j])
            out[s] = h
        return m
    starts = np.empty(stop - start + 1, np.int64)
    c = 0
    for i in range(start, stop):
        if buf[i] & 0xC0 != 0x80:  # not a continuation byte: a code point starts here
            starts[c] = i
            c += 1
    starts[c] = stop
    if c < size:
        out[0] = _mix64(_fnv(buf, start, stop))
        return 1
    m = c - size + 1
    for s in range(m):
        out[s] = _mix64(_fnv(buf, starts[s], starts[s + size]))
    return m


def _minhash_body(buf, offsets, kind, size, a, b, bounds):
    """Signatures of the documents, block by block of `bounds` (blocks run in parallel). Scratch
    is allocated once per block: per-document allocations inside prange made the parallel kernel
    no faster than the serial one (measured: 20k prompts, 0.75 s both; per block 0.37 s)."""
    n_docs = offsets.size - 1
    num_perm = a.size
    sig = np.empty((n_docs, num_perm), np.uint32)
    for blk in numba.prange(bounds.size - 1):
        lo, hi = bounds[blk], bounds[blk + 1]
        longest = 0
        for d in range(lo, hi):
            longest = max(longest, offsets[d + 1] - offsets[d])
        hashes = np.empty(longest + 1, np.uint64)
        mins = np.empty(num_perm, np.uint64)
        for d in range(lo, hi):
            m = doc_shingles(buf, offsets[d], offsets[d + 1], kind, size, hashes)
            for p in range(num_perm):
                mins[p] = PRIME
            for s in range(m):
                x = hashes[s] >> np.uint64(33)
                for p in range(num_perm):
                    y = a[p] * x + b[p]                      # < 2**62 + 2**31: no overflow
                    y = (y & PRIME) + (y >> np.uint64(31))   # Mersenne folds: y mod PRIME ...
                    y = (y & PRIME) + (y >> np.uint64(31))
                    y = y - PRIME if y >= PRIME else y      # ... made canonical
                    mins[p] = min(mins[p], y)
            for p in range(num_perm):
                sig[d, p] = EMPTY if m == 0 else np.uint32(mins[p])
    return sig


minhash_serial, minhash_parallel = serial_and_parallel(_minhash_body)


@numba.njit(cache=True, nogil=True)
def band_hashes(sig, bands, rows):
    """One 64-bit hash per (document, band) of the band's index and its `rows` signature values."""
    n = sig.shape[0]
    out = np.empty((n, bands), np.uint64)
    for d in range(n):
        for j in range(bands):
            h = _mix64(np.uint64(j + 1) * GOLDEN)
            for r in range(rows):
                h = _mix64(h ^ np.uint64(sig[d, j * rows + r]))
            out[d, j] = h
    return out
