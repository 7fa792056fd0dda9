"""NumPy helpers for integer codes at the seams of the stages.

`np.unique` of NumPy 2.4 without `return_index`/`return_inverse`/`return_counts` takes a hash-based
path that is 10–25× slower than a sort on int64 codes (2M random codes: 4–7 s against 0.3 s; 5M:
23 s), so the distinct values of large code arrays are taken by sorting.
"""
from __future__ import annotations

import numpy as np


def sorted_unique(values) -> np.ndarray:
    """The distinct values of an integer array, sorted (what `np.unique(values)` returns)."""
    out = np.sort(np.asarray(values).ravel())
    if out.size < 2:
        return out
    return out[np.concatenate(([True], out[1:] != out[:-1]))]


def csr_rows(start: np.ndarray, ids) -> np.ndarray:
    """The row positions of the CSR slices start[i]:start[i + 1] of each i in ids, concatenated in
    the order of ids (what np.concatenate of the aranges gives, without a Python loop)."""
    ids = np.asarray(ids, np.int64)
    lo = start[ids]
    length = start[ids + 1] - lo
    total = int(length.sum())
    if not total:
        return np.zeros(0, np.int64)
    return np.repeat(lo - np.cumsum(length) + length, length) + np.arange(total, dtype=np.int64)
