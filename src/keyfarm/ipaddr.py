"""Vectorised IP address parsing for the loader: text → (version, high 64 bits, low 64 bits, canonical text).

Each distinct address is parsed once (logs repeat addresses), and the distinct ones together: their
bytes sit in a matrix (one row per address, one column per character) and a small state machine
walks the columns, so the work is NumPy operations over all addresses at once, never Python per
address. The grammar is that of Python's `ipaddress` (the test oracle, tests/test_ipaddr.py): dotted
IPv4 without leading zeros; IPv6 with at most one `::`, hextets of at most 4 hex digits, an optional
dotted IPv4 tail and an optional `%zone`; IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes IPv4. IPv6 text
is the compressed form `ipaddress` gives (zone kept); IPv4 text is the address as written.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_V4_WIDTH = 15          # "255.255.255.255"
_V6_WIDTH = 45          # six hextets and a dotted tail: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
_MAX_FIELDS = 10        # fields between colons we track (9 is the most a valid address has)

_HEX = np.full(256, -1, np.int64)
_HEX[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_HEX[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_HEX[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)
_COLON, _DOT, _ZERO = ord(":"), ord("."), ord("0")


def parse_addresses(text) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Parse address strings (already stripped): version (4, 6, or 0 for malformed), high and low
    64 bits (uint64; IPv4 in the low 32), and canonical text (object array, None if malformed)."""
    text = np.asarray(text, dtype=object)
    n = len(text)
    version = np.zeros(n, np.int8)
    hi = np.zeros(n, np.uint64)
    lo = np.zeros(n, np.uint64)
    canon = np.full(n, None, dtype=object)
    if n == 0:
        return version, hi, lo, canon
    data, offsets = _utf8_buffers(text)
    length = np.diff(offsets)
    has_colon = _contains(data, offsets, _COLON)
    has_slash = _contains(data, offsets, ord("/"))

    # IPv4: no colon at all
    cand4 = np.flatnonzero(~has_colon & (length <= _V4_WIDTH))
    ok4, value4 = _parse_ipv4(_matrix(data, offsets[cand4], length[cand4], _V4_WIDTH), length[cand4])
    version[cand4[ok4]] = 4
    lo[cand4[ok4]] = value4[ok4].astype(np.uint64)
    canon[cand4[ok4]] = text[cand4[ok4]]

    # IPv6: a colon, no slash; the address part ends at the first '%' (the zone follows)
    cand6 = np.flatnonzero(has_colon & ~has_slash)
    if cand6.size:
        start = offsets[cand6]
        pct = _first(data, start, length[cand6], ord("%"))
        addr_len = np.where(pct >= 0, pct, length[cand6])
        zone_len = np.where(pct >= 0, length[cand6] - pct - 1, 0)
        # a zone must be non-empty and hold no second '%'
        zone_ok = (pct < 0) | ((zone_len > 0) &
                               (_first(data, start + pct + 1, zone_len, ord("%")) < 0))
        fits = zone_ok & (addr_len <= _V6_WIDTH)
        rows = cand6[fits]
        ok6, h, l, hextets = _parse_ipv6(_matrix(data, offsets[rows], addr_len[fits], _V6_WIDTH), addr_len[fits])
        mapped = ok6 & (h == 0) & ((l >> np.uint64(32)) == np.uint64(0xFFFF))
        v4 = rows[mapped]
        version[v4] = 4
        lo[v4] = l[mapped] & np.uint64(0xFFFFFFFF)
        canon[v4] = format_ipv4(lo[v4])
        real = ok6 & ~mapped
        v6 = rows[real]
        version[v6] = 6
        hi[v6] = h[real]
        lo[v6] = l[real]
        text6 = _compressed(hextets[real])
        zoned = pct[fits][real] >= 0
        if zoned.any():   # the zone as written (rare: per distinct zoned address)
            text6[zoned] = [t + "%" + s.partition("%")[2] for t, s in zip(text6[zoned], text[v6[zoned]])]
        canon[v6] = text6
    return version, hi, lo, canon


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


# ---------------------------------------------------------------- helpers

