"""The enforce command: dry run, exit codes, apply/revert, and a run killed mid-apply then resumed."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys

from click.testing import CliRunner

from keyfarm.enforce.command import enforce_command
from keyfarm.enforce.testing import Receiver, write_out_dir

WHO = ["--operator", "alice", "--reason", "TICKET-1"]


def _world(path, n_farms=3, accounts=3):
    specs = [{"cluster_id": c, "accounts": [(f"c{c}acc{i}", [f"c{c}acc{i}k{j}" for j in range(2)])
                                            for i in range(accounts)]} for c in range(n_farms)]
    return write_out_dir(path, specs, singletons=2)


def _invoke(*args):
    return CliRunner().invoke(enforce_command, [str(a) for a in args])


def test_dry_run_prints_the_plan_writes_json_and_changes_nothing(tmp_path):
    out = _world(tmp_path / "out")
    result = _invoke(out, "--as-of", "2025-06-01")
    assert result.exit_code == 0, result.output
    assert "ban keys + suspend accounts" in result.output and "Dry run" in result.output
    plans = list((out / "enforcement").glob("plan-p-*.json"))
    assert len(plans) == 1 and json.loads(plans[0].read_text())["summary"]["accounts"] == 9
    assert not (out / "enforcement" / "audit.sqlite").exists()
    as_json = _invoke(out, "--as-of", "2025-06-01", "--json", "--plan-out", tmp_path / "p.json")
    assert json.loads(as_json.stdout)["plan_id"] == plans[0].name[5:-5]


def test_guard_refusal_exits_1_and_usage_errors_exit_2(tmp_path):
    out = _world(tmp_path / "out", accounts=4)
    assert _invoke(out, "--max-accounts", "3").exit_code == 1
    missing = _invoke(out, "--apply", "--sink", f"jsonl:{tmp_path / 's.jsonl'}")
    assert missing.exit_code == 2 and "--operator" in missing.output
    bad = _invoke(tmp_path / "nowhere")
    assert bad.exit_code == 2 and "not a directory" in bad.output and "Traceback" not in bad.output
    over = _invoke(out, "--max-total-accounts", "5", "--apply", "--sink", f"jsonl:{tmp_path / 's.jsonl'}", *WHO)
    assert over.exit_code == 1 and "max_total_accounts" in over.output
    assert not (tmp_path / "s.jsonl").exists()


def test_apply_then_revert_through_the_command(tmp_path):
    out = _world(tmp_path / "out")
    with Receiver() as rx:
        applied = _invoke(out, "--apply", "--sink", rx.url, "--timeout", "1", "--json", *WHO)
        assert applied.exit_code == 0, applied.output
        run_id = json.loads(applied.stdout)["run_id"]
        assert len(rx.state["banned"]) == 18 and len(rx.state["suspended"]) == 9
        undo = _invoke("--revert", run_id, "--audit", out / "enforcement" / "audit.sqlite", "--sink", rx.url,
                       "--operator", "bob", "--reason", "false positive")
        assert undo.exit_code == 0, undo.output
        assert rx.state == {"banned": set(), "suspended": set(), "revoked": set()}


def test_apply_of_a_saved_plan_sends_exactly_that_plan(tmp_path):
    out = _world(tmp_path / "out")
    _invoke(out, "--plan-out", tmp_path / "plan.json")
    sink = tmp_path / "sink.jsonl"
    result = _invoke("--plan", tmp_path / "plan.json", "--apply", "--sink", f"jsonl:{sink}",
                     "--audit", tmp_path / "a.db", *WHO)
    assert result.exit_code == 0, result.output
    plan = json.loads((tmp_path / "plan.json").read_text())
    sent = [json.loads(line)["idempotency_key"] for line in sink.read_text().splitlines()]
    assert sent == [a["idempotency_key"] for a in plan["actions"]]


def test_run_killed_mid_apply_and_rerun_loses_and_duplicates_nothing(tmp_path):
    out = _world(tmp_path / "out", n_farms=4)
    audit = tmp_path / "audit.sqlite"
    cmd = [sys.executable, "-m", "keyfarm.enforce", str(out), "--apply", "--sink", None, "--audit", str(audit),
           "--batch-size", "1", "--timeout", "2", *WHO]
    # every request is applied, then answered 50 ms later: the kill lands between landing and the reply
    with Receiver(stall_rate=1.0, stall=0.05) as rx:
        cmd[cmd.index(None)] = rx.url
        rx.event_after = 10
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert rx.landed_event.wait(60), proc.communicate(timeout=5)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        db = sqlite3.connect(audit)
        counts = dict(db.execute("SELECT status, count(*) FROM log GROUP BY status").fetchall())
        db.close()
        total = 36
        assert 10 <= len(rx.applied) < total and counts["intent"] > counts.get("done", 0)

        rx.stall_rate = 0.0
        rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert len(rx.applied) == total and rx.repeated_effects() == [] and len(rx.landed) == total
        assert rx.faults["409"] >= 1   # the unconfirmed action was resent with its key and deduplicated
    db = sqlite3.connect(audit)
    rows = db.execute("SELECT idempotency_key, count(*) FROM log WHERE status = 'done' GROUP BY 1").fetchall()
    intents = db.execute("SELECT count(*) FROM log WHERE status = 'intent'").fetchone()[0]
    assert len(rows) == total and {n for _, n in rows} == {1} and intents == total
    assert sorted(k for k, _ in rows) == sorted(rx.applied)
    assert db.execute("SELECT count(*) FROM attempts").fetchone()[0] == 2


def test_apply_prints_the_plan_on_stdout_and_a_terminal_must_confirm(tmp_path, monkeypatch):
    from keyfarm.enforce import command

    out = _world(tmp_path / "out")
    sink = tmp_path / "s.jsonl"
    monkeypatch.setattr(command, "_on_terminal", lambda: True)
    declined = CliRunner().invoke(enforce_command, [str(out), "--apply", "--sink", f"jsonl:{sink}", *WHO], input="n\n")
    assert declined.exit_code == 1 and "nothing was sent" in declined.stderr
    assert "ban keys + suspend accounts" in declined.stdout   # the plan, on stdout, before the question
    assert not sink.exists()
    confirmed = CliRunner().invoke(enforce_command, [str(out), "--apply", "--sink", f"jsonl:{sink}", *WHO], input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert len(sink.read_text().splitlines()) == 27
    # --yes: not asked (no input given; a question would abort)
    again = CliRunner().invoke(enforce_command, [str(out), "--apply", "--sink", f"jsonl:{sink}", "--yes", *WHO])
    assert again.exit_code == 0, again.output
    assert "0 sent now" in again.stdout


def test_refusal_names_the_force_option_and_quiet_keeps_stderr_empty(tmp_path):
    out = _world(tmp_path / "out", accounts=4)
    refused = CliRunner().invoke(enforce_command, [str(out), "--max-accounts", "3"])
    assert refused.exit_code == 1 and "--force overrides" in refused.stdout
    quiet = CliRunner().invoke(enforce_command, [str(out), "--quiet", "--plan-out", str(tmp_path / "p.json")])
    assert quiet.exit_code == 0 and quiet.stderr == "" and "ban keys" in quiet.stdout


def test_default_guards_pass_a_day_of_a_generated_world(tmp_path):
    """The defaults let the README's tour act: clusters of a few hundred accounts, ~1,700 in all."""
    from keyfarm.enforce import Policy

    assert Policy().max_accounts >= 300 and Policy().max_total_accounts >= 2000
    out = _world(tmp_path / "out", n_farms=10, accounts=250)   # 2,500 accounts
    assert _invoke(out, "--plan-out", tmp_path / "p.json").exit_code == 0
