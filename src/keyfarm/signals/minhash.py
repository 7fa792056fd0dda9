"""Numba kernels of the prompt signal (signals stage): normalisation, shingle hashes, MinHash, LSH bands.

Kernels take flat arrays (UTF-8 bytes of many documents plus int64 offsets) and return arrays; the
validating wrappers and the definitions users read live in keyfarm.signals.prompt. Each per-document
kernel exists twice, built from one undecorated body by keyfarm.kernels.serial_and_parallel.

Fixed hashes (documented so signatures can be recomputed elsewhere):
- word hash: FNV-1a 64 over the word's UTF-8 bytes;
- word n-gram hash: h = 0x9E3779B97F4A7C15, then h = splitmix64(h ^ word_hash) for each word;
- character n-gram hash: splitmix64(FNV-1a 64 over the n-gram's UTF-8 bytes);
- normalised text hash (the `pdup:` token): splitmix64(FNV-1a 64 over its bytes ^ its byte length);
- classic MinHash, permutation p of shingle hash h: x = h >> 33 (31 bits), (a_p * x + b_p) mod (2**31 - 1);
- one-permutation MinHash (the default): character n-grams hashed as the polynomial
  sum c_i * 0x9E3779B97F4A7C15**(n-1-i) mod 2**64 of their code points (rolled, not rehashed, from
  one n-gram to the next), word n-grams as above; shingle hash h → g = splitmix64(h ^ salt), bin
  (g >> 32) * k >> 32 of k bins, value (g & 0xFFFFFFFF) >> 1 (31 bits); an empty bin j takes the
  value of bin probe(j, t) = (splitmix64(probe_salt ^ (j << 32 | t)) >> 32) * k >> 32 for the
  first t = 0, 1, ... that hits a bin with a value of its own.
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
MIX_PRIME = np.uint64(0xFF51AFD7ED558CCD)   # odd multiplier of the second text hash (murmur3's)
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
def _put(out, pos, cp):
    """Append code point cp as UTF-8; returns the new position."""
    if cp < 0x80:
        out[pos] = cp
        return pos + 1
    if cp < 0x800:
        out[pos] = 0xC0 | (cp >> 6)
        out[pos + 1] = 0x80 | (cp & 0x3F)
        return pos + 2
    if cp < 0x10000:
        out[pos] = 0xE0 | (cp >> 12)
        out[pos + 1] = 0x80 | ((cp >> 6) & 0x3F)
        out[pos + 2] = 0x80 | (cp & 0x3F)
        return pos + 3
    out[pos] = 0xF0 | (cp >> 18)
    out[pos + 1] = 0x80 | ((cp >> 12) & 0x3F)
    out[pos + 2] = 0x80 | ((cp >> 6) & 0x3F)
    out[pos + 3] = 0x80 | (cp & 0x3F)
    return pos + 4


@numba.njit(cache=True, nogil=True)
def _normalize_doc(buf, start, stop, cls, lower, ascii_out, max_chars, out, pos):
    """Normalise one document's first max_chars code points into out[pos:]; returns the end.
    ASCII bytes skip the UTF-8 decoder (the common case)."""
    begin = pos
    pending = False
    n_chars = 0
    i = start
    while i < stop and n_chars < max_chars:
        # a run of ASCII bytes, without branches: one lookup gives the output byte, 0 a separator
        lim = stop if stop - i <= max_chars - n_chars else i + (max_chars - n_chars)   # no overflow
        j = i
        while j < lim:
            o = ascii_out[buf[j]]         # 255: not ASCII
            if o == 255:
                break
            word = o != 0
            out[pos] = 32                 # kept only after a separator, inside the text
            pos += np.int64(word & pending & (pos > begin))
            out[pos] = o                  # kept only if a word character
            pos += np.int64(word)
            pending = not word
            j += 1
        n_chars += j - i
        i = j
        if i >= lim:
            break
        n_chars += 1
        cp, k = _decode(buf, i, stop)
        i += k
        c = cls[cp] if cp < cls.size else SEPARATOR
        if c == SEPARATOR:
            pending = True
            continue
        if pending and pos > begin:
            out[pos] = 32
            pos += 1
        pending = False
        pos = _put(out, pos, 48 if c == DIGIT else np.int64(lower[cp]))
    return pos


def _normalize_body(buf, offsets, cls, lower, ascii_out, max_chars):
    """One pass: each document is normalised into its own slot of a buffer sized by the bound
    below, then the slots are packed end to end in place (a document never moves right). Lower-
    casing grows a letter's UTF-8 by at most 1.5× (U+023E, 2 bytes → U+2C66, 3 bytes) and a space
    follows a dropped separator of at least one byte, so 2 × a document's bytes (+1) always fit.
    The slack of a slot is never written, so its pages are never touched: the resident memory is
    about that of the output."""
    n = offsets.size - 1
    slots = np.zeros(n + 1, np.int64)
    for d in range(n):
        slots[d + 1] = slots[d] + 2 * (offsets[d + 1] - offsets[d]) + 1
    scratch = np.empty(slots[-1], np.uint8)
    lengths = np.empty(n, np.int64)
    for d in numba.prange(n):
        lengths[d] = _normalize_doc(buf, offsets[d], offsets[d + 1], cls, lower, ascii_out, max_chars,
                                    scratch, slots[d]) - slots[d]
    out_offsets = np.zeros(n + 1, np.int64)
    for d in range(n):
        out_offsets[d + 1] = out_offsets[d] + lengths[d]
    for d in range(n):   # in order: the target of a document lies left of its slot
        start = slots[d]
        target = out_offsets[d]
        if target != start:
            for i in range(lengths[d]):
                scratch[target + i] = scratch[start + i]
    return scratch[:out_offsets[-1]], out_offsets


normalize_serial, normalize_parallel = serial_and_parallel(_normalize_body)


@functools.lru_cache(maxsize=1)
def ascii_outputs() -> np.ndarray:
    """Per byte: the normalised output of an ASCII byte (0: a separator), 255 for bytes >= 0x80."""
    cls, lower = char_tables()
    out = np.full(256, 255, np.uint8)
    for b in range(128):
        out[b] = 0 if cls[b] == SEPARATOR else (48 if cls[b] == DIGIT else lower[b])
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _next_normalized(buf, i, stop, cls, lower, ascii_out, n_chars, max_chars, pending):
    """The next code point of a document's normalised text, read straight from its raw UTF-8
    (what _normalize_doc writes, without writing it): returns (code point, or -1 at the end; i;
    n_chars read; pending). pending: -1 before the first word character, 0 after one, 1 after a
    separator run that follows text: a space is due before the next word character, which is
    then read again."""
    while i < stop and n_chars < max_chars:
        b = buf[i]
        o = ascii_out[b]
        if o != 255:
            cp = np.int64(o)
            k = 1
        else:
            x, k = _decode(buf, i, stop)
            c = cls[x] if x < cls.size else SEPARATOR
            cp = 0 if c == SEPARATOR else (48 if c == DIGIT else np.int64(lower[x]))
        if cp == 0:
            if pending == 0:         # -1: nothing emitted yet, a leading separator is dropped
                pending = np.int64(1)
            i += k
            n_chars += 1
            continue
        if pending == 1:
            return np.int64(32), i, n_chars, np.int64(0)
        return cp, i + k, n_chars + 1, np.int64(0)
    return np.int64(-1), i, n_chars, pending


def _text_hashes_body(buf, offsets, cls, lower, ascii_out, max_chars, out, n_chars):
    """Per raw document: two independent 64-bit hashes of its normalised text's code points into
    out (n, 2) (the first names the text, `pdup:<hash>`; the pair identifies it when
    de-duplicating without Python strings) and the normalised text's length in code points."""
    for d in numba.prange(offsets.size - 1):
        h1 = FNV_OFFSET
        h2 = GOLDEN
        c = 0
        i, read, pending = offsets[d], 0, np.int64(-1)
        stop = offsets[d + 1]
        while True:
            cp, i, read, pending = _next_normalized(buf, i, stop, cls, lower, ascii_out, read, max_chars, pending)
            if cp < 0:
                break
            h1 = (h1 ^ np.uint64(cp)) * FNV_PRIME
            h2 = (h2 ^ np.uint64(cp)) * MIX_PRIME
            c += 1
        out[d, 0] = _mix64(h1 ^ np.uint64(c))
        out[d, 1] = _mix64(h2 + np.uint64(c) * GOLDEN)
        n_chars[d] = c


