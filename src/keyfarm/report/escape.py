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


def column_values(series: pd.Series) -> list:
    """The values of one column as `plain` makes them; numeric columns in one vectorised step."""
    kind = series.dtype.kind
    if kind in "iub" and not isinstance(series.dtype, pd.api.extensions.ExtensionDtype):
        return series.to_numpy().tolist()
    if kind == "f" and not isinstance(series.dtype, pd.api.extensions.ExtensionDtype):
        values = series.to_numpy(np.float64)
        out = values.tolist()
        for i in np.flatnonzero(~np.isfinite(values)).tolist():
            out[i] = None
        return out
    values = series.tolist()
    if kind == "O" and pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        # text with nulls (None, NaN, NA): only the nulls need `plain`
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
