"""Loading and validation: a folder of SCHEMA.md tables → typed, validated `Tables`.

Structural problems (missing folder, table or column, duplicate unique ids) raise KeyfarmInputError
naming table, column and an example row. Row-level problems go to quarantine with a `reason` and are
counted; nothing is silently dropped.

The tables scale with the logs, so nothing here walks rows in Python: each column is coerced over
its distinct values (keyfarm.coerce), a row's problems are boolean masks over the input (a row goes
to quarantine for the first problem the column order finds), and the valid rows are picked and
ordered once, at the end, by integer codes and sort ranks.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm import coerce, schema
from keyfarm.arrays import sorted_unique
from keyfarm.errors import KeyfarmInputError
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

    def add(self, table: str, labels: np.ndarray, reason: str) -> None:
        """Rows `labels` (index labels of the input) go to quarantine with `reason`."""
        if len(labels):
            self.parts.setdefault(table, []).append((labels, reason))

    def null(self, table: str, column: str, n: int, reason: str) -> None:
        """Count `n` values of `column` nulled (rows kept) under `reason`."""
        if n:
            per_column = self.nulled.setdefault(table, {}).setdefault(column, {})
            per_column[reason] = per_column.get(reason, 0) + n

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


_is_missing = coerce._is_missing


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


class _Checked:
    """One table after validation, before its valid rows are picked and ordered: per column its
    coerced form (coerce.Factor for ids and strings, UTC nanoseconds for timestamps, floats for
    integers, coerce.Addresses for ip), the rows still valid, and the extra input columns."""

    def __init__(self, frame: pd.DataFrame, spec: schema.TableSpec, q: _Quarantine) -> None:
        self.spec = spec
        self.q = q
        self.labels = frame.index.to_numpy()
        self.dead = np.zeros(len(frame), bool)
        self.columns: dict[str, object] = {}
        internal = [c for c in frame.columns if c in schema.INTERNAL_COLUMNS and c not in spec.column_names]
        kept = [c for c in frame.columns if c not in internal]
        self.layout = kept + [c for c in spec.column_names if c not in frame.columns]
        if "ip" in spec.column_names:
            self.layout = [c for c in self.layout if c != "ip"] + ["ip", "ip_version", "ip_hi", "ip_lo"]
        extra = [c for c in kept if c not in spec.column_names]
        self.extra = frame[extra] if extra else None

    def kill(self, mask: np.ndarray, reason: str) -> None:
        """Rows where `mask` (and still valid) go to quarantine with `reason`."""
        hit = np.asarray(mask, bool) & ~self.dead
        if hit.any():
            self.q.add(self.spec.name, self.labels[hit], reason)
            self.dead |= hit

    def null(self, column: str, mask: np.ndarray, reason: str) -> None:
        """Count the values of valid rows where `mask` as nulled (their row stays)."""
        self.q.null(self.spec.name, column, int((np.asarray(mask, bool) & ~self.dead).sum()), reason)

    def settle(self, col: schema.Column, problems: dict[str, np.ndarray]) -> None:
        """Apply a column's problems (reason → row mask; the coerced value is already null there):
        an optional column with on_bad="null" loses the value and keeps the row; otherwise the row
        goes to quarantine. A zero that means "not given" is always nulled."""
        for reason, mask in problems.items():
            if reason == schema.REASON_ZERO_LIMIT or (not col.required and col.on_bad == "null"):
                self.null(col.name, mask, reason)
            else:
                self.kill(mask, reason)

    @property
    def rows(self) -> np.ndarray:
        return np.flatnonzero(~self.dead)

    def frame(self, rows: np.ndarray, first: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
        """The validated table of input rows `rows` (positions, in this order), columns in the
        loader's order; `first` adds columns in front."""
        out = dict(first or {})
        for name in self.layout:
            if name in ("ip_version", "ip_hi", "ip_lo"):
                continue
            value = self.columns.get(name)
            if name not in self.columns:
                out[name] = self.extra[name].iloc[rows].reset_index(drop=True)
            elif isinstance(value, coerce.Factor):
                out[name] = pd.Series(value.take(rows), dtype=object)
            elif isinstance(value, coerce.Addresses):
                out.update(value.columns(rows))
            elif value.dtype == np.int64:   # nanoseconds
                out[name] = pd.Series(value[rows].view("M8[ns]")).dt.tz_localize("UTC")
            else:
                out[name] = pd.Series(coerce.int64_array(value[rows]))
        # every column is a new array: no copy, and no consolidation of the text columns into one
        # block (a second copy of a pointer per row and column: ~0.5 GiB on the 1M-key requests)
        return pd.DataFrame(out, copy=False)


