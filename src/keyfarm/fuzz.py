"""Broken input folders for property tests (hypothesis strategies; dev dependency).

`input_folders()` draws a folder of SCHEMA.md tables in every format and layout keyfarm reads
(one file, a folder of parts, upper-case endings), each table's columns and rows mixing good values
with hostile ones: empty and whitespace ids, NUL and ESC, huge and negative counts, timestamps
out of range, malformed addresses, nested JSON values, extra columns named like keyfarm's own.
`check_folder(path)` loads it and states the loader's contract: a result or a KeyfarmError, never
another exception, and per table rows in = rows valid + rows quarantined. Used by
tests/test_fuzz_inputs.py (a short run) and scripts/fuzz_inputs.py (a long one).
"""
from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from hypothesis import strategies as st

from keyfarm import schema
from keyfarm.errors import KeyfarmError

KEY_IDS = ("k0", "k1", "k2", "k3", "k4", "k5", " k1 ", "k10", "k10.0")   # keys' own ids are k0, k1, ...
ACCOUNT_IDS = ("a0", "a1", "a2", "a3")
IPS = ("203.0.113.7", "203.0.113.8", "198.51.100.2", "2001:db8::1", "10.0.0.1", "::ffff:192.0.2.1")
HOSTILE = ("", " ", "\x00", "k\x00x", "\x1b[2J\x1b]0;t\x07", "\u202eevil", "null", "NaN", "inf", "-1", "0",
           "1.5", "1e3", str(2**63 - 1), str(2**70), str(-2**63), "3000-01-01", "1900-01-01", "2262-04-12",
           "not a date", "999.1.1.1", "::", "a,b", '"q"', "line\nbreak", "😀", "0x10")
EXTRA_COLUMNS = ("key", "reason", "source_row", "ip_version", "ip_hi", "account", "note")
LAYOUTS = ("parquet", "csv", "csv.gz", "jsonl", "parts-parquet", "parts-csv", "parts-jsonl", "UPPER-csv")

hostile_values = st.one_of(
    st.sampled_from(HOSTILE), st.text(max_size=6), st.none(),
    st.integers(min_value=-2**70, max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.lists(st.integers(0, 3), max_size=2), st.dictionaries(st.sampled_from("ab"), st.integers(0, 3), max_size=1))


def _good(kind: str, name: str):
    if kind == "id":
        return st.sampled_from(KEY_IDS if name == "key_id" else ACCOUNT_IDS if name == "account_id"
                               else ("card-1", "card-2"))
    if kind == "ts":
        return st.integers(0, 23).map(lambda h: f"2026-11-03T{h:02d}:00:00Z")
    if kind == "ip":
        return st.sampled_from(IPS)
    if kind == "int":
        return st.integers(0, 10_000)
    return st.sampled_from(("hello", "Summarize this", "curl/8", "ua", ""))


@st.composite
def table_frames(draw, spec: schema.TableSpec, max_rows: int = 12) -> pd.DataFrame:
    """One table: most of its columns (a required one now and then missing), some extra columns,
    rows of good values mixed with hostile ones."""
    columns = [c for c in spec.columns if draw(st.floats(0, 1)) < (0.98 if c.required else 0.7)]
    extras = draw(st.lists(st.sampled_from(EXTRA_COLUMNS), max_size=2, unique=True))
    n = draw(st.integers(0 if spec is not schema.KEYS else 1, max_rows))
    hostile_share = draw(st.sampled_from((0.0, 0.05, 0.15, 0.5)))   # clean tables too, so the job runs
    data = {}
    unique = {spec.unique} if spec.unique else set()
    for col in columns:
        good = _good(col.kind, col.name)
        data[col.name] = [draw(hostile_values) if draw(st.floats(0, 1)) < hostile_share else
                          (f"{col.name[0]}{i}" if col.name in unique else draw(good)) for i in range(n)]
    for name in extras:
        if name not in data:
            data[name] = [draw(hostile_values) for _ in range(n)]
    return pd.DataFrame(data, index=range(n))


def _text(value):
    """A value as a CSV/Parquet cell: text, or None for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def write_table(folder: Path, name: str, frame: pd.DataFrame, layout: str) -> None:
    """Write `frame` as table `name` in `layout` (see LAYOUTS)."""
    parts = [frame] if not layout.startswith("parts-") else [frame.iloc[:len(frame) // 2], frame.iloc[len(frame) // 2:]]
    fmt = layout.split("-")[-1]
    if layout.startswith("parts-"):
        target = folder / name
        target.mkdir()
        (target / "_SUCCESS").write_text("")
        paths = [target / f"part-{i:05d}.{fmt}" for i in range(len(parts))]
    else:
        ext = fmt.upper() if layout.startswith("UPPER") else fmt
        paths = [folder / f"{name}.{ext}"]
    for part, path in zip(parts, paths):
        if fmt == "parquet":
            part.apply(lambda col: col.map(_text)).astype(object).to_parquet(path, index=False)
        elif fmt in ("csv", "csv.gz"):
            text = part.apply(lambda col: col.map(_text)).to_csv(index=False)
            data = text.encode("utf-8", "surrogatepass")
            path.write_bytes(gzip.compress(data) if fmt == "csv.gz" else data)
        else:
            lines = [json.dumps({k: v for k, v in row.items()}, allow_nan=True) for row in part.to_dict("records")]
            path.write_text("".join(line + "\n" for line in lines), encoding="utf-8", errors="surrogatepass")


@st.composite
def input_folders(draw) -> dict:
    """Table name → (frame, layout); keys always, the others now and then."""
    out = {"keys": (draw(table_frames(schema.KEYS)), draw(st.sampled_from(LAYOUTS)))}
    for spec in (schema.ACCOUNTS, schema.PAYMENTS, schema.REQUESTS):
        if draw(st.booleans()):
            out[spec.name] = (draw(table_frames(spec, max_rows=20 if spec is schema.REQUESTS else 8)),
                              draw(st.sampled_from(LAYOUTS)))
    return out


@dataclass
class Outcome:
    tables: object            # keyfarm.io.Tables, or None when the loader stopped
    error: KeyfarmError | None


def write_folder(folder: Path, drawn: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (frame, layout) in drawn.items():
        write_table(folder, name, frame, layout)


def check_folder(folder: Path) -> Outcome:
    """Load `folder`; assert the loader's contract (module docstring) and return what it gave."""
    from keyfarm.io import load_tables

    try:
        tables = load_tables(folder, max_quarantine_share=None)
    except KeyfarmError as exc:
        assert "\n" not in str(exc).strip(), f"a multi-line error: {exc!r}"
        return Outcome(None, exc)
    valid = tables.valid_rows()
    counts = tables.quarantine_counts()
    for name, n_in in tables.input_rows.items():
        n_q = sum(counts.get(name, {}).values())
        assert n_in == valid[name] + n_q, f"table {name}: {n_in} rows in, {valid[name]} valid + {n_q} quarantined"
        q = tables.quarantine.get(name)
        if q is not None and len(q):
            assert q["source_row"].is_unique and q["source_row"].between(0, n_in - 1).all()
    return Outcome(tables, None)
