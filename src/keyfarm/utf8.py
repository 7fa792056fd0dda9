"""Python strings as UTF-8 bytes end to end (an Arrow data buffer and offsets), and Python's
`str.strip()` over those bytes in Numba: the loader's text checks on distinct values without a
Python call per value (ids are stripped, addresses parsed; keyfarm.coerce, keyfarm.ipaddr)."""
from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# the code points Python's str.strip() removes (str.isspace), as a lookup table
_SPACE_CODES = (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0, 0x1680,
                *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000)
_SPACE = np.zeros(0x3001, np.bool_)
_SPACE[list(_SPACE_CODES)] = True


def utf8_buffers(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of all strings (an object array of str) end to end, and their offsets (n + 1);
    a lone surrogate (text from JSON) is kept as its bytes (surrogatepass), so it is a character
    no address or whitespace holds."""
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
    return data, offsets.astype(np.int64)


def strip_bounds(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Byte start and end of each string without what str.strip() removes from its ends."""
    return _strip_bounds(data, offsets, _SPACE)


def strip(text: np.ndarray) -> np.ndarray:
    """`[s.strip() for s in text]` (an object array of str), the unchanged strings kept as they
    are; only the few that change are stripped by Python."""
    text = np.asarray(text, dtype=object)
    if len(text) == 0:
        return text.copy()
    data, offsets = utf8_buffers(text)
    start, end = strip_bounds(data, offsets)
    changed = np.flatnonzero((start != offsets[:-1]) | (end != offsets[1:]))
    out = text.copy()
    if changed.size:
        out[changed] = [s.strip() for s in text[changed]]
    return out


@numba.njit(cache=True, nogil=True)
def _strip_bounds(data, offsets, space):
    n = offsets.size - 1
    start = np.empty(n, np.int64)
    end = np.empty(n, np.int64)
    for i in range(n):
        s, e = offsets[i], offsets[i + 1]
        while s < e:
            cp, width = _decode(data, s, e)
            if cp < 0 or cp >= space.size or not space[cp]:
                break
            s += width
        while e > s:
            lead = e - 1
            while lead > s and 0x80 <= data[lead] < 0xC0:
                lead -= 1
            cp, width = _decode(data, lead, e)
            if lead + width != e or cp < 0 or cp >= space.size or not space[cp]:
                break
            e = lead
        start[i] = s
        end[i] = e
    return start, end


@numba.njit(cache=True, nogil=True)
def _decode(data, s, e):
    """(code point, bytes) of the UTF-8 sequence at data[s] (surrogatepass bytes decode too);
    a broken sequence is (-1, 1): no whitespace."""
    c = np.int64(data[s])
    if c < 0x80:
        return c, 1
    if c >= 0xF0:
        width = 4
        cp = c & 0x07
    elif c >= 0xE0:
        width = 3
        cp = c & 0x0F
    elif c >= 0xC0:
        width = 2
        cp = c & 0x1F
    else:
        return -1, 1
    if s + width > e:
        return -1, 1
    for k in range(1, width):
        cp = (cp << 6) | (np.int64(data[s + k]) & 0x3F)
    return cp, width