def _validate(frame: pd.DataFrame, spec: schema.TableSpec, q: _Quarantine) -> _Checked:
    """Coerce one table's columns and quarantine bad rows, column by column in the order of `spec`
    (a row is quarantined for its first problem); optional columns absent from the input are null.

    An extra input column named like a column keyfarm adds (schema.INTERNAL_COLUMNS) is left out
    of the validated table (it stays in the quarantine rows, as read)."""
    check_columns(frame, spec)
    t = _Checked(frame, spec, q)
    for col in spec.columns:
        values = frame[col.name] if col.name in frame.columns else pd.Series(None, index=frame.index, dtype=object)
        odd = coerce.bad_values(values)
        if odd.any():
            if not col.required and col.on_bad == "null":
                t.null(col.name, odd, schema.REASON_BAD_VALUE)
            else:
                t.kill(odd, schema.REASON_BAD_VALUE)
            values = values.astype(object).copy()
            values[odd] = None
        if col.kind == "id":
            t.columns[col.name] = ids = coerce.text(values, coerce.factor(values), strip=True)
            t.kill(coerce.empty_ids(ids), schema.REASON_EMPTY_ID)
        elif col.kind == "str":
            t.columns[col.name] = coerce.text(values, coerce.factor(values))
        elif col.kind == "ts":
            f = None if pd.api.types.is_datetime64_any_dtype(values) else coerce.factor(values)
            ns, outside = coerce.timestamps(values, f)
            given = values.notna().to_numpy() if f is None else f.codes >= 0
            bad = (ns == coerce.NAT) & ~outside & (given | col.required)
            t.columns[col.name] = ns
            t.settle(col, {schema.REASON_BAD_TIMESTAMP: bad, schema.REASON_OUT_OF_RANGE: outside})
        elif col.kind == "int":
            numeric = pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype)
            clean, problems = coerce.integers(values, None if numeric else coerce.factor(values), col)
            t.columns[col.name] = clean
            t.settle(col, problems)
        elif col.kind == "ip":
            parsed, bad = coerce.addresses(coerce.factor(values))
            t.columns[col.name] = parsed
            t.kill(bad, schema.REASON_BAD_IP)
    return t


def _check_unique(t: _Checked) -> None:
    spec = t.spec
    if spec.unique is None:
        return
    rows = t.rows
    codes = pd.Series(t.columns[spec.unique].codes[rows])
    dup = codes.duplicated(keep=False).to_numpy()
    if dup.any():
        where = rows[dup]
        example = t.columns[spec.unique].take(where[:1])[0]
        raise KeyfarmInputError(
            f"table {spec.name}: column {spec.unique!r} must be unique; "
            f"{int(codes.duplicated().sum())} duplicate value(s), e.g. "
            f"{example!r} at rows {', '.join(str(int(t.labels[r])) for r in where[:3])}",
            table=spec.name, column=spec.unique, row=int(t.labels[where[0]]))


REQUEST_ORDER = ["key", "ts", "ip", "device_fingerprint", "user_agent", "prompt", "prompt_tokens",
                 "completion_tokens"]


def content_order(key: np.ndarray, ts: np.ndarray, tie_ranks) -> np.ndarray:
    """Positions of request rows ordered by content, not arrival: by key and timestamp, and where
    those tie by `tie_ranks(positions)` (the sort ranks of the other REQUEST_ORDER columns of
    those rows, missing first, most significant first). Stable: rows equal in every one keep
    their order."""
    order = np.lexsort((ts, key))
    if order.size < 2:
        return order
    k, s = key[order], ts[order]
    same = (k[1:] == k[:-1]) & (s[1:] == s[:-1])
    tied = np.zeros(order.size, bool)
    tied[1:] = same
    tied[:-1] |= same
    at = np.flatnonzero(tied)
    if at.size:
        rows = order[at]
        ranks = tie_ranks(rows)
        order[at] = rows[np.lexsort([*reversed(ranks), ts[rows], key[rows]])]
    return order


def _rank(values: pd.Series, rows: np.ndarray) -> np.ndarray:
    """Sort ranks of a validated requests column at `rows` (missing first)."""
    if pd.api.types.is_integer_dtype(values.dtype):
        return np.where(values.isna().to_numpy()[rows], -1, values.to_numpy(dtype=float, na_value=-1)[rows])
    return coerce.factor(values.iloc[rows]).ranks(np.arange(len(rows)))


def sort_requests(requests: pd.DataFrame) -> pd.DataFrame:
    """Validated requests ordered by content, not arrival: the same logs in another order give the
    same table (content_order)."""
    order = content_order(requests["key"].to_numpy(np.int64), requests["ts"].array.asi8,
                          lambda rows: [_rank(requests[c], rows) for c in REQUEST_ORDER[2:]])
    return requests.take(order).reset_index(drop=True)


