"""The input contract of ../shared/SCHEMA.md as data: tables, columns, kinds, what is required.

io.py reads these specs to load, coerce and validate; nothing else hard-codes column lists.
"""
from __future__ import annotations

from dataclasses import dataclass

# Column kinds: "id" (non-empty string), "str" (optional string), "ts" (timestamp, UTC),
# "int" (non-negative integer, nullable), "ip" (IPv4/IPv6 text).


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    required: bool = True


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    required: bool = False
    unique: str | None = None  # column whose values must be unique (a structural error if not)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


KEYS = TableSpec("keys", (
    Column("key_id", "id"),
    Column("account_id", "id"),
    Column("created_at", "ts"),
    Column("daily_token_limit", "int", required=False),
), required=True, unique="key_id")

ACCOUNTS = TableSpec("accounts", (
    Column("account_id", "id"),
    Column("created_at", "ts", required=False),
    Column("email_domain", "str", required=False),
    Column("org_id", "str", required=False),
), unique="account_id")

PAYMENTS = TableSpec("payments", (
    Column("account_id", "id"),
    Column("payment_fingerprint", "id"),
))

REQUESTS = TableSpec("requests", (
    Column("key_id", "id"),
    Column("ts", "ts"),
    Column("ip", "ip"),
    Column("device_fingerprint", "str", required=False),
    Column("user_agent", "str", required=False),
    Column("prompt", "str", required=False),
    Column("prompt_tokens", "int", required=False),
    Column("completion_tokens", "int", required=False),
))

TABLES: dict[str, TableSpec] = {t.name: t for t in (KEYS, ACCOUNTS, PAYMENTS, REQUESTS)}

# File endings io.py reads, in the order it looks for them.
FORMATS = (".parquet", ".csv.gz", ".csv", ".jsonl")

# Quarantine reasons (the `reason` column of quarantine/<table>.parquet).
REASON_EMPTY_ID = "empty_id"
REASON_BAD_TIMESTAMP = "bad_timestamp"
REASON_BAD_IP = "malformed_ip"
REASON_UNKNOWN_KEY = "unknown_key_id"
REASON_NEGATIVE = "negative_value"
REASON_BAD_INT = "bad_integer"
REASON_UNKNOWN_ACCOUNT = "unknown_account_id"
REASON_DUPLICATE_ROW = "duplicate_row"