def _utf8_buffers(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of all strings end to end, and their offsets (n + 1); a lone surrogate (text
    from JSON) is kept as its bytes, so it is a character no address holds."""
    try:
        arr = pa.array(text, pa.string())
    except (pa.ArrowException, UnicodeEncodeError):
        arr = pa.array([s.encode("utf-8", "surrogatepass") for s in text], pa.binary())
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    arr = arr.cast(pa.large_binary())
    offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data_buf = arr.buffers()[2]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return np.append(data, np.uint8(0)), offsets.astype(np.int64)   # one spare byte: gathers never run off


def _matrix(data: np.ndarray, start: np.ndarray, length: np.ndarray, width: int) -> np.ndarray:
    """Rows of `width` bytes: string i from data[start[i]:], zero past its `length`."""
    pos = np.arange(width)
    idx = np.minimum(start[:, None] + pos, data.size - 1)
    return np.where(pos < length[:, None], data[idx], 0).astype(np.uint8)


def _contains(data: np.ndarray, offsets: np.ndarray, byte: int) -> np.ndarray:
    """Whether each string holds `byte` (one pass over all bytes)."""
    hits = np.flatnonzero(data[:-1] == byte)
    return np.bincount(np.searchsorted(offsets, hits, side="right") - 1, minlength=offsets.size - 1)[:offsets.size - 1] > 0


def _first(data: np.ndarray, start: np.ndarray, length: np.ndarray, byte: int) -> np.ndarray:
    """Position of the first `byte` in each data[start:start+length], or −1."""
    out = np.full(start.size, -1, np.int64)
    hits = np.flatnonzero(data[:-1] == byte)
    if hits.size == 0 or start.size == 0:
        return out
    k = np.searchsorted(hits, start)                  # first hit at or after each start
    found = k < hits.size
    pos = np.where(found, hits[np.minimum(k, hits.size - 1)] - start, -1)
    inside = found & (pos < length)
    out[inside] = pos[inside]
    return out


def _parse_ipv4(m: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dotted quads in byte rows `m`: (valid, value). Four fields of 1–3 ASCII digits, no leading
    zero but "0" itself, each at most 255 (the rules of ipaddress.IPv4Address)."""
    n, width = m.shape
    ok = length > 0
    value = np.zeros(n, np.int64)
    field = np.zeros(n, np.int64)        # octet being read
    cur = np.zeros(n, np.int64)
    digits = np.zeros(n, np.int64)
    lead0 = np.zeros(n, bool)
    for j in range(width + 1):
        c = m[:, j] if j < width else np.zeros(n, np.uint8)
        inside = j < length
        end = ~inside | (c == _DOT)     # a field ends at a dot or at the end of the string
        closing = end & (j <= length)   # the end of the string closes its last field once
        digit = inside & (c >= _ZERO) & (c <= _ZERO + 9)
        ok &= ~(inside & ~digit & (c != _DOT))
        bad_field = closing & ((digits == 0) | (digits > 3) | (lead0 & (digits > 1)) | (cur > 255))
        ok &= ~bad_field
        value = np.where(closing, (value << 8) | np.minimum(cur, 255), value)
        field += closing
        lead0 = np.where(closing, False, np.where(digit & (digits == 0), c == _ZERO, lead0))
        cur = np.where(closing, 0, np.where(digit, np.minimum(cur * 10 + (c.astype(np.int64) - _ZERO), 10_000), cur))
        digits = np.where(closing, 0, digits + digit)
    ok &= field == 4
    return ok, value


def _parse_ipv6(m: np.ndarray, length: np.ndarray):
    """IPv6 text (no zone) in byte rows `m`: (valid, high 64 bits, low 64 bits, the 8 hextets);
    the rules of ipaddress.IPv6Address._ip_int_from_string, vectorised over rows."""
    n, width = m.shape
    rows = np.arange(n)
    # split at colons: per field its hex value, length, and whether it holds only hex digits
    f_val = np.zeros((n, _MAX_FIELDS), np.int64)
    f_len = np.zeros((n, _MAX_FIELDS), np.int64)
    f_hex = np.ones((n, _MAX_FIELDS), bool)
    field = np.zeros(n, np.int64)
    cur = np.zeros(n, np.int64)
    cur_len = np.zeros(n, np.int64)
    cur_hex = np.ones(n, bool)
    last_start = np.zeros(n, np.int64)  # where the last field starts
    for j in range(width + 1):
        c = m[:, j] if j < width else np.zeros(n, np.uint8)
        inside = j < length
        colon = inside & (c == _COLON)
        closing = (colon | (j == length)) & (field < _MAX_FIELDS)
        h = _HEX[c]
        char = inside & ~colon
        cur_hex &= ~(char & (h < 0))
        cur = np.where(char, np.minimum((cur << 4) | np.maximum(h, 0), 1 << 20), cur)
        cur_len += char
        k = np.minimum(field, _MAX_FIELDS - 1)
        f_val[rows[closing], k[closing]] = cur[closing]
        f_len[rows[closing], k[closing]] = cur_len[closing]
        f_hex[rows[closing], k[closing]] = cur_hex[closing]
        field += colon
        last_start = np.where(colon, j + 1, last_start)
        cur = np.where(colon, 0, cur)
        cur_len = np.where(colon, 0, cur_len)
        cur_hex = np.where(colon, True, cur_hex)
    parts = field + 1                    # fields as written (ipaddress: ip_str.split(':'))
    ok = (length > 0) & (parts >= 3) & (parts <= _MAX_FIELDS - 1)
    last = np.minimum(parts - 1, _MAX_FIELDS - 1)

    # a dotted tail (a '.' in the last field) is an IPv4 address: two hextets
    tail_len = length - last_start
    tail = _matrix(m.reshape(-1), rows * width + last_start, np.minimum(tail_len, width), width)
    has_dot = (tail == _DOT).any(axis=1)
    t_ok, t_val = _parse_ipv4(tail[:, :_V4_WIDTH], np.where(tail_len <= _V4_WIDTH, tail_len, 0))
    ok &= ~has_dot | t_ok
    # hextets in order (the tail as two), their lengths, hex-only flags
    hv, hl, hh = f_val.copy(), f_len.copy(), f_hex.copy()
    d = np.flatnonzero(has_dot & ok)
    hv[d, last[d]] = t_val[d] >> 16
    hv[d, last[d] + 1] = t_val[d] & 0xFFFF
    hl[d, last[d]] = hl[d, last[d] + 1] = 1
    hh[d, last[d]] = hh[d, last[d] + 1] = True
    count = parts + has_dot              # ipaddress's len(parts) after the tail's conversion
    ok &= count <= 9

    idx = np.arange(_MAX_FIELDS)
    empty = (hl == 0) & (idx < count[:, None])
    interior = empty & (idx >= 1) & (idx < (count - 1)[:, None])
    n_skip = interior.sum(axis=1)
    ok &= n_skip <= 1
    skip = np.where(n_skip == 1, np.argmax(interior, axis=1), -1)
    first_empty = empty[:, 0]
    last_empty = empty[rows, np.maximum(count - 1, 0)]
    with_skip = skip >= 0
    parts_hi = np.where(with_skip, skip - first_empty, count)
    parts_lo = np.where(with_skip, count - skip - 1 - last_empty, 0)
    ok &= np.where(with_skip, ~(first_empty & (parts_hi != 0)) & ~(last_empty & (parts_lo != 0))
                   & (8 - (parts_hi + parts_lo) >= 1),
                   (count == 8) & ~first_empty & ~last_empty)
    used = (idx < parts_hi[:, None]) | ((idx >= (count - parts_lo)[:, None]) & (idx < count[:, None]))
    ok &= ~(used & ((hl == 0) | (hl > 4) | ~hh)).any(axis=1)

    # the 8 hextets: the first parts_hi, zeros, the last parts_lo
    slot = np.arange(8)
    src = np.where(slot < parts_hi[:, None], slot,
                   np.where(slot >= (8 - parts_lo)[:, None], (count - 8)[:, None] + slot, -1))
    hextets = np.where(src >= 0, np.take_along_axis(hv, np.clip(src, 0, _MAX_FIELDS - 1), axis=1), 0)
    hextets = np.where(ok[:, None], hextets, 0).astype(np.uint64)
    shifts = np.array([48, 32, 16, 0], np.uint64)
    hi = np.bitwise_or.reduce(hextets[:, :4] << shifts, axis=1)
    lo = np.bitwise_or.reduce(hextets[:, 4:] << shifts, axis=1)
    return ok, hi, lo, hextets


_HEXTET_TEXT: pa.Array | None = None


def _compressed(hextets: np.ndarray) -> np.ndarray:
    """ipaddress' compressed text of rows of 8 hextets: lower-case hex without leading zeros, the
    first longest run of two or more zero hextets as '::'."""
    global _HEXTET_TEXT
    n = len(hextets)
    if n == 0:
        return np.zeros(0, dtype=object)
    if _HEXTET_TEXT is None:   # "0" .. "ffff": one table of 65,536 strings, built once
        _HEXTET_TEXT = pa.array(np.char.mod("%x", np.arange(1 << 16)).astype(object), pa.string())
    zero = hextets == 0
    run = np.zeros(n, np.int64)
    best_len = np.zeros(n, np.int64)
    best_start = np.full(n, -1, np.int64)
    for s in range(8):
        run = np.where(zero[:, s], run + 1, 0)
        better = run > best_len
        best_len = np.where(better, run, best_len)
        best_start = np.where(better, s - run + 1, best_start)
    compress = best_len > 1
    end = best_start + best_len
    # '' in place of the run (and one more at either end of the address), null (skipped) elsewhere
    slot = np.arange(8)
    in_run = compress[:, None] & (slot >= best_start[:, None]) & (slot < end[:, None])
    n_empty = 1 + (best_start == 0) + (end == 8)
    empty = in_run & (slot - best_start[:, None] < n_empty[:, None])
    columns = []
    for s in range(8):
        col = _HEXTET_TEXT.take(pa.array(hextets[:, s].astype(np.int64)))
        col = pc.if_else(pa.array(empty[:, s]), "", col)
        columns.append(pc.if_else(pa.array(in_run[:, s] & ~empty[:, s]), pa.scalar(None, pa.string()), col))
    joined = pc.binary_join_element_wise(*columns, ":", null_handling="skip")
    return np.asarray(joined.to_numpy(zero_copy_only=False), dtype=object)
