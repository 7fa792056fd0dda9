"""Loading and validation: a folder of SCHEMA.md tables → typed, validated `Tables`.

Structural problems (missing folder, table or column, duplicate unique ids) raise KeyfarmInputError
naming table, column and an example row. Row-level problems go to quarantine with a `reason` and are
counted; nothing is silently dropped.
"""
from __future__ import annotations

import datetime
import decimal
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm import schema
from keyfarm.errors import KeyfarmInputError
from keyfarm.ipaddr import parse_ips
from keyfarm.readers import find_table_file, read_parquet_dictionary, read_table_file  # noqa: F401

log = logging.getLogger(__name__)

REASON_KEY_QUARANTINED = "key_quarantined"
DEFAULT_MAX_QUARANTINE_SHARE = 0.5   # a table losing more of its rows stops the job (--max-quarantine-share)


@dataclass
class Tables:
    """Validated input tables; a key's integer index everywhere is its row in `keys` (sorted by key_id)."""

    keys: pd.DataFrame
    accounts: pd.DataFrame
    payments: pd.DataFrame
    requests: pd.DataFrame
    quarantine: dict[str, pd.DataFrame] = field(default_factory=dict)
    input_rows: dict[str, int] = field(default_factory=dict)
    nulled: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # table → column → reason → values

    @property
    def n_keys(self) -> int:
        return len(self.keys)

    @property
    def n_accounts(self) -> int:
        return int(self.keys["account"].max()) + 1 if len(self.keys) else 0

    def quarantine_counts(self) -> dict[str, dict[str, int]]:
        """Rejected rows per table and reason, for run.json and the CLI."""
        out: dict[str, dict[str, int]] = {}
        for name, frame in sorted(self.quarantine.items()):
            if len(frame):
                counts = frame["reason"].value_counts().sort_index()
                out[name] = {str(k): int(v) for k, v in counts.items()}
        return out

    def valid_rows(self) -> dict[str, int]:
        return {"keys": len(self.keys), "accounts": len(self.accounts), "payments": len(self.payments),
                "requests": len(self.requests)}

    def check_quarantine(self, max_share: float | None = DEFAULT_MAX_QUARANTINE_SHARE, *,
                         valid_rows: dict[str, int] | None = None) -> None:
        """Stop (KeyfarmInputError) when a table lost more than `max_share` of its rows to
        quarantine, or every row (whatever the share: an empty verdict is not a result), or when
        no key is left. `valid_rows` overrides counts a distributed run keeps elsewhere."""
        valid = {**self.valid_rows(), **(valid_rows or {})}
        counts = self.quarantine_counts()
        if valid["keys"] == 0 and not self.input_rows.get("keys"):
            raise KeyfarmInputError("table keys: no rows; nothing to link", table="keys")
        for name, n_in in self.input_rows.items():
            reasons = counts.get(name, {})
            n_out = sum(reasons.values())
            if n_in == 0 or n_out == 0:
                continue
            every = valid.get(name, 0) == 0
            if not every and (max_share is None or n_out <= max_share * n_in):
                continue
            detail = ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items(), key=lambda x: -x[1]))
            first = self.quarantine.get(name)
            where = ""
            if first is not None and len(first):
                where = f"; first at row {int(first['source_row'].iloc[0])} ({first['reason'].iloc[0]})"
            limit = "every row" if every else f"more than --max-quarantine-share {max_share}"
            raise KeyfarmInputError(
                f"table {name}: {n_out:,} of {n_in:,} rows quarantined ({n_out / n_in:.0%}: {detail}{where}), "
                f"{limit}; see `keyfarm validate`", table=name)

    def nulled_counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """Optional values nulled (rows kept) per table, column and reason, for run.json and the CLI."""
        return {t: {c: dict(sorted(r.items())) for c, r in sorted(cols.items())}
                for t, cols in sorted(self.nulled.items())}

    def write_quarantine(self, out_dir: str | Path) -> None:
        """Write quarantine/<table>.parquet for every table with rejected rows."""
        qdir = Path(out_dir) / "quarantine"
        qdir.mkdir(parents=True, exist_ok=True)
        for name, frame in self.quarantine.items():
            if len(frame):
                frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object}) \
                     .to_parquet(qdir / f"{name}.parquet", index=False)


