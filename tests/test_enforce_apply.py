"""Applying plans through sinks: exactly-once delivery, the append-only audit log, and revert."""
from __future__ import annotations

import json
import sqlite3
from datetime import date

import pytest

from keyfarm.enforce import (AllowEntry, Audit, GuardRefused, HttpSink, JsonlSink, Policy, apply, plan,
                             revert)
from keyfarm.enforce.testing import Receiver, write_out_dir

TODAY = date(2025, 6, 1)
WHO = {"operator": "alice", "reason": "TICKET-1 farms"}


def _world(path, n_farms=4, accounts=3, **kw):
    specs = [{"cluster_id": c, "accounts": [(f"c{c}acc{i}", [f"c{c}acc{i}k{j}" for j in range(2)])
                                            for i in range(accounts)]} for c in range(n_farms)]
    return write_out_dir(path, specs, singletons=2, **kw)


def _fast_sink(url, **kw):
    options = {"batch_size": 3, "timeout": 0.2, "retries": 15, "backoff": 0.005, "max_backoff": 0.05, "seed": 1}
    return HttpSink(url, **{**options, **kw})


def test_every_action_lands_exactly_once_through_failures_and_timeouts(tmp_path):
    p = plan(_world(tmp_path / "out"), Policy(as_of=TODAY))
    with Receiver(fail_rate=0.3, stall_rate=0.2, stall=0.3, seed=5) as rx, Audit(tmp_path / "a.db") as audit:
        result = apply(p, _fast_sink(rx.url), audit, **WHO)
        assert result.ok and result.done == len(p.actions) == 36
        assert sorted(rx.applied) == sorted(a["idempotency_key"] for a in p.actions)
        assert rx.repeated_effects() == [] and len(rx.landed) == len(p.actions)
        assert max(rx.applied.values()) > 1   # some actions were delivered again after a timeout
        assert rx.faults["500"] > 0 and rx.faults["stall"] > 0 and rx.faults["409"] > 0  # the faults happened
        done = audit.log(p.plan_id, "done")
        assert sorted(r["idempotency_key"] for r in done) == sorted(rx.applied)


def test_rerunning_the_same_plan_sends_nothing(tmp_path):
    p = plan(_world(tmp_path / "out"), Policy(as_of=TODAY))
    with Receiver() as rx, Audit(tmp_path / "a.db") as audit:
        apply(p, _fast_sink(rx.url), audit, **WHO)
        requests = rx.requests
        again = apply(p, _fast_sink(rx.url), audit, **WHO)
        assert rx.requests == requests
        assert (again.sent, again.skipped, again.ok) == (0, len(p.actions), True)
        assert len(audit.log(p.plan_id, "done")) == len(p.actions)


def test_allowlisted_accounts_are_never_sent(tmp_path):
    out = _world(tmp_path / "out", org_id={"c0acc1": "acme"})
    policy = Policy(as_of=TODAY, allowlist=(AllowEntry("account_id", "c1acc0", "VIP"),
                                            AllowEntry("org_id", "acme", "contract")))
    with Receiver() as rx, Audit(tmp_path / "a.db") as audit:
        apply(plan(out, policy), _fast_sink(rx.url), audit, **WHO)
        touched = {a["account_id"] for a in rx.landed}
    assert touched and not touched & {"c1acc0", "c0acc1"}


def test_oversized_cluster_is_never_sent(tmp_path):
    out = _world(tmp_path / "out", accounts=4)
    p = plan(out, Policy(as_of=TODAY, max_accounts=3))
    with Receiver() as rx, Audit(tmp_path / "a.db") as audit:
        apply(p, _fast_sink(rx.url), audit, **WHO)
    assert rx.requests == 0 and not p.actions and len(p.refusals) == 4


def test_plan_over_budget_is_refused_before_anything_is_sent(tmp_path):
    p = plan(_world(tmp_path / "out"), Policy(as_of=TODAY, max_total_accounts=5))
    with Receiver() as rx, Audit(tmp_path / "a.db") as audit:
        with pytest.raises(GuardRefused, match="max_total_accounts"):
            apply(p, _fast_sink(rx.url), audit, **WHO)
    assert rx.requests == 0


