"""Allowlists for enforcement: accounts, organisations and email domains that are never acted on.

Stage: enforcement guard. A file (CSV or TOML, see docs/enforcement.md) lists entries with a kind
(`account_id`, `org_id`, `email_domain`), a value, a mandatory reason and an optional expiry date;
an entry is honoured through its expiry date (inclusive) and reported, not honoured, after it.
"""
from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm.errors import KeyfarmInputError

KINDS = ("account_id", "org_id", "email_domain")


@dataclass(frozen=True)
class AllowEntry:
    """One allowlist entry; `expires` None means it never expires."""

    kind: str
    value: str
    reason: str
    expires: date | None = None

    def expired(self, as_of: date) -> bool:
        return self.expires is not None and as_of > self.expires

    def label(self) -> str:
        """Short text naming the entry, e.g. `org_id=acme (until 2025-12-31)`."""
        until = f" (until {self.expires.isoformat()})" if self.expires else ""
        return f"{self.kind}={self.value}{until}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "value": self.value, "reason": self.reason,
                "expires": self.expires.isoformat() if self.expires else None}


def load_allowlist(path: str | Path) -> tuple[AllowEntry, ...]:
    """Read an allowlist from a `.csv` (columns kind,value,reason,expires) or `.toml` file
    (`[[allow]]` tables with the same keys); raise KeyfarmInputError naming the bad row."""
    path = Path(path)
    if not path.is_file():
        raise KeyfarmInputError(f"allowlist: {path} not found", table="allowlist")
    try:
        rows = _toml_rows(path) if path.suffix.lower() == ".toml" else _csv_rows(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise KeyfarmInputError(f"allowlist: cannot read {path}: {exc}", table="allowlist") from None
    entries = [_entry(row, i + 1, path) for i, row in enumerate(rows)]
    return tuple(sorted(set(entries), key=lambda e: (e.kind, e.value, e.expires or date.max, e.reason)))


def _toml_rows(path: Path) -> list:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise KeyfarmInputError(f"allowlist: {path} is not valid TOML: {exc}", table="allowlist") from None
    other = sorted(set(doc) - {"allow"})
    if other:   # a misspelt [[allow]] must not leave every account unprotected
        raise KeyfarmInputError(f"allowlist: {path}: unknown key {other[0]!r} (entries are [[allow]] tables)",
                                table="allowlist")
    rows = doc.get("allow", [])
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise KeyfarmInputError(f"allowlist: {path}: 'allow' must be an array of tables ([[allow]])",
                                table="allowlist")
    return rows


def _csv_rows(path: Path) -> list:
    if path.suffix.lower() != ".csv":
        raise KeyfarmInputError(f"allowlist: {path} must end in .csv or .toml", table="allowlist")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("kind", "value", "reason") if c not in (reader.fieldnames or [])]
        if missing:
            raise KeyfarmInputError(f"allowlist: column {missing[0]!r} missing in {path}",
                                    table="allowlist", column=missing[0])
        return list(reader)


def _entry(row: dict, number: int, path: Path) -> AllowEntry:
    def bad(column: str, why: str):
        return KeyfarmInputError(f"allowlist: entry {number} in {path}: {column} {why}",
                                 table="allowlist", column=column, row=number)

    kind = str(row.get("kind") or "").strip()
    if kind not in KINDS:
        raise bad("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    value = str(row.get("value") or "").strip()
    if not value:
        raise bad("value", "is empty")
    reason = str(row.get("reason") or "").strip()
    if not reason:
        raise bad("reason", "is empty (every entry needs a reason)")
    expires = row.get("expires")
    if isinstance(expires, datetime):
        expires = expires.date()
    elif isinstance(expires, str):
        expires = expires.strip()
        try:
            expires = date.fromisoformat(expires) if expires else None
        except ValueError:
            raise bad("expires", f"must be an ISO date (YYYY-MM-DD), got {expires!r}") from None
    elif expires is not None and not isinstance(expires, date):
        raise bad("expires", f"must be a date, got {expires!r}")
    if kind == "email_domain":
        value = value.lower()
    return AllowEntry(kind, value, reason, expires)


def match_accounts(accounts: pd.DataFrame, entries, as_of: date) -> tuple[dict, list[dict]]:
    """Which accounts the live entries protect, and which accounts expired entries would have.

    accounts: one row per account with `account_id` and, when present, `org_id`, `email_domain`.
    Returns (a dict account_id -> the first live AllowEntry that matches, in entry order) and a
    list of {entry, accounts} for expired entries that match something.
    Entries of a kind whose column is absent raise, because an allowlist must never fail open.
    """
    protected: dict[str, AllowEntry] = {}
    expired: list[dict] = []
    for entry in entries:
        if entry.kind not in accounts.columns:
            raise KeyfarmInputError(
                f"members: column {entry.kind!r} missing, so allowlist entry {entry.label()} cannot be "
                "checked (refusing rather than ignoring it)", table="members", column=entry.kind)
        column = accounts[entry.kind].astype("string")
        if entry.kind == "email_domain":
            column = column.str.lower()
        hit = (column == entry.value).fillna(False).to_numpy(bool)
        ids = np.sort(accounts["account_id"].to_numpy(object)[hit]).tolist()
        if not ids:
            continue
        if entry.expired(as_of):
            expired.append({"entry": entry.to_dict(), "accounts": ids})
            continue
        for account_id in ids:
            protected.setdefault(account_id, entry)
    return protected, expired
