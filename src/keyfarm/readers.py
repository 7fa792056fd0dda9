"""Reading input tables from files (load stage): which file or folder holds a table, and its rows
as written, in every format keyfarm reads.

A table is one file (`requests.parquet`, `keys.CSV`, …: endings are matched case-insensitively) or
a folder of parts (`requests/` or `requests.parquet/`, the layout Spark and most lakes write; parts
in any format, `_`/`.`-prefixed entries such as `_SUCCESS` skipped). Nothing is skipped silently:
a file named after a table in a format keyfarm does not read is an error, not an absent table.
Values are kept as written: CSV fields are text (NUL and all), JSONL numbers keep their text ("10"
stays "10"), Parquet columns keep their types; io.py coerces and validates.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from keyfarm import schema
from keyfarm.errors import KeyfarmInputError

log = logging.getLogger(__name__)

CSV_BLOCK_BYTES = 16 << 20   # a CSV row (a long prompt) must fit in one parse block
NS_MIN, NS_MAX = pd.Timestamp.min, pd.Timestamp.max


def format_of(name: str, formats=schema.FORMATS) -> str | None:
    """The format ending of a file name (".csv.gz", ".parquet", …), case-insensitively, or None."""
    lower = name.lower()
    for ext in sorted(formats, key=len, reverse=True):
        if lower.endswith(ext):
            return ext
    return None


def find_table_file(folder: Path, name: str) -> Path | None:
    """The file or folder of parts holding table `name` in `folder`, or None.

    Two candidates (`keys.csv` and `keys.parquet`, or `requests/` and `requests.parquet`) are an
    error, and so is a file named `<name>.<something keyfarm does not read>` (`requests.json`,
    `keys.parquet.gz`): reading none of it would lose the table silently.
    """
    found, unreadable = [], []
    for entry in sorted(folder.iterdir()):
        lower = entry.name.lower()
        if lower == name:
            (found if entry.is_dir() else unreadable).append(entry)
        elif lower.startswith(name + "."):
            ext = format_of(lower)
            (found if ext is not None and lower == name + ext else unreadable).append(entry)
    if unreadable:
        raise KeyfarmInputError(
            f"table {name}: {unreadable[0].name} is not a format keyfarm reads (a table is one "
            f"{', '.join(schema.FORMATS)} file or a folder of parts); rename or remove it", table=name)
    if len(found) > 1:
        raise KeyfarmInputError(
            f"table {name}: found {len(found)} files ({', '.join(p.name for p in found)}); keep one",
            table=name)
    return found[0] if found else None


def read_table_file(path: Path, name: str) -> pd.DataFrame:
    """Read one table file, or a folder of parts (in path order), as written."""
    if path.is_dir():
        parts = list_parts(path, name)
        frames = [_read_one(p, name) for p in parts]
        rows = [f for f in frames if len(f)]   # an empty part adds no rows (nor, to pandas, dtypes)
        if len(rows) < 2:
            return (rows or frames)[0]
        with warnings.catch_warnings():   # all-null columns of a part: io.py types every column itself
            warnings.simplefilter("ignore", FutureWarning)
            return pd.concat(rows, ignore_index=True)
    return _read_one(path, name)


def list_parts(folder: Path, name: str) -> list[Path]:
    """The part files of a table folder, recursively (hive-style `day=…/` folders included), in
    path order; an entry starting with `_` or `.` (`_SUCCESS`, `.part-0.crc`) is not data."""
    parts = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).parts
        if any(p.startswith(("_", ".")) for p in rel) or path.is_dir():
            continue
        if format_of(path.name, schema.PART_FORMATS) is None:
            raise KeyfarmInputError(
                f"table {name}: part {path.relative_to(folder.parent)} is not a format keyfarm reads "
                f"({', '.join(schema.PART_FORMATS)})", table=name)
        parts.append(path)
    if not parts:
        raise KeyfarmInputError(f"table {name}: folder {folder.name}/ holds no parts", table=name)
    return parts


def _read_one(path: Path, name: str) -> pd.DataFrame:
    ext = format_of(path.name, schema.PART_FORMATS)
    try:
        if ext == ".parquet":
            return read_parquet_dictionary(path, name)
        if ext in (".csv", ".csv.gz"):
            return read_csv_text(path, name)
        if ext in (".jsonl", ".json"):
            return read_jsonl(path, name)
    except (pa.ArrowException, ValueError, OSError) as exc:  # parse errors of pyarrow are ArrowExceptions
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise KeyfarmInputError(f"table {name}: cannot read {path.name}: {first}", table=name) from None
    raise KeyfarmInputError(f"table {name}: unsupported file {path.name}", table=name)


def read_csv_text(path: Path, name: str) -> pd.DataFrame:
    """A CSV (or gzipped CSV) file with every column as text; an empty field is null.

    pyarrow parses it into dictionary-encoded text (as Parquet's strings become); a file holding a
    NUL is read by Python's csv module instead, which keeps the NUL inside its field (pandas' C
    parser cut the field there; pyarrow's miscounts fields after one).
    """
    read = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES)
    parse = pacsv.ParseOptions(newlines_in_values=True)
    gzip = format_of(path.name) == ".csv.gz"   # by our ending, not pyarrow's case-sensitive guess

    def source():
        return pa.input_stream(str(path), compression="gzip" if gzip else None)

    with source() as stream:
        head = stream.read(CSV_BLOCK_BYTES)
        has_nul = b"\x00" in head or _contains_nul(stream)
    if has_nul:   # pyarrow's parser miscounts fields after a NUL in some blocks (measured: row 4097)
        with source() as stream:
            return _read_csv_python(stream.read().decode("utf-8-sig"), name, path)   # -sig: as pyarrow, drop a BOM
    # the header by Python's csv module: pyarrow's streaming reader (open_csv) reads ahead on threads
    # and, closed early, corrupted the next read of the file now and then (measured: 1 read in 8 of a
    # 120 MB requests.csv failed with a spliced row)
    names = next(csv.reader(io.StringIO(head.decode("utf-8-sig", "replace"), newline="")), None)
    if names is None:
        raise KeyfarmInputError(f"table {name}: cannot read {path.name}: Empty CSV file", table=name)
    _check_unique_names(names, name, path)
    # parsed straight into dictionary arrays: logs repeat their values, and the text of a 100 MB
    # file never sits in memory as one string per row
    text = pa.dictionary(pa.int32(), pa.string())
    convert = pacsv.ConvertOptions(column_types={n: text for n in names},
                                   strings_can_be_null=True, null_values=[""])
    with source() as stream:
        return arrow_to_frame(_drain(pacsv.read_csv(stream, read_options=read, parse_options=parse,
                                                    convert_options=convert)))


def _contains_nul(stream) -> bool:
    while chunk := stream.read(CSV_BLOCK_BYTES):
        if b"\x00" in chunk:
            return True
    return False


def _read_csv_python(text: str, name: str, path: Path) -> pd.DataFrame:
    """The same table by Python's csv module (which keeps NUL), text columns, "" as null."""
    rows = csv.reader(io.StringIO(text, newline=""))
    names = next(rows, None)
    if names is None:
        raise KeyfarmInputError(f"table {name}: cannot read {path.name}: Empty CSV file", table=name)
    _check_unique_names(names, name, path)
    columns: list[list] = [[] for _ in names]
    for number, row in enumerate(rows, 2):
        if len(row) != len(names):
            raise KeyfarmInputError(f"table {name}: cannot read {path.name}: line {number} has {len(row)} "
                                    f"fields, the header {len(names)}", table=name, row=number)
        for values, value in zip(columns, row):
            values.append(value if value != "" else None)
    return arrow_to_frame(pa.table({n: pa.array(v, pa.string()) for n, v in zip(names, columns)}))


def read_jsonl(path: Path, name: str) -> pd.DataFrame:
    """JSON Lines, one object of columns per line; blank lines are skipped.

    Numbers keep their text ("10" stays "10", not 10.0), so a numeric key id matches the same id
    elsewhere and a count is parsed exactly. A line that is not JSON, or is an array or a bare value
    instead of an object, is an error naming the line; a nested value inside an object is left for
    io.py to quarantine (or null) as `bad_value`.
    """
    rows = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw, parse_int=str, parse_float=str, parse_constant=str)
            except ValueError as exc:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
                raise KeyfarmInputError(f"table {name}: {path.name} line {number} is not JSON ({exc})",
                                        table=name, row=number) from None
            if not isinstance(value, dict):
                raise KeyfarmInputError(
                    f"table {name}: {path.name} line {number} is a JSON {type(value).__name__}, "
                    "not an object of columns", table=name, row=number)
            rows.append(value)
    return pd.DataFrame.from_records(rows) if rows else pd.DataFrame()