text_hashes_serial, text_hashes_parallel = serial_and_parallel(_text_hashes_body)


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


@numba.njit(cache=True, nogil=True, inline="always")
def _bin(g, k):
    """Bin of a 64-bit hash among k (k < 2**32): its top 32 bits scaled to 0..k-1 (no modulo bias
    beyond 2**-32 * k, no division)."""
    return np.int64(((g >> np.uint64(32)) * np.uint64(k)) >> np.uint64(32))


@numba.njit(cache=True, nogil=True)
def densify(mins, probe_salt, out):
    """Optimal densification (Shrivastava, ICML 2017) of one one-permutation sketch `mins` (EMPTY
    marks a bin no shingle fell in) into `out`: bin j copies the value of the first bin that has
    one of its own along j's probe sequence, a sequence fixed by (probe_salt, j) and so the same
    for every document. Two sketches then agree in each bin with probability exactly the Jaccard
    similarity. `mins` must hold at least one value."""
    k = mins.size
    for j in range(k):
        v = mins[j]
        t = np.uint64(0)
        while v == EMPTY:
            v = mins[_bin(_mix64(probe_salt ^ ((np.uint64(j) << np.uint64(32)) | t)), k)]
            t += np.uint64(1)
        out[j] = v


@numba.njit(cache=True, nogil=True, inline="always")
def _keep_least(mins, h, salt, k, keep=True):
    """One shingle hash into a one-permutation sketch mins[:k]: its seeded hash picks a bin and a
    value. Unless `keep`, the value goes to the spare bin mins[k] instead: a select, not a branch
    (a branch around this call made the rolling loops 3× slower)."""
    g = _mix64(h ^ salt)
    j = _bin(g, k) if keep else k
    v = np.uint32((g & np.uint64(0xFFFFFFFF)) >> np.uint64(1))
    mins[j] = min(mins[j], v)      # no branch: whether a value is a new least is unpredictable


