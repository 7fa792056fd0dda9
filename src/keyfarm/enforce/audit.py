"""The enforcement audit log: an append-only SQLite database of runs and of every action's fate.

Stage: enforcement. Each action gets an `intent` row before it is sent and a `done` or `failed`
row after (an `error` row when the sink gave up; the next run resends). Triggers abort any UPDATE
or DELETE, unique indexes keep one intent and one completion per (run, idempotency key), and WAL
with synchronous=FULL makes each committed row survive a killed process.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from keyfarm.enforce.policy import GuardRefused
from keyfarm.errors import KeyfarmInputError

LOG_COLUMNS = ("run_id", "time", "operator", "reason", "cluster_id", "account_id", "key_id", "score",
               "evidence_digest", "action", "idempotency_key", "status", "sink_response")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('apply', 'revert')),
    plan_id TEXT, reverts TEXT, source_run_id TEXT, operator TEXT NOT NULL, reason TEXT NOT NULL,
    started_at TEXT NOT NULL, n_actions INTEGER NOT NULL, plan_json TEXT);
CREATE TABLE IF NOT EXISTS attempts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL REFERENCES runs(run_id),
    time TEXT NOT NULL, operator TEXT NOT NULL, reason TEXT NOT NULL, pid INTEGER, sink TEXT);
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL REFERENCES runs(run_id),
    time TEXT NOT NULL, operator TEXT NOT NULL, reason TEXT NOT NULL,
    cluster_id INTEGER, account_id TEXT, key_id TEXT, score REAL, evidence_digest TEXT,
    action TEXT NOT NULL, idempotency_key TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('intent', 'done', 'failed', 'error')), sink_response TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS log_one_intent ON log(run_id, idempotency_key) WHERE status = 'intent';
CREATE UNIQUE INDEX IF NOT EXISTS log_one_completion ON log(run_id, idempotency_key)
    WHERE status IN ('done', 'failed');
CREATE INDEX IF NOT EXISTS log_run ON log(run_id, status);
"""
_TRIGGERS = "".join(
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, 'audit {table} is append-only'); END;\n"
    for table in ("runs", "attempts", "log") for op in ("UPDATE", "DELETE"))


BUSY_SECONDS = 5.0   # how long a write waits for another process's transaction before giving up


def _db_errors(method):
    """SQLite failures of an audit operation as one clear KeyfarmInputError (exit 2): a database
    another process holds locked, a damaged file, a disk that refuses the write."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise _audit_error(self.path, exc) from None
    return wrapper


def _audit_error(path, exc) -> KeyfarmInputError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        why = f"is locked by another process (waited {BUSY_SECONDS:g} s); retry when it is done"
    elif "malformed" in text or "not a database" in text or "corrupt" in text:
        why = f"is damaged ({text}); restore it from a backup (the audit log is the record of what was sent)"
    else:
        why = f"cannot be used: {text}"
    return KeyfarmInputError(f"audit: {path} {why}", table="audit")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class Audit:
    """An audit database (created on first use). Use as a context manager or call close()."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise KeyfarmInputError(f"audit: {self.path} is a folder; give the path of a database file",
                                    table="audit")
        self.db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_SECONDS)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA + _TRIGGERS)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise _audit_error(self.path, exc) from None
        except OSError as exc:
            raise KeyfarmInputError(f"audit: cannot create {self.path}: {exc.strerror or exc}",
                                    table="audit") from None
        self.db.row_factory = sqlite3.Row

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    @contextlib.contextmanager
    def exclusive(self):
        """Hold the database's run lock (a flock on `<db>.lock`, released by the OS if the process
        dies): one apply or revert at a time per audit database, so no action is sent by two."""
        try:
            fh = open(f"{self.path}.lock", "a")
        except OSError as exc:
            raise KeyfarmInputError(f"audit: cannot open the lock file {self.path}.lock: {exc.strerror or exc}",
                                    table="audit") from None
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise GuardRefused(f"another apply or revert is using {self.path}; wait for it") from None
            try:
                self.check()
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @_db_errors
    def check(self) -> None:
        """Fail before anything is sent when the database is damaged (SQLite's quick_check)."""
        rows = [r[0] for r in self.db.execute("PRAGMA quick_check")]
        if rows != ["ok"]:
            raise sqlite3.DatabaseError(f"database disk image is malformed: {'; '.join(rows[:3])}")

    # -- runs
    @_db_errors
    def begin_run(self, run_id: str, *, kind: str, operator: str, reason: str, n_actions: int,
                  plan_id: str | None = None, reverts: str | None = None, source_run_id: str | None = None,
                  plan_json: str | None = None, sink: str | None = None) -> bool:
        """Record the run (first time only) and this attempt; True when the run is new."""
        with self._tx():
            new = self.db.execute(
                "INSERT OR IGNORE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)",
                (run_id, kind, plan_id, reverts, source_run_id, operator, reason, _now(), n_actions,
                 plan_json)).rowcount == 1
            self.db.execute("INSERT INTO attempts (run_id, time, operator, reason, pid, sink) VALUES (?,?,?,?,?,?)",
                            (run_id, _now(), operator, reason, os.getpid(), sink))
        return new

    @_db_errors
    def run(self, run_id: str) -> dict | None:
        row = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return dict(row) if row else None

    @_db_errors
    def runs(self) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM runs ORDER BY started_at, run_id")]

    @_db_errors
    def reverted_by(self, run_id: str) -> str | None:
        row = self.db.execute("SELECT run_id FROM runs WHERE reverts = ?", (run_id,)).fetchone()
        return row[0] if row else None

    # -- log
    @_db_errors
    def state(self, run_id: str) -> dict[str, str]:
        """idempotency_key -> 'done' | 'failed' | 'intent' (the furthest status reached)."""
        out: dict[str, str] = {}
        for key, status in self.db.execute(
                "SELECT idempotency_key, status FROM log WHERE run_id = ? AND status != 'error'", (run_id,)):
            if status != "intent" or key not in out:
                out[key] = status
        return out

    @_db_errors
    def record(self, run_id: str, rows: list[dict], *, operator: str, reason: str) -> None:
        """Append log rows (each an action dict plus `status` and `sink_response`) in one transaction."""
        if not rows:
            return
        now = _now()
        with self._tx():
            self.db.executemany(
                f"INSERT INTO log ({', '.join(LOG_COLUMNS)}) VALUES ({', '.join('?' * len(LOG_COLUMNS))})",
                [(run_id, now, operator, reason, r.get("cluster_id"), r.get("account_id"), r.get("key_id"),
                  r.get("score"), r.get("evidence_digest"), r["action"], r["idempotency_key"], r["status"],
                  r.get("sink_response")) for r in rows])

    @_db_errors
    def log(self, run_id: str | None = None, status: str | None = None) -> list[dict]:
        """Log rows in order, optionally of one run and/or one status."""
        sql, args = "SELECT * FROM log WHERE 1=1", []
        if run_id is not None:
            sql, args = sql + " AND run_id = ?", args + [run_id]
        if status is not None:
            sql, args = sql + " AND status = ?", args + [status]
        return [dict(r) for r in self.db.execute(sql + " ORDER BY seq", args)]

    def _tx(self):
        return _Transaction(self.db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on error): one writer, all-or-nothing."""

    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *exc):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
