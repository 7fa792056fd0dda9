"""Loading every format, structural errors with clear messages, quarantine with counted reasons."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from keyfarm.errors import KeyfarmInputError
from keyfarm.io import load_tables, tables_from_frames

KEYS = pd.DataFrame({"key_id": ["k2", "k1", "k3"], "account_id": ["a1", "a1", "a2"],
                     "created_at": ["2026-11-01T10:00:00Z", "2026-11-01T09:00:00+02:00", "2026-11-02"],
                     "daily_token_limit": ["100000", "", "5000"]})
REQUESTS = pd.DataFrame({"key_id": ["k1", "k2", "k3", "k3"],
                         "ts": ["2026-11-03T00:00:00Z"] * 4,
                         "ip": ["203.0.113.7", "2001:db8::1", "::ffff:198.51.100.2", " 10.0.0.1 "],
                         "prompt": ["hello", "", None, "x"],
                         "prompt_tokens": ["10", "0", "3", "4"]})


def _write(folder, name, frame, fmt):
    path = folder / f"{name}{fmt}"
    if fmt == ".parquet":
        frame.to_parquet(path, index=False)
    elif fmt in (".csv", ".csv.gz"):
        frame.to_csv(path, index=False)
    else:
        with open(path, "w") as fh:
            for row in frame.to_dict("records"):
                fh.write(json.dumps(row) + "\n")


@pytest.mark.parametrize("fmt", [".parquet", ".csv", ".csv.gz", ".jsonl"])
def test_every_format_loads_to_the_same_tables(tmp_path, fmt):
    _write(tmp_path, "keys", KEYS, fmt)
    _write(tmp_path, "requests", REQUESTS, fmt)
    tables = load_tables(tmp_path)
    assert tables.keys["key_id"].tolist() == ["k1", "k2", "k3"]  # sorted by key_id
    assert tables.keys["account"].tolist() == [0, 0, 1]
    assert str(tables.keys["created_at"].dt.tz) == "UTC"
    assert tables.keys["created_at"].iloc[0] == pd.Timestamp("2026-11-01T07:00:00Z")
    assert tables.keys["daily_token_limit"].iloc[1] == 100000  # k2
    assert pd.isna(tables.keys["daily_token_limit"].iloc[0])  # k1: empty means the job's default
    assert len(tables.requests) == 4 and not tables.quarantine_counts()
    by_key = tables.requests.set_index("key_id")
    assert by_key.loc["k1", "ip"] == "203.0.113.7"
    assert set(tables.requests["ip_version"]) == {4, 6}


def test_ipv4_mapped_ipv6_is_ipv4_and_whitespace_is_ignored():
    tables = tables_from_frames(KEYS, requests=REQUESTS)
    k3 = tables.requests[tables.requests["key_id"] == "k3"].sort_values("ip")
    assert k3["ip"].tolist() == ["10.0.0.1", "198.51.100.2"]
    assert (k3["ip_version"] == 4).all()
    assert int(k3["ip_lo"].iloc[1]) == (198 << 24) | (51 << 16) | (100 << 8) | 2


def test_missing_folder_is_an_input_error(tmp_path):
    with pytest.raises(KeyfarmInputError, match="does not exist"):
        load_tables(tmp_path / "nope")


def test_missing_keys_table_names_the_table(tmp_path):
    _write(tmp_path, "requests", REQUESTS, ".csv")
    with pytest.raises(KeyfarmInputError, match="table keys: no keys file"):
        load_tables(tmp_path)


def test_missing_required_column_names_table_column_and_row(tmp_path):
    _write(tmp_path, "keys", KEYS.drop(columns=["account_id"]), ".csv")
    with pytest.raises(KeyfarmInputError) as err:
        load_tables(tmp_path)
    assert "table keys" in str(err.value) and "'account_id'" in str(err.value)
    assert "first row" in str(err.value) and "k2" in str(err.value)
    assert err.value.table == "keys" and err.value.column == "account_id"


def test_duplicate_key_id_names_the_value_and_rows():
    keys = pd.concat([KEYS, KEYS.iloc[[0]]], ignore_index=True)
    with pytest.raises(KeyfarmInputError, match=r"table keys: column 'key_id' must be unique.*'k2' at rows 0, 3"):
        tables_from_frames(keys)


def test_two_files_for_one_table_is_an_error(tmp_path):
    _write(tmp_path, "keys", KEYS, ".csv")
    _write(tmp_path, "keys", KEYS, ".parquet")
    with pytest.raises(KeyfarmInputError, match="found 2 files"):
        load_tables(tmp_path)


def test_unreadable_file_is_an_input_error(tmp_path):
    (tmp_path / "keys.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(KeyfarmInputError, match="table keys: cannot read keys.parquet"):
        load_tables(tmp_path)


def test_every_quarantine_reason_is_counted_and_rows_kept_as_read():
    keys = pd.concat([KEYS, pd.DataFrame({"key_id": ["", "k9"], "account_id": ["a3", "a3"],
                                          "created_at": ["2026-11-01", "yesterday"]})],
                     ignore_index=True)
    requests = pd.concat([REQUESTS, pd.DataFrame({
        "key_id": ["k1", "k1", "nobody", "k9", "k1", "k1", "", "k2"],
        "ts": ["2026-11-03", "garbage", "2026-11-03", "2026-11-03", "2026-11-03", "2026-11-03",
               "2026-11-03", "2026-11-03"],
        "ip": ["300.1.2.3", "1.2.3.4", "1.2.3.4", "1.2.3.4", "1.2.3.4", "1.2.3.4", "1.2.3.4", None],
        "prompt_tokens": ["1", "1", "1", "1", "-3", "1.5", "1", "1"],
    })], ignore_index=True)
    tables = tables_from_frames(keys, requests=requests, max_quarantine_share=None)
    assert tables.quarantine_counts() == {
        "keys": {"bad_timestamp": 1, "empty_id": 1},
        "requests": {"bad_integer": 1, "bad_timestamp": 1, "empty_id": 1, "key_quarantined": 1,
                     "malformed_ip": 2, "negative_value": 1, "unknown_key_id": 1},
    }
    assert len(tables.requests) == 4 and len(tables.keys) == 3
    q = tables.quarantine["requests"]
    assert q.loc[q["reason"] == "malformed_ip", "ip"].tolist()[0] == "300.1.2.3"  # as read
    assert q.loc[q["reason"] == "negative_value", "prompt_tokens"].tolist() == ["-3"]
    assert q["source_row"].tolist() == sorted(q["source_row"])
    assert tables.input_rows == {"keys": 5, "requests": 12}
    # nothing silently dropped: valid + quarantined = read
    assert len(tables.requests) + len(q) == 12


def test_quarantine_is_written_per_table(tmp_path):
    requests = pd.concat([REQUESTS, pd.DataFrame({"key_id": ["zz"], "ts": ["2026-11-03"],
                                                  "ip": ["1.1.1.1"]})], ignore_index=True)
    tables = tables_from_frames(KEYS, requests=requests)
    tables.write_quarantine(tmp_path)
    back = pd.read_parquet(tmp_path / "quarantine" / "requests.parquet")
    assert back["reason"].tolist() == ["unknown_key_id"] and back["key_id"].tolist() == ["zz"]


def test_parquet_timestamps_naive_are_utc_and_aware_are_converted():
    keys = KEYS.copy()
    keys["created_at"] = pd.to_datetime(["2026-11-01 10:00", "2026-11-01 11:00", "2026-11-01 12:00"])
    t1 = tables_from_frames(keys)
    assert t1.keys["created_at"].iloc[0] == pd.Timestamp("2026-11-01 11:00", tz="UTC")  # k1
    keys["created_at"] = keys["created_at"].dt.tz_localize("Europe/Berlin")
    t2 = tables_from_frames(keys)
    assert t2.keys["created_at"].iloc[0] == pd.Timestamp("2026-11-01 10:00", tz="UTC")


def test_optional_tables_are_empty_with_their_columns():
    tables = tables_from_frames(KEYS)
    assert list(tables.payments.columns) == ["account_id", "payment_fingerprint"]
    assert {"org_id", "email_domain"} <= set(tables.accounts.columns)
    assert len(tables.requests) == 0 and "ip_version" in tables.requests.columns


def test_row_order_does_not_change_the_tables():
    a = tables_from_frames(KEYS, requests=REQUESTS)
    b = tables_from_frames(KEYS.iloc[::-1], requests=REQUESTS.iloc[::-1])
    pd.testing.assert_frame_equal(a.keys, b.keys)
    pd.testing.assert_frame_equal(a.requests.drop(columns=[]), b.requests)


def test_payments_of_unknown_accounts_and_repeated_rows_are_quarantined_not_dropped():
    accounts_of_keys = sorted(set(KEYS["account_id"]))
    payments = pd.DataFrame({
        "account_id": [accounts_of_keys[0], accounts_of_keys[0], "ghost", accounts_of_keys[-1]],
        "payment_fingerprint": ["pf1", "pf1", "pf2", "pf3"],
    })
    tables = tables_from_frames(KEYS, payments=payments)
    assert tables.quarantine_counts() == {"payments": {"duplicate_row": 1, "unknown_account_id": 1}}
    q = tables.quarantine["payments"].sort_values("source_row")
    assert q["source_row"].tolist() == [1, 2] and q["account_id"].tolist() == [accounts_of_keys[0], "ghost"]
    assert tables.payments["payment_fingerprint"].tolist() == ["pf1", "pf3"]
    assert len(tables.payments) + len(q) == len(payments)


ACCOUNTS = pd.DataFrame({"account_id": ["a2", "a1"], "created_at": ["2026-10-01", "2026-10-02T12:00:00Z"],
                         "email_domain": ["example.edu", None], "org_id": [None, "org-1"]})
PAYMENTS = pd.DataFrame({"account_id": ["a1", "a2"], "payment_fingerprint": ["pf-x", "pf-y"]})


@pytest.mark.parametrize("fmt", [".parquet", ".csv", ".csv.gz", ".jsonl"])
def test_accounts_and_payments_load_from_every_format(tmp_path, fmt):
    for name, frame in (("keys", KEYS), ("accounts", ACCOUNTS), ("payments", PAYMENTS)):
        _write(tmp_path, name, frame, fmt)
    tables = load_tables(tmp_path)
    assert tables.accounts["account_id"].tolist() == ["a1", "a2"]
    assert tables.accounts["created_at"].tolist() == [pd.Timestamp("2026-10-02T12:00:00Z"),
                                                      pd.Timestamp("2026-10-01T00:00:00Z")]
    assert tables.accounts.set_index("account_id").loc["a1", "org_id"] == "org-1"
    assert pd.isna(tables.accounts.set_index("account_id").loc["a1", "email_domain"])
    assert tables.payments.values.tolist() == [["a1", "pf-x"], ["a2", "pf-y"]]
    assert not tables.quarantine_counts()


def test_duplicate_account_id_is_a_structural_error():
    accounts = pd.concat([ACCOUNTS, ACCOUNTS.iloc[[1]]], ignore_index=True)
    with pytest.raises(KeyfarmInputError, match=r"table accounts: column 'account_id' must be unique.*'a1'"):
        tables_from_frames(KEYS, accounts=accounts)


@pytest.mark.parametrize("table, frame, column", [
    ("payments", PAYMENTS.drop(columns=["payment_fingerprint"]), "payment_fingerprint"),
    ("requests", REQUESTS.drop(columns=["ip"]), "ip"),
    ("requests", REQUESTS.drop(columns=["ts"]), "ts"),
])
def test_a_missing_column_of_any_table_names_table_and_column(tmp_path, table, frame, column):
    _write(tmp_path, "keys", KEYS, ".csv")
    _write(tmp_path, table, frame, ".csv")
    with pytest.raises(KeyfarmInputError) as err:
        load_tables(tmp_path)
    assert f"table {table}" in str(err.value) and f"'{column}'" in str(err.value)
    assert err.value.table == table and err.value.column == column