@numba.njit(cache=True, nogil=True, inline="always")
def _window(size):
    """(mask, zeroed circular window, GOLDEN**size) of a rolling `size`-gram hash; the window
    holds a power of two above `size` code points."""
    mask = 1
    while mask < size:
        mask = 2 * mask + 1
    top = np.uint64(1)
    for _ in range(size):
        top *= GOLDEN
    return mask, np.zeros(mask + 1, np.uint64), top


@numba.njit(cache=True, nogil=True, inline="always")
def _short_text(mins, h, c, size, salt, k):
    """Shingle count of a text of c code points; one shorter than an n-gram is one shingle, the
    hash of all its code points, kept now."""
    if 0 < c < size:
        _keep_least(mins, h, salt, k)
        return 1
    return max(0, c - size + 1)


@numba.njit(cache=True, nogil=True, inline="always")
def _densified(mins, m, probe_salt, row):
    """The signature row of a document with m shingles: densified mins[:k], or EMPTY if none."""
    if m == 0:
        row[:] = EMPTY
    else:
        densify(mins[:row.size], probe_salt, row)


@numba.njit(cache=True, nogil=True, inline="always")
def _roll(h, cp, window, c, mask, size, top):
    """Rolling n-gram hash after code point number c: add cp, drop the one `size` earlier (a zero
    of the window while c < size), without a branch (branches here made the loop 3× slower)."""
    h = h * GOLDEN + cp - window[c & mask] * top     # top = GOLDEN**size
    window[(c + size) & mask] = cp
    return h


