"""Escaping for the report pages: every string from the data is attacker-controlled.

Stage: report. Two contexts exist and each has one function: HTML text and attributes (`esc`),
and data embedded in a page for its scripts (`script_json`, safe inside `<script>` because `<`,
`>` and `&` are written as JSON \\u escapes, so no `</script>` or `<!--` can appear).
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import math

import numpy as np
import pandas as pd


def plain(value):
    """A JSON-ready Python value: NaN/NA/NaT become None, NumPy scalars and timestamps plain types."""
    kind = type(value)
    if kind is str or kind is int:   # most values of a page: no further checks
        return value
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, _dt.datetime)):
        return value.isoformat()
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, (str, int)):
        return value
    return str(value)


def esc(value) -> str:
    """Text or attribute value escaped for HTML (quotes too); None and NaN become an empty string."""
    if value.__class__ is str:   # most values: no conversion to try
        return html.escape(value, quote=True)
    value = plain(value)
    if value is None:
        return ""
    return html.escape(str(value), quote=True)


FEW = 64   # up to this many values, text is checked value by value (NumPy's and pandas' calls cost more)


def column_values(values: pd.Series | np.ndarray) -> list:
    """The values of one column (a Series, or a NumPy array of it) as `plain` makes them;
    numeric columns in one vectorised step. A part of a column gives the part of its values."""
    if isinstance(values, pd.Series):
        if isinstance(values.dtype, pd.api.extensions.ExtensionDtype) or values.dtype.kind not in "iubfO":
            return _values_one_by_one(values)
        values = values.to_numpy()
    kind = values.dtype.kind
    if kind in "iub":
        return values.tolist()
    if kind == "f":
        out = values.astype(np.float64, copy=False).tolist()
        for i in np.flatnonzero(~np.isfinite(values)).tolist():
            out[i] = None
        return out
    if kind != "O":   # timestamps and the like: as their Series gives them
        return _values_one_by_one(pd.Series(values))
    out = values.tolist()
    if len(out) <= FEW and all(v.__class__ is str or v is None for v in out):   # a page's few values
        return out
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        # text with nulls (None, NaN, NA): only the nulls need `plain`
        for i in np.flatnonzero(pd.isna(values)).tolist():
            out[i] = None
        return out
    return [plain(v) for v in out]


def column_array(series: pd.Series) -> np.ndarray:
    """A column as a NumPy array that `column_values` (of all of it, or of any part) turns into
    the values `column_values(series)` gives: the column's own array where NumPy holds it as it
    is, else an object array of its plain values."""
    if not isinstance(series.dtype, pd.api.extensions.ExtensionDtype) and series.dtype.kind in "iubfO":
        return series.to_numpy()
    return np.fromiter(column_values(series), dtype=object, count=len(series))


def _values_one_by_one(series: pd.Series) -> list:
    """`column_values` of a column NumPy does not hold as plain numbers or objects."""
    values = series.tolist()
    if series.dtype.kind == "O" and pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        for i in np.flatnonzero(series.isna().to_numpy()).tolist():
            values[i] = None
        return values
    return [plain(v) for v in values]


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows of `frame` as dicts of plain values (as `plain` makes them); column-wise, so far
    cheaper than DataFrame.to_dict on the wide frames of a report page."""
    columns = {c: column_values(frame[c]) for c in frame.columns}
    names = list(columns)
    return [dict(zip(names, values)) for values in zip(*columns.values())] if names else [{} for _ in range(len(frame))]


def script_json(obj, *, plain_already: bool = False) -> str:
    """JSON that can be placed inside a <script> element without ending it or opening markup.
    `plain_already`: `obj` holds only JSON types (built by `records`), so `plain` is skipped; a
    NaN that slipped through still fails (allow_nan=False) rather than writing bad JSON."""
    text = json.dumps(obj if plain_already else plain(obj), ensure_ascii=True, allow_nan=False,
                      separators=(",", ":"))
    # ensure_ascii already escapes U+2028/U+2029 (line terminators in older JS engines)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def fmt_int(value) -> str:
    """1,234,567 (thousands separators), or an empty string when missing."""
    value = plain(value)
    return "" if value is None else f"{int(value):,}"


def fmt_float(value, digits: int = 2) -> str:
    """A float with fixed digits, or an empty string when missing."""
    value = plain(value)
    return "" if value is None else f"{float(value):,.{digits}f}"