# ---------------------------------------------------------------- reading files

def load_tables(folder: str | Path, *,
                max_quarantine_share: float | None = DEFAULT_MAX_QUARANTINE_SHARE) -> Tables:
    """Read and validate every SCHEMA.md table in `folder` (keys required, others optional).

    Stops with KeyfarmInputError when a table loses more than `max_quarantine_share` of its rows
    (None: never on the share alone; a table losing every row always stops, see
    Tables.check_quarantine)."""
    frames = read_table_files(folder, schema.TABLES)
    # hand the frames over without keeping a reference here: the raw requests are large
    return tables_from_frames(*(frames.pop(name) for name in list(frames)),
                              max_quarantine_share=max_quarantine_share)


def read_table_files(folder: str | Path, names) -> dict[str, pd.DataFrame | None]:
    """The raw tables `names` of `folder` (None where absent); the keys table must be there."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KeyfarmInputError(f"input folder {folder} does not exist or is not a folder")
    frames: dict[str, pd.DataFrame | None] = {}
    for name in names:
        path = find_table_file(folder, name)
        frames[name] = None if path is None else read_table_file(path, name)
    if frames.get("keys") is None:
        raise KeyfarmInputError(
            f"table keys: no keys file in {folder} (expected keys.parquet, keys.csv, keys.csv.gz "
            "or keys.jsonl)", table="keys")
    return frames


# ---------------------------------------------------------------- validation

class _Quarantine:
    """Collects rejected rows per table as they were read, each with its reason and input row, and
    the optional values it nulled (row kept), per table, column and reason."""

    def __init__(self) -> None:
        self.parts: dict[str, list[tuple[np.ndarray, str]]] = {}
        self.nulled: dict[str, dict[str, dict[str, int]]] = {}

    def add(self, table: str, frame: pd.DataFrame, bad: np.ndarray, reason: str) -> pd.DataFrame:
        """Move rows where `bad` to quarantine with `reason`; return the rest."""
        bad = np.asarray(bad, dtype=bool)
        if bad.any():
            self.parts.setdefault(table, []).append((frame.index.to_numpy()[bad], reason))
            frame = frame.loc[~bad]
        return frame

    def null(self, table: str, column: str, values: pd.Series, bad: np.ndarray, reason: str) -> pd.Series:
        """Null `values` where `bad` (the row stays) and count it under `reason`."""
        bad = np.asarray(bad, dtype=bool)
        if not bad.any():
            return values
        per_column = self.nulled.setdefault(table, {}).setdefault(column, {})
        per_column[reason] = per_column.get(reason, 0) + int(bad.sum())
        out = values.copy()
        out[bad] = None
        return out

    def rejected_values(self, table: str, originals: dict[str, pd.DataFrame], column: str) -> set:
        rows = [idx for idx, _ in self.parts.get(table, [])]
        if not rows:
            return set()
        values = originals[table][column].loc[np.concatenate(rows)]
        return {str(v).strip() for v in values if not _is_missing(v)}

    def frames(self, originals: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Rejected rows as read (original values), plus `source_row` and `reason`; an input column
        already named so is kept as `input_source_row` / `input_reason`."""
        out = {}
        for name, parts in self.parts.items():
            rows = np.concatenate([idx for idx, _ in parts])
            reasons = np.concatenate([np.full(len(idx), r, dtype=object) for idx, r in parts])
            order = np.argsort(rows, kind="stable")
            q = originals[name].loc[rows[order]].reset_index(drop=True)
            q = q.astype({c: object for c in q.columns if isinstance(q[c].dtype, pd.CategoricalDtype)})
            q = q.rename(columns={c: _free_name(c, q.columns) for c in ("source_row", "reason")
                                  if c in q.columns})
            q.insert(0, "source_row", rows[order].astype(np.int64))
            q["reason"] = reasons[order]
            out[name] = q
        return out


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value is pd.NaT