@numba.njit(cache=True, nogil=True)
def oph_char_doc(buf, start, stop, size, salt, mins):
    """Code-point `size`-grams of one normalised document into the sketch `mins`, each hashed as
    the polynomial sum c_i * GOLDEN**(size-1-i) (mod 2**64) of its code points, rolled from one
    n-gram to the next; a document shorter than one n-gram is one shingle. Returns the count.
    mins has k + 1 entries: the last is scratch."""
    k = mins.size - 1
    mask, window, top = _window(size)
    h, c = np.uint64(0), 0
    i = start
    while i < stop:
        b = buf[i]
        if b < 0x80:
            cp = np.uint64(b)
            i += 1
        else:
            x, n = _decode(buf, i, stop)
            cp = np.uint64(x)
            i += n
        h = _roll(h, cp, window, c, mask, size, top)
        c += 1
        _keep_least(mins, h, salt, k, c >= size)
    return _short_text(mins, h, c, size, salt, k)


def _oph_body(buf, offsets, kind, size, salts, k, bounds):
    """One-permutation MinHash signatures (n_docs, k) of the documents, block by block of `bounds`
    (blocks run in parallel, scratch allocated once per block as in _minhash_body): one hash per
    shingle picks a bin and a value, each bin keeps its least value, empty bins are densified.
    salts = (shingle salt, probe salt). Li, Owen & Zhang, "One permutation hashing", NIPS 2012."""
    n_docs = offsets.size - 1
    sig = np.empty((n_docs, k), np.uint32)
    salt, probe_salt = salts[0], salts[1]
    for blk in numba.prange(bounds.size - 1):
        lo, hi = bounds[blk], bounds[blk + 1]
        longest = 0
        if kind == WORDS:
            for d in range(lo, hi):
                longest = max(longest, offsets[d + 1] - offsets[d])
        hashes = np.empty(longest + 1, np.uint64)
        mins = np.empty(k + 1, np.uint32)   # + a spare bin (_keep_least)
        for d in range(lo, hi):
            mins[:] = EMPTY
            if kind == WORDS:
                m = doc_shingles(buf, offsets[d], offsets[d + 1], kind, size, hashes)
                for s in range(m):
                    _keep_least(mins, hashes[s], salt, k)
            else:
                m = oph_char_doc(buf, offsets[d], offsets[d + 1], size, salt, mins)
            _densified(mins, m, probe_salt, sig[d])
    return sig


oph_serial, oph_parallel = serial_and_parallel(_oph_body)


@numba.njit(cache=True, nogil=True)
def oph_raw_char_doc(buf, start, stop, cls, lower, ascii_out, max_chars, size, salt, mins):
    """oph_char_doc over a raw UTF-8 document, normalised on the fly (_next_normalized)."""
    k = mins.size - 1
    mask, window, top = _window(size)
    h, c = np.uint64(0), 0
    i, read, pending = start, 0, np.int64(-1)
    while True:
        cp, i, read, pending = _next_normalized(buf, i, stop, cls, lower, ascii_out, read, max_chars, pending)
        if cp < 0:
            break
        h = _roll(h, np.uint64(cp), window, c, mask, size, top)
        c += 1
        _keep_least(mins, h, salt, k, c >= size)
    return _short_text(mins, h, c, size, salt, k)


@numba.njit(cache=True, nogil=True)
def _word_end(buf, start, stop, ascii_out):
    """End of a raw document's last word character when only ASCII separators follow it (start:
    none), or -1 when a non-ASCII byte comes first (the caller takes the general path)."""
    e = stop
    while e > start:
        o = ascii_out[buf[e - 1]]
        if o == 255:
            return -1
        if o != 0:
            return e
        e -= 1
    return start