def _requests_frame(t: _Checked, key: np.ndarray) -> pd.DataFrame:
    """The valid requests of `t` (`key`: each input row's key index) ordered by content."""
    rows = t.rows
    cols = t.columns

    def ranks(at):
        at = rows[at]
        out = [cols["ip"].text.ranks(at)]
        out += [cols[c].ranks(at) for c in ("device_fingerprint", "user_agent", "prompt")]
        out += [np.where(np.isnan(cols[c][at]), -1.0, cols[c][at]) for c in ("prompt_tokens", "completion_tokens")]
        return out

    order = rows[content_order(key[rows], cols["ts"][rows], ranks)]
    return t.frame(order, {"key": key[order].astype(np.int64)})


def _attach_keys(t: _Checked, key_index: pd.Index, quarantined_keys) -> np.ndarray:
    """Each request row's key (row of the key in the sorted keys table); quarantine rows whose
    key_id is unknown or whose key row was itself quarantined (`quarantined_keys`: a callable
    giving those key ids)."""
    ids = t.columns["key_id"]
    pos = np.append(key_index.get_indexer(ids.values), -1)
    unknown = (pos < 0)[ids.codes] & ~t.dead
    if unknown.any():
        rejected = pd.Series(ids.values, dtype=object).isin(quarantined_keys()).to_numpy()
        t.kill(np.append(rejected, False)[ids.codes] & unknown, REASON_KEY_QUARANTINED)
        t.kill(unknown, schema.REASON_UNKNOWN_KEY)
    return pos[ids.codes]


def _check_payments(t: _Checked, account_ids: np.ndarray) -> None:
    """Quarantine payment rows of accounts that own no key (they link nothing) and repeats of an
    (account, instrument) row already seen (the first is kept)."""
    account, instrument = t.columns["account_id"], t.columns["payment_fingerprint"]
    known = np.append(pd.Series(account.values, dtype=object).isin(account_ids).to_numpy(), False)
    t.kill(~known[account.codes], schema.REASON_UNKNOWN_ACCOUNT)
    rows = t.rows
    pair = account.codes[rows].astype(np.int64) * (len(instrument.values) + 1) + instrument.codes[rows]
    repeated = np.ones(rows.size, bool)
    repeated[np.unique(pair, return_index=True)[1]] = False
    mask = np.zeros(len(t.dead), bool)
    mask[rows[repeated]] = True
    t.kill(mask, schema.REASON_DUPLICATE_ROW)


def _sorted_rows(t: _Checked, columns: list[str]) -> np.ndarray:
    """Valid rows of `t` ordered by the text of `columns` (stable)."""
    rows = t.rows
    return rows[np.lexsort([t.columns[c].ranks(rows) for c in reversed(columns)])]


def validate_requests(frame: pd.DataFrame, key_index: pd.Index,
                      quarantined_keys=frozenset()) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Validate one batch of request rows against already validated keys (the loader's code, for a
    distributed engine to run per partition).

    `key_index` holds the sorted keys' key_id; `quarantined_keys` the key ids rejected by the keys
    table. Returns the valid rows (with `key`, sorted by content) and the quarantined rows (None if
    none) whose `source_row` is the batch's index, so give the batch the input row numbers as index.
    """
    q = _Quarantine()
    t = _validate(frame, schema.REQUESTS, q)
    key = _attach_keys(t, key_index, lambda: set(quarantined_keys))
    return _requests_frame(t, key), q.frames({"requests": frame}).get("requests")


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
    checked: dict[str, _Checked] = {}
    input_rows: dict[str, int] = {}
    for name, spec in schema.TABLES.items():
        frame = originals[name]
        if frame is None:
            frame = pd.DataFrame({c: pd.Series(dtype=object) for c in spec.column_names})
        else:
            input_rows[name] = len(frame)
        if not frame.index.equals(pd.RangeIndex(len(frame))):
            frame = frame.reset_index(drop=True)
        originals[name] = frame
        checked[name] = _validate(frame, spec, q)
        _check_unique(checked[name])
    frame = None

    k = checked["keys"]
    key_rows = _sorted_rows(k, ["key_id"])
    account = k.columns["account_id"]
    account_rank = np.unique(account.ranks(key_rows), return_inverse=True)[1]
    keys = k.frame(key_rows)
    keys["account"] = account_rank.astype(np.int64)

    key_of_row = _attach_keys(checked["requests"], pd.Index(keys["key_id"]),
                              lambda: q.rejected_values("keys", originals, "key_id"))
    _check_payments(checked["payments"], account.values[sorted_unique(account.codes[key_rows])])
    quarantine = q.frames(originals)
    originals.clear()  # the raw tables are no longer needed: free them before sorting
    requests = _requests_frame(checked.pop("requests"), key_of_row)
    payments = checked["payments"].frame(_sorted_rows(checked["payments"], ["account_id", "payment_fingerprint"]))
    accounts = checked["accounts"].frame(_sorted_rows(checked["accounts"], ["account_id"]))
    tables = Tables(keys=keys, accounts=accounts, payments=payments, requests=requests,
                    quarantine=quarantine, input_rows=input_rows, nulled=q.nulled)
    if check:
        tables.check_quarantine(max_quarantine_share)
    return tables
