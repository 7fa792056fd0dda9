"""The loader under bad input: no silent loss, exact values, bad optional values nulled not dropped,
and a job that lost too much of a table stops (issue 20)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from keyfarm.cli import main
from keyfarm.errors import KeyfarmInputError
from keyfarm.io import load_tables, tables_from_frames

KEYS = pd.DataFrame({"key_id": ["k1", "k2", "k3"], "account_id": ["a1", "a2", "a2"],
                     "created_at": ["2026-11-01T00:00:00Z"] * 3, "daily_token_limit": ["1000", "2000", "3000"]})
REQUESTS = pd.DataFrame({"key_id": ["k1", "k2", "k3", "k1"], "ts": ["2026-11-03T00:00:00Z"] * 4,
                         "ip": ["203.0.113.7", "203.0.113.8", "203.0.113.9", "203.0.113.7"],
                         "prompt_tokens": ["10", "20", "30", "40"]})


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


# ---------------------------------------------------------------- where a table is

def test_a_folder_of_parquet_parts_is_read_as_one_table(tmp_path):
    KEYS.to_csv(tmp_path / "keys.csv", index=False)
    parts = tmp_path / "requests.parquet"
    parts.mkdir()
    REQUESTS.iloc[:2].to_parquet(parts / "part-00000-abc.snappy.parquet", index=False)
    REQUESTS.iloc[2:].to_parquet(parts / "part-00001-abc.snappy.parquet", index=False)
    (parts / "_SUCCESS").write_text("")
    (parts / ".part-00000-abc.snappy.parquet.crc").write_text("x")
    tables = load_tables(tmp_path)
    assert len(tables.requests) == 4 and tables.input_rows["requests"] == 4


@pytest.mark.parametrize("ext", [".csv", ".csv.gz", ".jsonl", ".json", ".parquet"])
def test_a_requests_folder_of_parts_is_read_in_every_format(tmp_path, ext):
    KEYS.to_csv(tmp_path / "keys.csv", index=False)
    folder = tmp_path / "requests" / "day=2026-11-03"
    folder.mkdir(parents=True)
    for i, part in enumerate((REQUESTS.iloc[:3], REQUESTS.iloc[3:])):
        path = folder / f"part-{i}{ext}"
        if ext == ".parquet":
            part.to_parquet(path, index=False)
        elif ext.startswith(".csv"):
            part.to_csv(path, index=False)
        else:
            _jsonl(path, part.to_dict("records"))
    assert len(load_tables(tmp_path).requests) == 4


@pytest.mark.parametrize("name", ["requests.PARQUET", "Requests.Csv", "REQUESTS.JSONL", "requests.CSV.GZ"])
def test_file_endings_are_matched_case_insensitively(tmp_path, name):
    KEYS.to_csv(tmp_path / "keys.csv", index=False)
    path = tmp_path / name
    lower = name.lower()
    if lower.endswith(".parquet"):
        REQUESTS.to_parquet(path, index=False)
    elif lower.endswith(".jsonl"):
        _jsonl(path, REQUESTS.to_dict("records"))
    else:
        REQUESTS.to_csv(path, index=False, compression="gzip" if lower.endswith(".gz") else None)
    assert len(load_tables(tmp_path).requests) == 4


@pytest.mark.parametrize("name", ["requests.json", "requests.parquet.gz", "requests"])
def test_a_table_file_in_a_format_keyfarm_does_not_read_is_an_error_not_an_absent_table(tmp_path, name):
    KEYS.to_csv(tmp_path / "keys.csv", index=False)
    (tmp_path / name).write_text("{}")
    with pytest.raises(KeyfarmInputError, match="table requests: .*not a format keyfarm reads"):
        load_tables(tmp_path)


def test_an_empty_folder_of_parts_is_an_error(tmp_path):
    KEYS.to_csv(tmp_path / "keys.csv", index=False)
    (tmp_path / "requests").mkdir()
    (tmp_path / "requests" / "_SUCCESS").write_text("")
    with pytest.raises(KeyfarmInputError, match="holds no parts"):
        load_tables(tmp_path)


# ---------------------------------------------------------------- values as written

def test_numeric_ids_in_jsonl_are_read_as_their_text(tmp_path):
    _jsonl(tmp_path / "keys.jsonl", [{"key_id": 10, "account_id": 7, "created_at": "2026-11-01"},
                                     {"key_id": 11, "account_id": 7, "created_at": "2026-11-01"}])
    _jsonl(tmp_path / "requests.jsonl", [{"key_id": 10, "ts": "2026-11-03", "ip": "1.2.3.4", "prompt_tokens": 5},
                                         {"key_id": 11, "ts": "2026-11-03", "ip": "1.2.3.5"}])
    tables = load_tables(tmp_path)
    assert tables.keys["key_id"].tolist() == ["10", "11"] and tables.keys["account_id"].tolist() == ["7", "7"]
    assert len(tables.requests) == 2 and not tables.quarantine_counts()
    assert tables.requests["prompt_tokens"].dropna().tolist() == [5]


def test_a_nul_in_a_csv_field_is_kept(tmp_path):
    (tmp_path / "keys.csv").write_bytes(b"key_id,account_id,created_at\nab\x00cd,a1,2026-11-01\nk2,a1,2026-11-01\n")
    assert load_tables(tmp_path).keys["key_id"].tolist() == ["ab\x00cd", "k2"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_huge_token_counts_are_quarantined_out_of_range_never_wrapped(tmp_path, fmt):
    KEYS.to_csv(tmp_path / "keys.csv", index=False)
    big = REQUESTS.copy()
    if fmt == "csv":
        big["prompt_tokens"] = ["10", str(2**63 - 1), str(2**70), "40"]
        big.to_csv(tmp_path / "requests.csv", index=False)
    else:
        big["prompt_tokens"] = np.array([10, 2**63 - 1, 2**62, 40], dtype=np.int64)
        big.to_parquet(tmp_path / "requests.parquet", index=False)
    tables = load_tables(tmp_path)
    assert tables.quarantine_counts() == {"requests": {"out_of_range": 2}}
    assert tables.requests["prompt_tokens"].tolist() == [10, 40]


def test_a_zero_daily_limit_is_no_limit_recorded_not_an_infinite_usage():
    keys = KEYS.assign(daily_token_limit=["0", "2000", "3000"])
    tables = tables_from_frames(keys, requests=REQUESTS)
    assert pd.isna(tables.keys.set_index("key_id").loc["k1", "daily_token_limit"])
    assert tables.nulled_counts() == {"keys": {"daily_token_limit": {"zero_limit": 1}}}
    assert not tables.quarantine_counts()


@pytest.mark.parametrize("value,reason", [("-5", "negative_value"), ("lots", "bad_integer"),
                                          (str(2**60), "out_of_range"), ("1.5", "bad_integer")])
def test_a_bad_optional_value_is_nulled_and_counted_and_the_key_keeps_its_requests(value, reason):
    keys = KEYS.assign(daily_token_limit=[value, "2000", "3000"])
    payments = pd.DataFrame({"account_id": ["a1"], "payment_fingerprint": ["card-1"]})
    tables = tables_from_frames(keys, payments=payments, requests=REQUESTS)
    assert tables.keys["key_id"].tolist() == ["k1", "k2", "k3"]
    assert pd.isna(tables.keys["daily_token_limit"].iloc[0])
    assert tables.nulled_counts() == {"keys": {"daily_token_limit": {reason: 1}}}
    assert len(tables.requests) == 4 and len(tables.payments) == 1 and not tables.quarantine_counts()


def test_a_bad_optional_account_timestamp_is_nulled_not_the_account():
    accounts = pd.DataFrame({"account_id": ["a1", "a2"], "created_at": ["whenever", "2026-01-01"]})
    tables = tables_from_frames(KEYS, accounts=accounts)
    assert len(tables.accounts) == 2 and pd.isna(tables.accounts["created_at"].iloc[0])
    assert tables.nulled_counts() == {"accounts": {"created_at": {"bad_timestamp": 1}}}


def test_extra_columns_named_like_internal_ones_are_kept_out_of_the_way(tmp_path):
    extra = {"key": ["x"] * 4, "ip_version": ["9"] * 4, "reason": ["mine"] * 4, "source_row": ["s"] * 4,
             "account": ["?"] * 4, "ip_hi": [1] * 4}
    requests = pd.concat([REQUESTS, pd.DataFrame({"key_id": ["nobody"], "ts": ["2026-11-03"], "ip": ["1.1.1.1"],
                                                  "prompt_tokens": ["1"]})], ignore_index=True)
    requests = requests.assign(**{k: v + v[:1] for k, v in extra.items()})
    keys = KEYS.assign(key=["a", "b", "c"], account=["z", "z", "z"], reason="r")
    tables = tables_from_frames(keys, requests=requests)
    assert tables.keys["account"].tolist() == [0, 1, 1]
    assert tables.requests["key"].tolist() == [0, 0, 1, 2]
    assert set(tables.requests["ip_version"]) == {4}
    q = tables.quarantine["requests"]
    assert q["reason"].tolist() == ["unknown_key_id"] and q["input_reason"].tolist() == ["mine"]
    assert q["source_row"].tolist() == [4] and q["input_source_row"].tolist() == ["s"]
    tables.write_quarantine(tmp_path)
    assert pd.read_parquet(tmp_path / "quarantine" / "requests.parquet")["reason"].tolist() == ["unknown_key_id"]


def test_parquet_timestamps_beyond_pandas_range_are_quarantined_not_a_traceback(tmp_path):
    import datetime as dt
    ts = pa.array([dt.datetime(2026, 11, 1), dt.datetime(3000, 1, 1), dt.datetime(2026, 11, 2)], pa.timestamp("us"))
    pq.write_table(pa.table({"key_id": ["k1", "k2", "k3"], "account_id": ["a", "a", "b"], "created_at": ts}),
                   tmp_path / "keys.parquet")
    tables = load_tables(tmp_path)
    assert tables.keys["key_id"].tolist() == ["k1", "k3"]
    assert tables.quarantine_counts() == {"keys": {"bad_timestamp": 1}}


def test_timestamps_outside_the_plausible_range_are_out_of_range():
    keys = KEYS.assign(created_at=["1900-01-01", "2026-11-01", "2250-01-01"])
    with pytest.raises(KeyfarmInputError, match="out_of_range 2"):
        tables_from_frames(keys)
    tables = tables_from_frames(keys, max_quarantine_share=None)
    assert tables.quarantine_counts() == {"keys": {"out_of_range": 2}}
    seconds = pd.DataFrame({"key_id": ["k1", "k2"], "account_id": ["a", "a"],
                            "created_at": np.array(["2026-11-01", "2900-01-01"], dtype="datetime64[s]")})
    assert tables_from_frames(seconds, max_quarantine_share=None).quarantine_counts() == \
        {"keys": {"out_of_range": 1}}


@pytest.mark.parametrize("line", ['["k1", "a1"]', '"k1"', "17", "{not json"])
def test_a_jsonl_line_that_is_not_an_object_names_the_line(tmp_path, line):
    (tmp_path / "keys.jsonl").write_text('{"key_id": "k0", "account_id": "a", "created_at": "2026-11-01"}\n'
                                         f"\n{line}\n")
    with pytest.raises(KeyfarmInputError, match="table keys: keys.jsonl line 3"):
        load_tables(tmp_path)


def test_nested_values_are_quarantined_in_required_columns_and_nulled_in_optional_ones(tmp_path):
    _jsonl(tmp_path / "keys.jsonl", [{"key_id": "k1", "account_id": "a", "created_at": "2026-11-01"},
                                     {"key_id": "k2", "account_id": "a", "created_at": "2026-11-01"},
                                     {"key_id": "k3", "account_id": "b", "created_at": "2026-11-01"}])
    _jsonl(tmp_path / "requests.jsonl", [
        {"key_id": "k1", "ts": "2026-11-03", "ip": "1.2.3.4"},
        {"key_id": "k2", "ts": "2026-11-03", "ip": "1.2.3.4", "user_agent": {"nested": [1]}},
        {"key_id": "k3", "ts": "2026-11-03", "ip": "1.2.3.4", "prompt": ["a", "b"]},
        {"key_id": ["k1"], "ts": "2026-11-03", "ip": "1.2.3.4"},
        {"key_id": "k1", "ts": "2026-11-03", "ip": "1.2.3.4", "prompt_tokens": True}])
    tables = load_tables(tmp_path)
    assert tables.quarantine_counts() == {"requests": {"bad_value": 2}}
    assert tables.nulled_counts() == {"requests": {"prompt": {"bad_value": 1}, "user_agent": {"bad_value": 1}}}
    assert len(tables.requests) == 3


# ---------------------------------------------------------------- how much may be lost

def test_a_table_losing_more_than_the_share_stops_the_job(tmp_path):
    KEYS.to_csv(tmp_path / "keys.csv", index=False)
    REQUESTS.assign(key_id=["k1", "x", "y", "z"]).to_csv(tmp_path / "requests.csv", index=False)
    with pytest.raises(KeyfarmInputError, match=r"table requests: 3 of 4 rows quarantined \(75%: unknown_key_id 3"):
        load_tables(tmp_path)
    assert len(load_tables(tmp_path, max_quarantine_share=0.8).requests) == 1


@pytest.mark.parametrize("table", ["keys", "requests"])
def test_every_row_quarantined_stops_whatever_the_share(tmp_path, table):
    keys = KEYS.assign(created_at="never") if table == "keys" else KEYS
    keys.to_csv(tmp_path / "keys.csv", index=False)
    REQUESTS.assign(ip="not-an-ip").to_csv(tmp_path / "requests.csv", index=False)
    with pytest.raises(KeyfarmInputError, match=f"table {table}: .*every row"):
        load_tables(tmp_path, max_quarantine_share=1.0)
    result = CliRunner().invoke(main, ["link", str(tmp_path), "--out", str(tmp_path / "out"), "--quiet",
                                       "--max-quarantine-share", "1"])
    assert result.exit_code == 2 and "every row" in result.output and not (tmp_path / "out").exists()


def test_validate_prints_the_counts_then_fails_over_the_share(tmp_path):
    KEYS.assign(daily_token_limit=["-1", "0", "5"]).to_csv(tmp_path / "keys.csv", index=False)
    REQUESTS.assign(key_id=["k1", "x", "y", "z"]).to_csv(tmp_path / "requests.csv", index=False)
    result = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert result.exit_code == 2
    assert "quarantined requests: 3 rows (unknown_key_id)" in result.output
    assert "nulled keys.daily_token_limit: 1 values (negative_value; rows kept)" in result.output
    assert CliRunner().invoke(main, ["validate", str(tmp_path), "--max-quarantine-share", "0.9"]).exit_code == 0


def test_an_out_dir_that_cannot_be_created_is_one_line_not_a_traceback(tmp_path):
    KEYS.to_csv(tmp_path / "keys.csv", index=False)
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(main, ["link", str(tmp_path), "--out", str(tmp_path / "file" / "out"), "--quiet",
                                       "--no-report"])
    assert result.exit_code == 2 and "Not a directory" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_numeric_id_column_with_nulls_matches_the_same_ids_as_text(tmp_path):
    keys = pd.DataFrame({"key_id": [10.0, 11.0, None], "account_id": [7.0, 7.0, 8.0],
                         "created_at": ["2026-11-01"] * 3})
    keys.to_parquet(tmp_path / "keys.parquet", index=False)
    REQUESTS.assign(key_id=["10", "11", "10", "11"]).to_csv(tmp_path / "requests.csv", index=False)
    tables = load_tables(tmp_path)
    assert tables.keys["key_id"].tolist() == ["10", "11"] and tables.keys["account_id"].tolist() == ["7", "7"]
    assert len(tables.requests) == 4 and tables.quarantine_counts() == {"keys": {"empty_id": 1}}


def test_nul_bytes_anywhere_in_a_long_csv_keep_every_field(tmp_path):
    # pyarrow's CSV parser miscounts fields after NULs in long files (here at row 4564; in the
    # sample world's requests at row 4097), so a file holding a NUL is read by Python's csv module
    n = 9000
    keys = pd.DataFrame({"key_id": [f"k{i}\x00x" for i in range(n)], "account_id": [f"a{i % 50}" for i in range(n)],
                         "created_at": ["2026-11-01"] * n, "note": ["p" * 200] * n})
    keys.to_csv(tmp_path / "keys.csv", index=False)
    tables = load_tables(tmp_path)
    assert len(tables.keys) == n and tables.keys["key_id"].str.endswith("\x00x").all()
    (tmp_path / "keys.csv").write_bytes(b"key_id,account_id,created_at\nk\x00,a,2026-11-01\nk2,a\n")
    with pytest.raises(KeyfarmInputError, match="line 3 has 2 fields"):
        load_tables(tmp_path)


def test_a_parquet_list_column_is_a_bad_value_not_a_traceback(tmp_path):
    pq.write_table(pa.table({"key_id": ["k1", "k2"], "account_id": pa.array([["a"], ["b"]]),
                             "created_at": ["2026-11-01"] * 2, "daily_token_limit": pa.array([[1], [2]])}),
                   tmp_path / "keys.parquet")
    with pytest.raises(KeyfarmInputError, match="every row"):
        load_tables(tmp_path)
    tables = tables_from_frames(pd.read_parquet(tmp_path / "keys.parquet").assign(account_id="a"))
    assert tables.nulled_counts() == {"keys": {"daily_token_limit": {"bad_value": 2}}}


def test_a_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path):
    for body in (b"key_id,account_id,created_at\nk1,a,2026-11-01\n", b"key_id,account_id,created_at\nk\x001,a,2026-11-01\n"):
        (tmp_path / "keys.csv").write_bytes(b"\xef\xbb\xbf" + body)
        assert len(load_tables(tmp_path).keys) == 1


# ---------------------------------------------------------------- which reason, what is counted

def test_a_row_is_quarantined_for_its_first_problem_and_nulls_count_only_rows_kept_so_far():
    requests = pd.DataFrame({
        "key_id": ["k1", "", "k2", "k3", "nobody", "k1"],
        "ts": ["2026-11-03", "garbage", "garbage", "2026-11-03", "2026-11-03", "2026-11-03"],
        "ip": ["1.2.3.4", "bad", "bad", "bad", "1.2.3.4", "1.2.3.4"],
        "user_agent": [{"n": 1}, {"n": 2}, "ua", "ua", "ua", {"n": 3}],
        "prompt_tokens": ["1", "1", "1", "1", "x", "-1"],
    })
    tables = tables_from_frames(KEYS, requests=requests, max_quarantine_share=None)
    q = tables.quarantine["requests"]
    assert q["reason"].tolist() == ["empty_id", "bad_timestamp", "malformed_ip", "bad_integer", "negative_value"]
    assert q["source_row"].tolist() == [1, 2, 3, 4, 5]
    # user_agent is checked before ts: rows 0 and 5 (and not row 1, gone for its empty key_id) count
    assert tables.nulled_counts() == {"requests": {"user_agent": {"bad_value": 2}}}
    assert tables.requests["user_agent"].tolist() == [None]


def test_parquet_row_groups_and_dictionaries_load_as_one_table(tmp_path):
    KEYS.to_csv(tmp_path / "keys.csv", index=False)
    pq.write_table(pa.Table.from_pandas(REQUESTS, preserve_index=False), tmp_path / "requests.parquet")
    one = load_tables(tmp_path)
    pq.write_table(pa.Table.from_pandas(REQUESTS, preserve_index=False), tmp_path / "requests.parquet",
                   row_group_size=1, use_dictionary=["ip"])
    many = load_tables(tmp_path)
    pd.testing.assert_frame_equal(one.requests, many.requests)
    assert one.requests["ip"].tolist() == ["203.0.113.7", "203.0.113.7", "203.0.113.8", "203.0.113.9"]