@numba.njit(cache=True, nogil=True)
def flat_code_points(buf, start, stop, limit, cls, lower, ascii_out, out):
    """The normalised code points of buf[start:stop], a raw document up to its last word character
    (_word_end; `limit` is its true end, as the decoder reads) not cut by max_chars, into out;
    returns their count. No branch on the text: each byte
    writes its output and keeps it when it is a word character or the first separator after one
    (the normalised text's single space, never trailing here). Branches on each word boundary
    made the fused loop of oph_raw_char_doc about 2× slower than this pass and oph_code_points."""
    n = 0
    prev_word = False
    i = start
    while i < stop:
        o = np.int64(ascii_out[buf[i]])
        if o == 255:   # not ASCII: the general decoder
            x, k = _decode(buf, i, limit)
            cl = cls[x] if x < cls.size else SEPARATOR
            o = 0 if cl == SEPARATOR else (48 if cl == DIGIT else np.int64(lower[x]))
            i += k
        else:
            i += 1
        word = o != 0
        out[n] = o if word else 32
        n += np.int64(word | prev_word)
        prev_word = word
    return n


@numba.njit(cache=True, nogil=True)
def oph_code_points(cps, n, size, salt, mins):
    """oph_char_doc over the code points cps[:n] of a normalised document (rolled the same way,
    without a window: the code point leaving the n-gram is read back from cps)."""
    k = mins.size - 1
    top = np.uint64(1)
    for _ in range(size):
        top *= GOLDEN
    h = np.uint64(0)
    for c in range(min(size, n)):
        h = h * GOLDEN + np.uint64(cps[c])
    if n >= size:
        _keep_least(mins, h, salt, k)
    for c in range(size, n):
        h = h * GOLDEN + np.uint64(cps[c]) - np.uint64(cps[c - size]) * top
        _keep_least(mins, h, salt, k)
    return _short_text(mins, h, n, size, salt, k)


@numba.njit(cache=True, nogil=True)
def oph_any_char_doc(buf, start, stop, cls, lower, ascii_out, max_chars, size, salt, mins, scratch):
    """oph_raw_char_doc, in two passes (flat_code_points into scratch, then oph_code_points) where
    they apply: most prompts. scratch holds at least stop - start code points."""
    end = _word_end(buf, start, stop, ascii_out)
    if end >= 0 and stop - start <= max_chars:   # bytes >= code points: max_chars cuts nothing
        n = flat_code_points(buf, start, end, stop, cls, lower, ascii_out, scratch)
        return oph_code_points(scratch, n, size, salt, mins)
    return oph_raw_char_doc(buf, start, stop, cls, lower, ascii_out, max_chars, size, salt, mins)


def _oph_raw_body(buf, offsets, cls, lower, ascii_out, max_chars, size, salts, k, bounds):
    """_oph_body for character n-grams of raw UTF-8 documents, normalised on the fly
    (_next_normalized) rather than through a normalised copy: the same signatures as
    oph_serial(normalize(buf)), with no buffer written and no byte read twice."""
    n_docs = offsets.size - 1
    sig = np.empty((n_docs, k), np.uint32)
    salt, probe_salt = salts[0], salts[1]
    for blk in numba.prange(bounds.size - 1):
        mins = np.empty(k + 1, np.uint32)   # + a spare bin (_keep_least)
        longest = 0
        for d in range(bounds[blk], bounds[blk + 1]):
            longest = max(longest, offsets[d + 1] - offsets[d])
        scratch = np.empty(longest + 1, np.uint32)
        for d in range(bounds[blk], bounds[blk + 1]):
            mins[:] = EMPTY
            m = oph_any_char_doc(buf, offsets[d], offsets[d + 1], cls, lower, ascii_out, max_chars, size, salt,
                                 mins, scratch)
            _densified(mins, m, probe_salt, sig[d])
    return sig


oph_raw_serial, oph_raw_parallel = serial_and_parallel(_oph_raw_body)


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