def read_parquet_dictionary(path: Path, name: str | None = None) -> pd.DataFrame:
    """A Parquet table with its text columns as pandas Categoricals.

    Logs repeat ids, addresses, user agents and prompts: one Python string per distinct value
    instead of one per row is what keeps the loader's peak memory in bounds (measured on the
    requests of a 300k-key world: +0.9 GiB against +2.0 GiB for pandas.read_parquet). The text is
    read plain and dictionary-encoded in one pass: Parquet's own dictionaries (`read_dictionary`)
    come as one chunk per batch, each with the whole dictionary so far, and unifying those took
    minutes on the 1M-key world's prompts (measured: load 119-156 s against 98 s before).

    The file is read a column at a time, each converted before the next is read, so the raw
    Arrow table never sits in memory whole beside its pandas form (the 1M-key world's requests
    are 3.2 GiB as Arrow).
    """
    names = pq.read_schema(path).names
    _check_unique_names(names, name or path.stem, path)
    return arrow_to_frame(_parquet_columns(path, names))


def _parquet_columns(path: Path, names: list[str]):
    """(name, column) of a Parquet file, one read per column; the whole file read at once where
    a name does not select just its own column (a name such as "a.b" may reach into a nested one)."""
    for i, name in enumerate(names):
        if name.startswith("__index_level_"):   # an index pandas stored: arrow_to_frame skips it
            continue
        part = pq.read_table(path, columns=[name])
        if part.column_names != [name]:
            yield from _drain(pq.read_table(path).select(names[i:]))
            return
        yield name, part.column(0)
        del part