def _free_name(column: str, taken) -> str:
    name = f"input_{column}"
    while name in taken:
        name = f"input_{name}"
    return name


def check_columns(frame: pd.DataFrame, spec: schema.TableSpec) -> None:
    """Every required column of `spec` is present, and no column name appears twice."""
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise KeyfarmInputError(f"table {spec.name}: column {twice!r} appears twice", table=spec.name,
                                column=twice)
    for col in spec.columns:
        if col.required and col.name not in frame.columns:
            example = frame.iloc[0].to_dict() if len(frame) else {}
            raise KeyfarmInputError(
                f"table {spec.name}: required column {col.name!r} is missing "
                f"(columns present: {', '.join(map(str, frame.columns)) or 'none'}; "
                f"first row: {example})", table=spec.name, column=col.name, row=0)



def _factorized(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """Codes (−1 for missing) and distinct values: logs repeat ids, so work on the distinct ones."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes, pd.Series(uniques, dtype=object)


def _as_text(values: pd.Series, strip: bool = False) -> pd.Series:
    """Ids and optional strings as Python str (None for missing); numbers become their text."""
    codes, uniques = _factorized(values)
    if pd.api.types.is_float_dtype(values.dtype) and len(uniques):
        # a numeric id column is float only because it has nulls: 10.0 is the id 10, as in CSV
        num = uniques.to_numpy(dtype=float)
        whole = np.isfinite(num) & (np.floor(num) == num) & (np.abs(num) < 2**53)
        text = pd.Series([str(int(v)) if w else str(v) for v, w in zip(num, whole)], dtype=object)
    else:
        text = uniques.astype(str)
    if strip:
        text = text.str.strip()
    table = np.append(text.to_numpy(dtype=object), None)
    return pd.Series(table[codes], index=values.index, dtype=object)


def _empty_ids(values: pd.Series) -> np.ndarray:
    codes, uniques = _factorized(values)
    empty = np.append((uniques.astype(str).str.strip() == "").to_numpy(), True)
    return empty[codes]


_SCALARS = (str, int, float, decimal.Decimal, datetime.date, np.integer, np.floating, np.datetime64)
_SCALAR_KINDS = {"string", "empty", "integer", "floating", "mixed-integer-float", "decimal", "datetime",
                 "datetime64", "date", "categorical"}


def _bad_values(values: pd.Series) -> np.ndarray:
    """Values that are no scalar of any column kind: lists and arrays (a Parquet list column),
    objects (a nested JSON value), booleans, bytes. Checked value by value only when pandas
    cannot tell the column is plain."""
    if values.dtype != object:
        return np.broadcast_to(pd.api.types.is_bool_dtype(values.dtype), len(values)) & values.notna().to_numpy()
    if pd.api.types.infer_dtype(values, skipna=True) in _SCALAR_KINDS:
        return np.zeros(len(values), bool)
    return np.fromiter((not (_is_missing(v) or (isinstance(v, _SCALARS) and not isinstance(v, (bool, np.bool_))))
                        for v in values), dtype=bool, count=len(values))


_TS_BOUNDS = (pd.Timestamp(schema.MIN_TS), pd.Timestamp(schema.MAX_TS))


def _parse_timestamps(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """UTC timestamps from ISO 8601 text or Parquet timestamps (NaT where unparsable or beyond
    pandas' range), and the mask of those outside schema.MIN_TS..MAX_TS (also NaT)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values
        if getattr(ts.dt, "tz", None) is None:
            ts = ts.dt.tz_localize("UTC")
        ts = ts.dt.tz_convert("UTC")
        outside = ((ts < _TS_BOUNDS[0]) | (ts >= _TS_BOUNDS[1])).to_numpy(bool)
        return ts.where(~outside).astype("datetime64[ns, UTC]"), outside
    text = values.astype("string")
    codes, uniques = pd.factorize(text, use_na_sentinel=True)  # logs repeat timestamps
    parsed = pd.to_datetime(pd.Series(uniques, dtype=object), utc=True, errors="coerce",
                            format="ISO8601")
    parsed = pd.DatetimeIndex(parsed).as_unit("ns")
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = codes >= 0
    out[ok] = parsed.tz_convert(None).to_numpy()[codes[ok]] if len(parsed) else out[ok]
    ts = pd.Series(out, index=values.index).dt.tz_localize("UTC")
    outside = ((ts < _TS_BOUNDS[0]) | (ts >= _TS_BOUNDS[1])).to_numpy(bool)
    return ts.where(~outside), outside


def _parse_ints(values: pd.Series, col: schema.Column) -> tuple[pd.Series, dict[str, np.ndarray]]:
    """Nullable Int64 column (null where not a valid value) and the masks of its problems, by
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
        codes, uniques = _factorized(values)
        text = uniques.astype(str).str.strip()
        parsed = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        num = np.append(parsed, np.nan)[codes]
        present = np.append((text != "").to_numpy(), False)[codes]
    with np.errstate(invalid="ignore"):
        bad = present & (~np.isfinite(num) | (np.floor(num) != num))
        negative = present & ~bad & (num < 0)
        too_big = present & ~bad & (num > limit)
        zero = present & ~bad & (num == 0) if col.zero_is_null else np.zeros(len(values), bool)
    problems = {schema.REASON_BAD_INT: bad, schema.REASON_NEGATIVE: negative,
                schema.REASON_OUT_OF_RANGE: too_big, schema.REASON_ZERO_LIMIT: zero}
    clean = np.where(bad | negative | too_big | zero | ~present, np.nan, num)
    return pd.Series(pd.array(clean, dtype="Float64").astype("Int64"), index=values.index), problems


def _settle(q: _Quarantine, spec: schema.TableSpec, col: schema.Column, frame: pd.DataFrame,
            problems: dict[str, np.ndarray]) -> pd.DataFrame:
    """Apply a column's problems (reason → row mask, rows of `frame`): an optional column with
    on_bad="null" loses the value and keeps the row; otherwise the row goes to quarantine. A zero
    that means "not given" is always nulled."""
    for reason, mask in problems.items():
        mask = np.asarray(mask, bool)
        if not mask.any():
            continue
        if reason == schema.REASON_ZERO_LIMIT or (not col.required and col.on_bad == "null"):
            frame[col.name] = q.null(spec.name, col.name, frame[col.name], mask, reason)
        else:
            keep = ~mask
            frame = q.add(spec.name, frame, mask, reason)
            for other in problems:
                problems[other] = np.asarray(problems[other], bool)[keep]
    return frame


def _validate(frame: pd.DataFrame, spec: schema.TableSpec, q: _Quarantine) -> pd.DataFrame:
    """Coerce one table's columns and quarantine bad rows; optional columns are added as null.

    An extra input column named like a column keyfarm adds (schema.INTERNAL_COLUMNS) is left out
    of the validated table (it stays in the quarantine rows, as read)."""
    check_columns(frame, spec)
    internal = [c for c in frame.columns if c in schema.INTERNAL_COLUMNS and c not in spec.column_names]
    frame = frame.drop(columns=internal) if internal else frame.copy(deep=False)  # columns are replaced, never written in place
    for col in spec.columns:
        if col.name not in frame.columns:
            frame[col.name] = pd.Series(None, index=frame.index, dtype=object)
    for col in spec.columns:
        odd = _bad_values(frame[col.name])
        if odd.any():
            if not col.required and col.on_bad == "null":
                frame[col.name] = q.null(spec.name, col.name, frame[col.name].astype(object), odd,
                                         schema.REASON_BAD_VALUE)
            else:
                frame = q.add(spec.name, frame, odd, schema.REASON_BAD_VALUE)
        values = frame[col.name]
        if col.kind == "id":
            frame = q.add(spec.name, frame, _empty_ids(values), schema.REASON_EMPTY_ID)
            frame[col.name] = _as_text(frame[col.name], strip=True)
        elif col.kind == "str":
            frame[col.name] = _as_text(values)
        elif col.kind == "ts":
            ts, outside = _parse_timestamps(values)
            given = values.notna().to_numpy()
            bad = ts.isna().to_numpy() & ~outside & (given | col.required)
            frame[col.name] = ts
            frame = _settle(q, spec, col, frame, {schema.REASON_BAD_TIMESTAMP: bad,
                                                  schema.REASON_OUT_OF_RANGE: outside})
        elif col.kind == "int":
            ints, problems = _parse_ints(values, col)
            frame[col.name] = ints
            frame = _settle(q, spec, col, frame, problems)
        elif col.kind == "ip":
            parsed = parse_ips(values)
            frame = frame.drop(columns=[col.name]).join(parsed)
            frame = q.add(spec.name, frame, (parsed["ip_version"] == 0).to_numpy(), schema.REASON_BAD_IP)
    return frame


def _check_unique(frame: pd.DataFrame, spec: schema.TableSpec) -> None:
    if spec.unique is None:
        return
    dup = frame[spec.unique].duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)
        example = frame.iloc[rows[0]]
        raise KeyfarmInputError(
            f"table {spec.name}: column {spec.unique!r} must be unique; "
            f"{int(frame[spec.unique].duplicated().sum())} duplicate value(s), e.g. "
            f"{example[spec.unique]!r} at rows {', '.join(str(int(frame.index[r])) for r in rows[:3])}",
            table=spec.name, column=spec.unique, row=int(frame.index[rows[0]]))


def _sort_by_content(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Sort by the first two columns; fall back to all columns only where those tie."""
    frame = frame.sort_values(columns[:2], kind="stable").reset_index(drop=True)
    tied = frame.duplicated(columns[:2], keep=False).to_numpy()
    if tied.any():
        part = frame.loc[tied].sort_values(columns, kind="stable", na_position="first")
        frame = pd.concat([frame.loc[~tied], part]).sort_values(columns[:2], kind="stable") \
            .reset_index(drop=True)
    return frame


REQUEST_ORDER = ["key", "ts", "ip", "device_fingerprint", "user_agent", "prompt", "prompt_tokens",
                 "completion_tokens"]


def sort_requests(requests: pd.DataFrame) -> pd.DataFrame:
    """Validated requests ordered by content, not arrival: the same logs in another order give the
    same table."""
    return _sort_by_content(requests, REQUEST_ORDER)


def _attach_keys(requests: pd.DataFrame, key_index: pd.Index, quarantined_keys, q: _Quarantine) -> pd.DataFrame:
    """Insert `key` (row of the key in the sorted keys table); quarantine rows whose key_id is unknown
    or whose key row was itself quarantined (`quarantined_keys`: a callable giving those key ids)."""
    key_pos = key_index.get_indexer(requests["key_id"])
    unknown = key_pos < 0
    if unknown.any():
        was_quarantined = requests["key_id"].isin(quarantined_keys()).to_numpy() & unknown
        requests = q.add("requests", requests, was_quarantined, REASON_KEY_QUARANTINED)
        key_pos = key_index.get_indexer(requests["key_id"])
        requests = q.add("requests", requests, key_pos < 0, schema.REASON_UNKNOWN_KEY)
        key_pos = key_index.get_indexer(requests["key_id"])
    requests.insert(0, "key", key_pos.astype(np.int64))
    return requests


def _check_payments(payments: pd.DataFrame, account_id: pd.Series, q: _Quarantine) -> pd.DataFrame:
    """Quarantine payment rows of accounts that own no key (they link nothing) and repeats of an
    (account, instrument) row already seen (the first is kept)."""
    unknown = ~payments["account_id"].isin(pd.Index(account_id.unique())).to_numpy()
    payments = q.add("payments", payments, unknown, schema.REASON_UNKNOWN_ACCOUNT)
    repeated = payments.duplicated(["account_id", "payment_fingerprint"], keep="first").to_numpy()
    return q.add("payments", payments, repeated, schema.REASON_DUPLICATE_ROW)


def validate_requests(frame: pd.DataFrame, key_index: pd.Index,
                      quarantined_keys=frozenset()) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Validate one batch of request rows against already validated keys (the loader's code, for a
    distributed engine to run per partition).

    `key_index` holds the sorted keys' key_id; `quarantined_keys` the key ids rejected by the keys
    table. Returns the valid rows (with `key`, sorted by content) and the quarantined rows (None if
    none) whose `source_row` is the batch's index, so give the batch the input row numbers as index.
    """
    q = _Quarantine()
    requests = _validate(frame, schema.REQUESTS, q)
    requests = _attach_keys(requests, key_index, lambda: set(quarantined_keys), q)
    return sort_requests(requests), q.frames({"requests": frame}).get("requests")


def tables_from_frames(keys: pd.DataFrame, accounts: pd.DataFrame | None = None,
                       payments: pd.DataFrame | None = None,
                       requests: pd.DataFrame | None = None, *,
                       max_quarantine_share: float | None = DEFAULT_MAX_QUARANTINE_SHARE,
                       check: bool = True) -> Tables:
    """Validate in-memory tables with SCHEMA.md columns into `Tables` (the loader's core); with
    `check`, Tables.check_quarantine(max_quarantine_share) before returning."""
    originals = {"keys": keys, "accounts": accounts, "payments": payments, "requests": requests}
    keys = accounts = payments = requests = None  # only `originals` holds the raw frames now
    q = _Quarantine()
    out: dict[str, pd.DataFrame] = {}
    input_rows: dict[str, int] = {}
    for name, spec in schema.TABLES.items():
        frame = originals[name]
        if frame is None:
            frame = pd.DataFrame({c: pd.Series(dtype=object) for c in spec.column_names})
            originals[name] = frame
        else:
            input_rows[name] = len(frame)
        if not frame.index.equals(pd.RangeIndex(len(frame))):
            frame = frame.reset_index(drop=True)
        originals[name] = frame
        out[name] = _validate(frame, spec, q)
        _check_unique(out[name], spec)
    frame = None

    keys = out["keys"].sort_values("key_id", kind="stable").reset_index(drop=True)
    keys["account"] = pd.factorize(keys["account_id"], sort=True)[0].astype(np.int64)
    keys["daily_token_limit"] = keys["daily_token_limit"].astype("Int64")

    requests = _attach_keys(out.pop("requests"), pd.Index(keys["key_id"]),
                            lambda: q.rejected_values("keys", originals, "key_id"), q)
    out["payments"] = _check_payments(out["payments"], keys["account_id"], q)
    quarantine = q.frames(originals)
    originals.clear()  # the raw tables are no longer needed: free them before sorting
    requests = sort_requests(requests)

    for name in ("accounts", "payments"):
        out[name] = out[name].reset_index(drop=True)
    payments = out["payments"].sort_values(["account_id", "payment_fingerprint"], kind="stable").reset_index(drop=True)
    accounts = out["accounts"].sort_values("account_id", kind="stable").reset_index(drop=True)
    tables = Tables(keys=keys, accounts=accounts, payments=payments, requests=requests,
                    quarantine=quarantine, input_rows=input_rows, nulled=q.nulled)
    if check:
        tables.check_quarantine(max_quarantine_share)
    return tables