def test_rejected_actions_are_recorded_as_failures_and_not_retried(tmp_path):
    p = plan(_world(tmp_path / "out", n_farms=1), Policy(as_of=TODAY))
    with Receiver(reject=("suspend_account",)) as rx, Audit(tmp_path / "a.db") as audit:
        result = apply(p, _fast_sink(rx.url), audit, **WHO)
        assert not result.ok and len(result.failed) == 3 and result.done == 6
        assert all("422" in f["sink_response"] for f in result.failed)
        requests = rx.requests
        apply(p, _fast_sink(rx.url), audit, **WHO)
        assert rx.requests == requests


def test_unreachable_sink_leaves_actions_pending_and_a_rerun_finishes(tmp_path):
    p = plan(_world(tmp_path / "out", n_farms=1), Policy(as_of=TODAY))
    with Audit(tmp_path / "a.db") as audit:
        with Receiver() as rx:
            url = rx.url
        stopped = apply(p, _fast_sink(url, retries=1), audit, **WHO)
        assert stopped.pending == len(p.actions) and not stopped.ok
        assert audit.log(p.plan_id, "error")
        with Receiver() as rx:
            done = apply(p, _fast_sink(rx.url), audit, **WHO)
        assert done.ok and len(rx.applied) == len(p.actions)


def test_revert_restores_and_blocks_reapplying(tmp_path):
    p = plan(_world(tmp_path / "out"), Policy(as_of=TODAY))
    with Receiver(fail_rate=0.2, seed=2) as rx, Audit(tmp_path / "a.db") as audit:
        apply(p, _fast_sink(rx.url), audit, **WHO)
        assert len(rx.state["banned"]) == 24 and len(rx.state["suspended"]) == 12
        undo = revert(p.plan_id, _fast_sink(rx.url), audit, operator="bob", reason="false positive")
        assert undo.ok and undo.run_id == f"revert-{p.plan_id}"
        assert rx.state == {"banned": set(), "suspended": set(), "revoked": set()}
        assert rx.repeated_effects() == [] and len(rx.landed) == 2 * len(p.actions)
        assert audit.run(undo.run_id)["reverts"] == p.plan_id
        with pytest.raises(GuardRefused, match="reverted"):
            apply(p, _fast_sink(rx.url), audit, **WHO)


def test_audit_log_is_append_only(tmp_path):
    p = plan(_world(tmp_path / "out", n_farms=1), Policy(as_of=TODAY))
    with Audit(tmp_path / "a.db") as audit:
        apply(p, JsonlSink(tmp_path / "sink.jsonl"), audit, **WHO)
    db = sqlite3.connect(tmp_path / "a.db")
    for sql in ("UPDATE log SET status = 'failed'", "DELETE FROM log", "DELETE FROM runs",
                "UPDATE runs SET operator = 'mallory'"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(sql)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    row = db.execute("SELECT operator, reason, evidence_digest, score FROM log WHERE status = 'done'").fetchone()
    assert row == ("alice", "TICKET-1 farms", p.actions[0]["evidence_digest"], p.actions[0]["score"])


def test_jsonl_sink_writes_each_action_once_and_repairs_a_torn_line(tmp_path):
    p = plan(_world(tmp_path / "out", n_farms=1), Policy(as_of=TODAY))
    path = tmp_path / "sink.jsonl"
    sink = JsonlSink(path)
    sink.send([{**a, "run_id": p.plan_id} for a in p.actions[:4]])
    sink.close()
    with path.open("ab") as fh:
        fh.write(b'{"idempotency_key": "half-writ')      # a crash mid-write
    with Audit(tmp_path / "a.db") as audit:
        result = apply(p, JsonlSink(path), audit, **WHO)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert result.ok
    assert sorted(x["idempotency_key"] for x in lines) == sorted(a["idempotency_key"] for a in p.actions)


def test_second_apply_on_the_same_audit_database_is_refused_while_one_runs(tmp_path):
    p = plan(_world(tmp_path / "out", n_farms=1), Policy(as_of=TODAY))
    with Audit(tmp_path / "a.db") as audit, Audit(tmp_path / "a.db") as other:
        with audit.exclusive():
            with pytest.raises(GuardRefused, match="another apply"):
                apply(p, JsonlSink(tmp_path / "sink.jsonl"), other, **WHO)
        assert apply(p, JsonlSink(tmp_path / "sink.jsonl"), other, **WHO).ok
