"""The input contract of ../shared/SCHEMA.md as data: tables, columns, kinds, what is required.

io.py reads these specs to load, coerce and validate; nothing else hard-codes column lists.
"""
from __future__ import annotations

from dataclasses import dataclass

# Column kinds: "id" (non-empty string), "str" (optional string), "ts" (timestamp, UTC),
# "int" (non-negative integer, nullable), "ip" (IPv4/IPv6 text).

# Counts a request row may carry: no request (or batch row) holds 2**40 (1.1e12) tokens, and the
# bound keeps every per-key and per-cluster sum far inside int64.
MAX_TOKENS = 2**40
# Daily limits up to 2**53 are exact as floats (usage = tokens / limit).
MAX_LIMIT = 2**53
# Timestamps a log can hold: before the epoch or after 2200 is a broken clock or a unit mix-up
# (seconds read as milliseconds), not an API event.
MIN_TS = "1970-01-01T00:00:00Z"
MAX_TS = "2200-01-01T00:00:00Z"


@dataclass(frozen=True)
class Column:
    """One column of a table. `on_bad` says what a bad value of an optional column does: "null"
    clears that value (counted per reason in `Tables.nulled`) and keeps the row, "quarantine"
    moves the row to quarantine. Required columns always quarantine."""

    name: str
    kind: str
    required: bool = True
    max: int | None = None          # largest valid value of an "int" column
    zero_is_null: bool = False      # "int": 0 means "not given" (a daily limit of 0 is no limit recorded)
    on_bad: str = "null"


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
    # a bad limit (negative, not an integer, beyond MAX_LIMIT) must not drop the key, its payments
    # and requests: the value is nulled and the job's default applies; 0 means no limit recorded
    Column("daily_token_limit", "int", required=False, max=MAX_LIMIT, zero_is_null=True, on_bad="null"),
), required=True, unique="key_id")

ACCOUNTS = TableSpec("accounts", (
    Column("account_id", "id"),
    Column("created_at", "ts", required=False, on_bad="null"),
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
    # a request row's count is the evidence of use: a wrong one is quarantined with its row, so
    # usage is never silently under-counted
    Column("prompt_tokens", "int", required=False, max=MAX_TOKENS, on_bad="quarantine"),
    Column("completion_tokens", "int", required=False, max=MAX_TOKENS, on_bad="quarantine"),
))

TABLES: dict[str, TableSpec] = {t.name: t for t in (KEYS, ACCOUNTS, PAYMENTS, REQUESTS)}

# File endings io.py reads (matched case-insensitively), in the order it looks for them. A table
# may also be a folder of parts (`requests/` or `requests.parquet/`, as Spark and most lakes write),
# whose parts may also end in ".json" (Spark's JSON Lines).
FORMATS = (".parquet", ".csv.gz", ".csv", ".jsonl")
PART_FORMATS = FORMATS + (".json",)

# Columns keyfarm adds to validated tables or to quarantine files: an input column of the same
# name is an extra column like any other (kept out of the way and ignored), never read as ours.
INTERNAL_COLUMNS = ("key", "account", "ip_version", "ip_hi", "ip_lo", "source_row", "reason")

# Quarantine reasons (the `reason` column of quarantine/<table>.parquet).
REASON_EMPTY_ID = "empty_id"
REASON_BAD_TIMESTAMP = "bad_timestamp"
REASON_BAD_IP = "malformed_ip"
REASON_UNKNOWN_KEY = "unknown_key_id"
REASON_NEGATIVE = "negative_value"
REASON_BAD_INT = "bad_integer"
REASON_UNKNOWN_ACCOUNT = "unknown_account_id"
REASON_DUPLICATE_ROW = "duplicate_row"
REASON_OUT_OF_RANGE = "out_of_range"
REASON_BAD_VALUE = "bad_value"        # a list, object or other non-scalar where a scalar belongs
REASON_ZERO_LIMIT = "zero_limit"      # a daily limit of 0: nulled, the job's default applies