def _drain(table: pa.Table):
    """(name, column) of `table`, each column dropped from it once handed over, so only the
    consumer holds a converted column's Arrow buffers."""
    for name in table.column_names:
        col = table.column(0)
        table = table.remove_column(0)
        yield name, col
        del col


def arrow_to_frame(columns) -> pd.DataFrame:
    """pandas columns of an Arrow table (or of its (name, column) pairs, consumed one by one):
    strings dictionary-encoded, timestamps beyond pandas' nanosecond range (year 3000) as text,
    which io.py then quarantines as it would the same text."""
    if isinstance(columns, pa.Table):
        columns = _drain(columns)
    out = {}
    for name, col in columns:
        if name.startswith("__index_level_"):  # an index pandas stored: not a column of the table
            continue
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            out[name] = _categorical(pc.dictionary_encode(col).combine_chunks())
            continue
        if pa.types.is_timestamp(col.type) and col.type.unit != "ns":
            try:
                col = col.cast(pa.timestamp("ns", col.type.tz))
            except pa.ArrowInvalid:
                col = col.cast(pa.string())
        out[name] = col.to_pandas()
    return pd.DataFrame(out)


def _categorical(col: pa.DictionaryArray) -> pd.Series:
    """A text dictionary array as a pandas Categorical, as `to_pandas` makes it but without
    checking that the dictionary's values are distinct (pandas hashes every one for that;
    dictionary_encode's are distinct by construction). A dictionary column as read (a Parquet
    Categorical, pyarrow's CSV text) keeps to_pandas, which unifies and checks its dictionaries."""
    categories = pd.Index(col.dictionary.to_numpy(zero_copy_only=False), dtype=object)
    codes = np.array(col.indices.fill_null(-1))   # a writable copy, as to_pandas gives
    dtype = pd.CategoricalDtype._from_fastpath(categories, ordered=False)
    return pd.Series(pd.Categorical.from_codes(codes, dtype=dtype, validate=False), copy=False)


def _check_unique_names(names, table: str, path: Path) -> None:
    seen = set()
    for n in names:
        if n in seen:
            raise KeyfarmInputError(f"table {table}: column {n!r} appears twice in {path.name}",
                                    table=table, column=n)
        seen.add(n)
