"""IP address parsing for the loader: text → (version, high 64 bits, low 64 bits, canonical text).

Each distinct address is parsed once (logs repeat addresses), all of them in one Numba pass over
their UTF-8 bytes end to end (an Arrow-style data buffer and offsets), so there is no Python per
address and no per-character matrix. Whitespace around an address is ignored (Python's
`str.strip`, Unicode whitespace included). The grammar is that of Python's `ipaddress` (the test
oracle, tests/test_ipaddr.py): dotted IPv4 without leading zeros; IPv6 with at most one `::`,
hextets of at most 4 hex digits, an optional dotted IPv4 tail and an optional `%zone`; IPv4-mapped
IPv6 (::ffff:a.b.c.d) becomes IPv4. IPv6 text is the compressed form `ipaddress` gives (zone kept as
written); IPv4 text is the address as written.
"""
from __future__ import annotations

import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from keyfarm.utf8 import strip_bounds, utf8_buffers

_V6_WIDTH = 45          # six hextets and a dotted tail: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"

_HEX = np.full(256, -1, np.int64)
_HEX[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_HEX[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_HEX[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)
_HEX_TEXT = np.frombuffer(b"0123456789abcdef", np.uint8).copy()


def parse_addresses(text) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Parse address strings (whitespace around them ignored): version (4, 6, or 0 for
    malformed), high and low 64 bits (uint64; IPv4 in the low 32), and canonical text (object
    array, None if malformed)."""
    text = np.asarray(text, dtype=object)
    n = len(text)
    if n == 0:
        return np.zeros(0, np.int8), np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, dtype=object)
    data, offsets = utf8_buffers(text)
    start, end = strip_bounds(data, offsets)
    version, hi, lo, out, out_start, out_len = _parse(data, start, end, _HEX, _HEX_TEXT)
    return version, hi, lo, _canonical_text(out, out_start, out_len, version)


def parse_ips(ips: pd.Series) -> pd.DataFrame:
    """Parse a column of IP text into `ip` (canonical), `ip_version` (0 = malformed), `ip_hi`, `ip_lo`.

    Leading/trailing whitespace is ignored; null and unparsable values get version 0 (the
    loader's coercion, keyfarm.coerce.addresses, on one column).
    """
    from keyfarm import coerce   # coerce builds on this module

    parsed, _ = coerce.addresses(coerce.factor(ips))
    return pd.DataFrame(parsed.columns(np.arange(len(ips))), index=ips.index)


def format_ipv4(value: np.ndarray) -> np.ndarray:
    """Dotted-quad text of 32-bit IPv4 integers (vectorised)."""
    v = np.asarray(value, dtype=np.uint64)
    parts = [pa.array((v >> np.uint64(s)) & np.uint64(255)).cast(pa.string()) for s in (24, 16, 8, 0)]
    return np.asarray(pc.binary_join_element_wise(*parts, ".").to_numpy(zero_copy_only=False), dtype=object)


# ---------------------------------------------------------------- wrappers' helpers

def _canonical_text(out: np.ndarray, start: np.ndarray, length: np.ndarray, version: np.ndarray) -> np.ndarray:
    """The kernel's canonical texts (bytes at `start`, `length` each) as Python strings, None where
    malformed; a zone holding a lone surrogate is decoded as it was encoded (surrogatepass)."""
    data, offsets = _compact(out, start, length)
    arr = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(length), [None, pa.py_buffer(offsets),
                                                                          pa.py_buffer(data)])
    try:
        canon = np.asarray(arr.cast(pa.large_string()).to_numpy(zero_copy_only=False), dtype=object)
    except pa.ArrowInvalid:
        canon = np.array([b.decode("utf-8", "surrogatepass") for b in arr.to_pylist()], dtype=object)
    canon[version == 0] = None
    return canon


# ---------------------------------------------------------------- kernels

@numba.njit(cache=True, nogil=True)
def _parse(data, starts, ends, hexval, hextext):
    """Per string of data[starts[i]:ends[i]]: version, hi, lo, and its canonical text written to
    `out` at out_start[i] (out_len[i] bytes; 0 when malformed)."""
    n = starts.size
    version = np.zeros(n, np.int8)
    hi = np.zeros(n, np.uint64)
    lo = np.zeros(n, np.uint64)
    out_start = np.empty(n, np.int64)
    out_len = np.zeros(n, np.int64)
    total = 0
    for i in range(n):
        out_start[i] = total
        total += ends[i] - starts[i] + 41   # room for 39 characters of IPv6 text and '%'
    out = np.zeros(total, np.uint8)
    hextets = np.zeros(8, np.int64)
    for i in range(n):
        s, e = starts[i], ends[i]
        colon = False
        slash = False
        pct = -1
        for j in range(s, e):
            c = data[j]
            if c == 58:
                colon = True
            elif c == 47:
                slash = True
            elif c == 37 and pct < 0:
                pct = j
        pos = out_start[i]
        if not colon:
            ok, value = _ipv4(data, s, e)
            if ok:
                version[i] = 4
                lo[i] = np.uint64(value)
                for j in range(s, e):
                    out[pos + j - s] = data[j]
                out_len[i] = e - s
            continue
        if slash:
            continue
        end = e
        if pct >= 0:
            end = pct
            if pct + 1 >= e:
                continue
            second = False
            for j in range(pct + 1, e):
                if data[j] == 37:
                    second = True
            if second:
                continue
        if end - s > 45 or not _ipv6(data, s, end, hexval, hextets):
            continue
        h = np.uint64(0)
        lw = np.uint64(0)
        for k in range(4):
            h = (h << np.uint64(16)) | np.uint64(hextets[k])
            lw = (lw << np.uint64(16)) | np.uint64(hextets[k + 4])
        if h == 0 and hextets[4] == 0 and hextets[5] == 0xFFFF:   # IPv4-mapped: the IPv4 address
            version[i] = 4
            lo[i] = lw & np.uint64(0xFFFFFFFF)
            out_len[i] = _write_ipv4(out, pos, hextets[6] * 65536 + hextets[7])
            continue
        version[i] = 6
        hi[i] = h
        lo[i] = lw
        w = _write_compressed(out, pos, hextets, hextext)
        if pct >= 0:
            for j in range(pct, e):
                out[pos + w] = data[j]
                w += 1
        out_len[i] = w
    return version, hi, lo, out, out_start, out_len


@numba.njit(cache=True, nogil=True)
def _ipv4(data, s, e):
    """(valid, value) of dotted-quad data[s:e]: four fields of 1–3 ASCII digits, no leading zero
    but "0" itself, each at most 255 (ipaddress.IPv4Address)."""
    if e <= s:
        return False, 0
    value = 0
    fields = 0
    cur = 0
    digits = 0
    lead0 = False
    for j in range(s, e + 1):
        if j == e or data[j] == 46:
            if digits == 0 or digits > 3 or (lead0 and digits > 1) or cur > 255:
                return False, 0
            value = (value << 8) | cur
            fields += 1
            cur = 0
            digits = 0
        else:
            c = data[j]
            if c < 48 or c > 57:
                return False, 0
            if digits == 0:
                lead0 = c == 48
            if digits < 4:
                cur = cur * 10 + (c - 48)
            digits += 1
    if fields != 4:
        return False, 0
    return True, value


@numba.njit(cache=True, nogil=True)
def _hextet(data, s, e, hexval):
    """Value of hextet data[s:e] (1–4 hex digits), or -1."""
    if e <= s or e - s > 4:
        return -1
    v = 0
    for j in range(s, e):
        h = hexval[data[j]]
        if h < 0:
            return -1
        v = (v << 4) | h
    return v


@numba.njit(cache=True, nogil=True)
def _ipv6(data, s, e, hexval, hextets):
    """Whether data[s:e] (no zone) is IPv6 text; its 8 hextets into `hextets`. The rules of
    ipaddress.IPv6Address._ip_int_from_string, step by step."""
    if e <= s:
        return False
    starts = np.empty(11, np.int64)
    ends = np.empty(11, np.int64)
    nparts = 0
    begin = s
    for j in range(s, e + 1):
        if j == e or data[j] == 58:
            if nparts == 10:        # more than 9 parts is invalid whatever follows
                return False
            starts[nparts] = begin
            ends[nparts] = j
            nparts += 1
            begin = j + 1
    if nparts < 3:
        return False
    # a dotted tail (a '.' in the last part) is an IPv4 address: two hextets
    tail = -1
    ls, le = starts[nparts - 1], ends[nparts - 1]
    for j in range(ls, le):
        if data[j] == 46:
            tail = 0
    count = nparts
    if tail == 0:
        ok4, v4 = _ipv4(data, ls, le)
        if not ok4:
            return False
        tail = v4
        count = nparts + 1
    if count > 9:
        return False
    # part i is empty? (the tail's two parts never are)
    skip = -1
    for i in range(1, count - 1):
        if (tail < 0 or i < nparts - 1) and ends[i] == starts[i]:
            if skip >= 0:
                return False
            skip = i
    first_empty = ends[0] == starts[0]
    last_empty = tail < 0 and ends[nparts - 1] == starts[nparts - 1]
    if skip >= 0:
        parts_hi = skip
        parts_lo = count - skip - 1
        if first_empty:
            parts_hi -= 1
            if parts_hi:
                return False
        if last_empty:
            parts_lo -= 1
            if parts_lo:
                return False
        if 8 - (parts_hi + parts_lo) < 1:
            return False
    else:
        if count != 8 or first_empty or last_empty:
            return False
        parts_hi = count
        parts_lo = 0
    for k in range(8):
        hextets[k] = 0
    for k in range(parts_hi + parts_lo):
        i = k if k < parts_hi else count - parts_hi - parts_lo + k
        slot = k if k < parts_hi else 8 - parts_hi - parts_lo + k
        if tail >= 0 and i >= nparts - 1:
            v = (tail >> 16) & 0xFFFF if i == nparts - 1 else tail & 0xFFFF
        else:
            v = _hextet(data, starts[i], ends[i], hexval)
            if v < 0:
                return False
        hextets[slot] = v
    return True


@numba.njit(cache=True, nogil=True)
def _write_ipv4(out, pos, value):
    """Dotted quad of `value` at out[pos:]; its length."""
    w = 0
    for shift in (24, 16, 8, 0):
        octet = (value >> shift) & 255
        if octet >= 100:
            out[pos + w] = 48 + octet // 100
            w += 1
        if octet >= 10:
            out[pos + w] = 48 + (octet // 10) % 10
            w += 1
        out[pos + w] = 48 + octet % 10
        w += 1
        if shift:
            out[pos + w] = 46
            w += 1
    return w


@numba.njit(cache=True, nogil=True)
def _write_compressed(out, pos, hextets, hextext):
    """ipaddress' compressed text of 8 hextets at out[pos:] (lower-case hex without leading
    zeros, the first longest run of two or more zero hextets as '::'); its length."""
    best_start, best_len, run = -1, 0, 0
    for k in range(8):
        if hextets[k] == 0:
            run += 1
            if run > best_len:
                best_len = run
                best_start = k - run + 1
        else:
            run = 0
    if best_len < 2:
        best_start = -1
    w = 0
    k = 0
    while k < 8:
        if k == best_start:          # the run, between its neighbours' texts: '::'
            out[pos + w] = 58
            out[pos + w + 1] = 58
            w += 2
            k += best_len
            continue
        v = hextets[k]
        started = False
        for shift in (12, 8, 4, 0):
            d = (v >> shift) & 15
            if d or started or shift == 0:
                out[pos + w] = hextext[d]
                w += 1
                started = True
        k += 1
        if k < 8 and k != best_start:
            out[pos + w] = 58
            w += 1
    return w


@numba.njit(cache=True, nogil=True)
def _compact(out, start, length):
    """The pieces out[start[i]:start[i] + length[i]] end to end, and their offsets."""
    offsets = np.zeros(length.size + 1, np.int64)
    for i in range(length.size):
        offsets[i + 1] = offsets[i] + length[i]
    data = np.empty(max(offsets[-1], 1), np.uint8)
    for i in range(length.size):
        data[offsets[i]:offsets[i + 1]] = out[start[i]:start[i] + length[i]]
    return data, offsets
