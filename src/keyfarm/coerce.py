"""Coercing one input column to its SCHEMA.md kind, over distinct values and per-row codes.

Logs repeat their values (ids, addresses, user agents, prompts, timestamps), and the readers hand
text columns over dictionary-encoded (pandas Categoricals from Arrow dictionaries), so a column is
worked on as a `Factor`: its distinct values once, and per row only an integer code. Every parse,
strip and check runs on the distinct values; per row there is only NumPy indexing by codes. Columns
of other dtypes (numbers, booleans, Parquet timestamps) are coerced with NumPy directly.

The functions here say which rows have which problem; io.py decides what a problem does (quarantine
the row or null the value) and keeps the counts.
"""
from __future__ import annotations

import datetime
import decimal
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from keyfarm import schema, utf8
from keyfarm.ipaddr import parse_addresses

NAT = np.iinfo(np.int64).min
_TS_BOUNDS = (pd.Timestamp(schema.MIN_TS), pd.Timestamp(schema.MAX_TS))


@dataclass
class Factor:
    """A column as distinct `values` (object array) and per-row `codes` into them (−1: missing)."""

    codes: np.ndarray
    values: np.ndarray

    def take(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The values of `rows` (all rows if None) as an object array, None where missing."""
        codes = self.codes if rows is None else self.codes[rows]
        return np.append(self.values, None)[codes]

    def ranks(self, rows: np.ndarray) -> np.ndarray:
        """Sort ranks of the values of `rows` (missing first, as −1), equal values equal ranks;
        only the distinct values those rows hold are sorted."""
        used, inverse = np.unique(self.codes[rows], return_inverse=True)
        out = np.full(len(used), -1, np.int64)
        present = used >= 0
        out[present] = sort_ranks(self.values[used[present]])
        return out[inverse]

    def nulled(self, mask: np.ndarray) -> Factor:
        return Factor(np.where(mask, -1, self.codes).astype(self.codes.dtype), self.values)

    def distinct(self) -> Factor:
        """The same column with equal values merged (distinct raw values can give the same text)."""
        ids, uniques = pd.factorize(self.values, use_na_sentinel=True)
        return Factor(_small(np.append(ids, -1)[self.codes], len(uniques)), np.asarray(uniques, dtype=object))


def _small(codes: np.ndarray, n: int) -> np.ndarray:
    """Codes in int32 where they fit: they are one integer per row of the largest tables."""
    return codes.astype(np.int32 if n < 2**31 - 1 else np.int64, copy=False)


def factor(values: pd.Series) -> Factor:
    """Codes and distinct values of a column: a Categorical's own, else pandas' factorize."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return Factor(values.cat.codes.to_numpy(), np.asarray(values.cat.categories, dtype=object))
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return Factor(codes, np.asarray(pd.Series(uniques, dtype=object), dtype=object))


def sort_ranks(values: np.ndarray) -> np.ndarray:
    """Rank of each value in Python's order of them (equal values, equal ranks). Arrow sorts
    strings by their UTF-8 bytes, the same order as Python's code points; other values (or text
    Arrow cannot hold, such as a lone surrogate) are sorted by Python."""
    n = len(values)
    try:
        arr = pa.array(values, pa.string())
        order = pc.array_sort_indices(arr).to_numpy()
        sorted_values = arr.take(pa.array(order))
        new = np.ones(n, bool)
        if n > 1:
            new[1:] = pc.not_equal(sorted_values[1:], sorted_values[:-1]).to_numpy(zero_copy_only=False)
    except (pa.ArrowException, UnicodeEncodeError, TypeError):
        order = np.argsort(values, kind="stable")
        sv = values[order]
        new = np.ones(n, bool)
        if n > 1:
            new[1:] = sv[1:] != sv[:-1]
    ranks = np.empty(n, np.int64)
    ranks[order] = np.cumsum(new) - 1
    return ranks


# ---------------------------------------------------------------- values that are no scalar

_SCALARS = (str, int, float, decimal.Decimal, datetime.date, np.integer, np.floating, np.datetime64)
_SCALAR_KINDS = {"string", "empty", "integer", "floating", "mixed-integer-float", "decimal", "datetime",
                 "datetime64", "date", "categorical"}


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value is pd.NaT


def bad_values(values: pd.Series) -> np.ndarray:
    """Values that are no scalar of any column kind: lists and arrays (a Parquet list column),
    objects (a nested JSON value), booleans, bytes. Checked value by value only when pandas
    cannot tell the column is plain."""
    if values.dtype != object:
        return np.broadcast_to(pd.api.types.is_bool_dtype(values.dtype), len(values)) & values.notna().to_numpy()
    if pd.api.types.infer_dtype(values, skipna=True) in _SCALAR_KINDS:
        return np.zeros(len(values), bool)
    return np.fromiter((not (_is_missing(v) or (isinstance(v, _SCALARS) and not isinstance(v, (bool, np.bool_))))
                        for v in values), dtype=bool, count=len(values))


# ---------------------------------------------------------------- kinds

def text(values: pd.Series, f: Factor, strip: bool = False) -> Factor:
    """Ids and optional strings as Python str (missing stays missing); numbers become their text,
    and a float column's whole numbers their integer text (a numeric id column is float only
    because it has nulls: 10.0 is the id 10, as in CSV). Equal texts are merged."""
    uniques = pd.Series(f.values, dtype=object)
    if pd.api.types.is_float_dtype(values.dtype) and len(uniques):
        num = uniques.to_numpy(dtype=float)
        whole = np.isfinite(num) & (np.floor(num) == num) & (np.abs(num) < 2**53)
        out = pd.Series([str(int(v)) if w else str(v) for v, w in zip(num, whole)], dtype=object)
    else:
        out = uniques.astype(str)
    out = out.to_numpy(dtype=object)
    if strip:
        out = utf8.strip(out)
    if np.array_equal(out, f.values):   # text already (distinct raw values: distinct texts)
        return Factor(f.codes, out)
    return Factor(f.codes, out).distinct()


def empty_ids(ids: Factor) -> np.ndarray:
    """Rows whose id (`text(..., strip=True)`) is missing or blank."""
    return np.append(ids.values == "", True)[ids.codes]


def timestamps(values: pd.Series, f: Factor | None) -> tuple[np.ndarray, np.ndarray]:
    """UTC nanoseconds (NAT where unparsable or beyond pandas' range) of ISO 8601 text (`f`, its
    distinct values parsed once) or of Parquet timestamps, and the mask of those outside
    schema.MIN_TS..MAX_TS (also NAT)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values
        if getattr(ts.dt, "tz", None) is None:
            ts = ts.dt.tz_localize("UTC")
        ts = ts.dt.tz_convert("UTC")
        outside = ((ts < _TS_BOUNDS[0]) | (ts >= _TS_BOUNDS[1])).to_numpy(bool)   # before the cast to ns
        return ts.where(~outside).astype("datetime64[ns, UTC]").array.asi8.copy(), outside
    else:
        as_text = pd.Series(f.values, dtype=object).astype("string")
        parsed = pd.to_datetime(pd.Series(as_text.to_numpy(dtype=object), dtype=object), utc=True,
                                errors="coerce", format="ISO8601")
        ns = np.append(pd.DatetimeIndex(parsed).as_unit("ns").asi8, NAT)[f.codes]
    valid = ns != NAT
    outside = valid & ((ns < _TS_BOUNDS[0].value) | (ns >= _TS_BOUNDS[1].value))
    ns[outside] = NAT
    return ns, outside


def integers(values: pd.Series, f: Factor | None, col: schema.Column) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Float values (NaN where not a valid value) and the masks of the column's problems, by
    reason: not an integer, negative, above `col.max`, and 0 where 0 means "not given".

    Values compare as float64; bounds stay below 2**53, so no value above a bound passes as one
    within it, and every valid value converts exactly (2**63 − 1 is out of range, never −9.2e18).
    """
    limit = col.max if col.max is not None else schema.MAX_LIMIT
    if pd.api.types.is_bool_dtype(values.dtype):
        num = np.full(len(values), np.nan)
        present = values.notna().to_numpy()
    elif pd.api.types.is_numeric_dtype(values.dtype):
        num = values.to_numpy(dtype=float, na_value=np.nan)
        present = values.notna().to_numpy()
    else:
        stripped = pd.Series(f.values, dtype=object).astype(str).str.strip()
        parsed = pd.to_numeric(stripped, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        num = np.append(parsed, np.nan)[f.codes]
        present = np.append((stripped != "").to_numpy(), False)[f.codes]
    with np.errstate(invalid="ignore"):
        bad = present & (~np.isfinite(num) | (np.floor(num) != num))
        negative = present & ~bad & (num < 0)
        too_big = present & ~bad & (num > limit)
        zero = present & ~bad & (num == 0) if col.zero_is_null else np.zeros(len(values), bool)
    problems = {schema.REASON_BAD_INT: bad, schema.REASON_NEGATIVE: negative,
                schema.REASON_OUT_OF_RANGE: too_big, schema.REASON_ZERO_LIMIT: zero}
    clean = np.where(bad | negative | too_big | zero | ~present, np.nan, num)
    return clean, problems


def int64_array(clean: np.ndarray) -> pd.arrays.IntegerArray:
    """A nullable Int64 array of whole float values (NaN: missing)."""
    missing = np.isnan(clean)
    return pd.arrays.IntegerArray(np.where(missing, 0, clean).astype(np.int64), missing)


@dataclass
class Addresses:
    """An ip column: per row a code into the distinct canonical addresses (−1: missing or
    malformed) and per distinct address its version (4, 6), high and low 64 bits."""

    text: Factor
    version: np.ndarray
    hi: np.ndarray
    lo: np.ndarray

    def columns(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        codes = self.text.codes[rows]
        return {"ip": np.append(self.text.values, None)[codes],
                "ip_version": np.append(self.version, np.int8(0))[codes],
                "ip_hi": np.append(self.hi, np.uint64(0))[codes],
                "ip_lo": np.append(self.lo, np.uint64(0))[codes]}


def addresses(f: Factor) -> tuple[Addresses, np.ndarray]:
    """Parse an ip column's distinct values (whitespace around them ignored) with
    ipaddr.parse_addresses; also the rows that hold no valid address."""
    as_text = pd.Series(f.values, dtype=object).astype("string").to_numpy(dtype=object)
    version, hi, lo, canon = parse_addresses(as_text)
    bad_u = version == 0
    ids, uniques = pd.factorize(np.where(bad_u, None, canon), use_na_sentinel=True)   # equal texts merged
    first = np.zeros(len(uniques), np.int64)
    ok = np.flatnonzero(ids >= 0)
    first[ids[ok][::-1]] = ok[::-1]     # an address's first distinct raw value
    text_f = Factor(_small(np.append(ids, -1)[f.codes], len(uniques)), np.asarray(uniques, dtype=object))
    return Addresses(text_f, version[first], hi[first], lo[first]), text_f.codes < 0
