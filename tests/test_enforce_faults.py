"""Enforcement against failing sinks and hostile input: nothing recorded as done that the receiver
did not confirm, no unbounded wait, no traceback, no raw control character on the terminal (issue 20)."""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from keyfarm.enforce import Audit, HttpSink, Plan, Policy, apply, plan, renew, revert
from keyfarm.enforce.command import enforce_command
from keyfarm.enforce.testing import Receiver, write_out_dir
from keyfarm.errors import KeyfarmConfigError, KeyfarmInputError

TODAY = date(2025, 6, 1)
WHO = {"operator": "alice", "reason": "TICKET-1"}
CLI_WHO = ["--operator", "alice", "--reason", "TICKET-1"]
ACTIONS = [{"idempotency_key": f"k{i}", "action": "ban_key", "key_id": f"key{i}"} for i in range(3)]


class Scripted:
    """An HTTP server on 127.0.0.1 answering each POST with `script(handler, doc, n)` (n counts from
    0); records every request's method, path and body."""

    def __init__(self, script):
        self.seen = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                n = len(outer.seen)
                outer.seen.append((self.command, self.path, body))
                try:
                    script(self, json.loads(body) if body else None, n)
                except OSError:   # the client hung up: that is what some scripts test
                    pass

            do_POST = do_GET = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/actions"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _reply(h, code, body=b"", headers=None, length=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    h.send_response(code)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(data) if length is None else length))
    h.end_headers()
    h.wfile.write(data)
    h.wfile.flush()


def _ok_all(h, doc, n):
    _reply(h, 200, {"results": [{"idempotency_key": a["idempotency_key"], "status": 200} for a in doc["actions"]]})


def _sink(url, **kw):
    return HttpSink(url, **{"timeout": 0.5, "retries": 2, "backoff": 0.001, "max_backoff": 0.01,
                            "sleep": lambda s: None, **kw})


# ---------------------------------------------------------------- false success

def test_a_redirect_is_not_followed_and_confirms_nothing():
    with Scripted(lambda h, doc, n: _reply(h, 302, headers={"Location": "/elsewhere"})) as rx:
        results = _sink(rx.url).send(ACTIONS)
    assert [r.status for r in results] == ["error"] * 3
    assert "302 redirect" in results[0].response
    assert [m for m, _, _ in rx.seen] == ["POST"]   # neither followed as a GET nor resent


def test_a_redirect_is_followed_as_a_post_with_its_body_when_asked():
    def script(h, doc, n):
        if h.path == "/actions":
            return _reply(h, 307 if n == 0 else 302, headers={"Location": "/v2/actions"})
        _ok_all(h, doc, n)
    with Scripted(script) as rx:
        results = _sink(rx.url, follow_redirects=True).send(ACTIONS)
    assert [r.status for r in results] == ["done"] * 3
    assert [(m, p) for m, p, _ in rx.seen] == [("POST", "/actions"), ("POST", "/v2/actions")]
    assert json.loads(rx.seen[1][2])["actions"][0]["idempotency_key"] == "k0"


def test_each_result_item_counts_only_for_its_own_action():
    items = [{"idempotency_key": "k0", "status": 200}, {"idempotency_key": "k1", "status": 422, "detail": "no"},
             {"idempotency_key": "k2"}, "garbage", {"idempotency_key": "other", "status": 200}]
    with Scripted(lambda h, doc, n: _reply(h, 200, {"results": items})) as rx:
        results = _sink(rx.url).send(ACTIONS)
    assert [r.status for r in results] == ["done", "failed", "error"]
    assert "422" in results[1].response and "no well-formed result" in results[2].response
    resent = [a["idempotency_key"] for a in json.loads(rx.seen[1][2])["actions"]]
    assert resent == ["k2"]   # only the unconfirmed action is resent


@pytest.mark.parametrize("body", [b"<html>OK</html>", b'{"results": "all good"}', b"[1, 2]",
                                  b'{"results": [{"idempotency_key": "k0", "status": true}]}'])
def test_a_2xx_whose_body_confirms_nothing_leaves_the_actions_pending(body):
    with Scripted(lambda h, doc, n: _reply(h, 200, body)) as rx:
        results = _sink(rx.url).send(ACTIONS[:1])
    assert results[0].status == "error" and len(rx.seen) == 3


def test_conflicting_results_for_one_action_leave_it_pending():
    items = [{"idempotency_key": "k0", "status": 200}, {"idempotency_key": "k0", "status": 500}]
    with Scripted(lambda h, doc, n: _reply(h, 200, {"results": items})) as rx:
        assert _sink(rx.url, retries=0).send(ACTIONS[:1])[0].status == "error"


# ---------------------------------------------------------------- broken replies, unbounded waits

@pytest.mark.parametrize("code", [500, 422, 200])
def test_a_reply_cut_short_is_retried_not_a_traceback(code):
    def script(h, doc, n):
        if n == 0:
            h.send_response(code)
            h.send_header("Content-Length", "100")
            h.end_headers()
            h.wfile.write(b'{"resu')
            h.wfile.flush()
            h.close_connection = True
            return
        _ok_all(h, doc, n)
    with Scripted(script) as rx:
        results = _sink(rx.url).send(ACTIONS)
    assert [r.status for r in results] == ["done"] * 3 and len(rx.seen) == 2


def test_an_error_reply_without_a_body_is_retried():
    script = lambda h, doc, n: _reply(h, 503, b"", length=0) if n == 0 else _ok_all(h, doc, n)  # noqa: E731
    with Scripted(script) as rx:
        assert [r.status for r in _sink(rx.url).send(ACTIONS)] == ["done"] * 3


def test_a_trickling_receiver_cannot_hold_a_request_past_its_deadline():
    def script(h, doc, n):
        h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(100):   # 10 s of headers, a byte at a time
            h.wfile.write(b"X")
            h.wfile.flush()
            time.sleep(0.1)
    with Scripted(script) as rx:
        start = time.monotonic()
        results = _sink(rx.url, timeout=0.4, retries=1).send(ACTIONS)
        elapsed = time.monotonic() - start
    assert [r.status for r in results] == ["error"] * 3 and "deadline" in results[0].response
    assert elapsed < 1.5   # two attempts of 0.4 s, not 10 s each


def test_a_huge_retry_after_is_capped():
    waits = []
    script = lambda h, doc, n: _reply(h, 503, b"busy", headers={"Retry-After": "100000"}) \
        if n == 0 else _ok_all(h, doc, n)  # noqa: E731
    with Scripted(script) as rx:
        results = _sink(rx.url, max_backoff=0.05, sleep=waits.append).send(ACTIONS)
    assert [r.status for r in results] == ["done"] * 3 and waits == [0.05]


def test_a_huge_reply_body_is_read_only_up_to_the_bound():
    with Scripted(lambda h, doc, n: _reply(h, 400, b"x" * 100_000)) as rx:
        results = _sink(rx.url, max_body=1000).send(ACTIONS[:1])
    assert results[0].status == "failed" and len(results[0].response) <= 500


# ---------------------------------------------------------------- revert, audit, sinks, plan files

def _world(path, accounts=3, ids=None):
    ids = ids or [(f"acc{i}", [f"acc{i}k{j}" for j in range(2)]) for i in range(accounts)]
    return write_out_dir(path, [{"cluster_id": 0, "accounts": ids}], singletons=1)


def _invoke(*args):
    return CliRunner().invoke(enforce_command, [str(a) for a in args])


def test_after_a_revert_the_same_decisions_apply_again_under_a_fresh_plan_id(tmp_path):
    out = _world(tmp_path / "out")
    with Receiver() as rx:
        first = _invoke(out, "--apply", "--sink", rx.url, "--json", "--as-of", TODAY, *CLI_WHO)
        run_id = json.loads(first.stdout)["run_id"]
        _invoke("--revert", run_id, "--audit", out / "enforcement" / "audit.sqlite", "--sink", rx.url, *CLI_WHO)
        assert rx.state["banned"] == set()
        again = _invoke(out, "--apply", "--sink", rx.url, "--json", "--as-of", TODAY, *CLI_WHO)
        assert again.exit_code == 0, again.output
        assert json.loads(again.stdout)["run_id"] != run_id
        assert f"plan {run_id} was reverted" in again.stderr
        assert len(rx.state["banned"]) == 6 and len(rx.state["suspended"]) == 3   # applied again, for real


def test_renew_gives_fresh_idempotency_keys_and_plan_ids_stay_stable_otherwise(tmp_path):
    p = plan(_world(tmp_path / "out"), Policy(as_of=TODAY))
    with Audit(tmp_path / "a.db") as audit:
        assert renew(p, audit) is p
        apply(p, _sink_jsonl(tmp_path), audit, **WHO)
        revert(p.plan_id, _sink_jsonl(tmp_path), audit, **WHO)
        fresh = renew(p, audit)
    assert fresh.plan_id != p.plan_id and fresh.supersedes == [p.plan_id]
    assert not {a["idempotency_key"] for a in fresh.actions} & {a["idempotency_key"] for a in p.actions}
    assert Plan.from_dict(json.loads(fresh.to_json())).plan_id == fresh.plan_id


def _sink_jsonl(tmp_path):
    from keyfarm.enforce import JsonlSink
    return JsonlSink(tmp_path / "sink.jsonl")


def test_an_audit_database_locked_by_another_process_is_a_clear_error(tmp_path, monkeypatch):
    import keyfarm.enforce.audit as audit_module
    monkeypatch.setattr(audit_module, "BUSY_SECONDS", 0.2)
    p = plan(_world(tmp_path / "out"), Policy(as_of=TODAY))
    Audit(tmp_path / "a.db").close()
    holder = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with Audit(tmp_path / "a.db") as audit, pytest.raises(KeyfarmInputError, match="locked by another process"):
            apply(p, _sink_jsonl(tmp_path), audit, **WHO)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not (tmp_path / "sink.jsonl").read_text()   # nothing was sent


def test_a_damaged_audit_database_is_a_clear_error_before_anything_is_sent(tmp_path):
    p = plan(_world(tmp_path / "out", accounts=40), Policy(as_of=TODAY))
    with Audit(tmp_path / "a.db") as audit:
        apply(p, _sink_jsonl(tmp_path), audit, **WHO)
    raw = bytearray((tmp_path / "a.db").read_bytes())
    raw[4096 * 2:4096 * 4] = b"\xff" * 8192   # pages 3-4: the log's rows and indexes
    (tmp_path / "a.db").write_bytes(bytes(raw))
    p2 = plan(_world(tmp_path / "out2", accounts=2), Policy(as_of=TODAY))
    before = (tmp_path / "sink.jsonl").read_text()
    with pytest.raises(KeyfarmInputError, match="audit: .*damaged"):
        with Audit(tmp_path / "a.db") as audit:
            apply(p2, _sink_jsonl(tmp_path), audit, **WHO)
    assert (tmp_path / "sink.jsonl").read_text() == before


def test_a_jsonl_sink_path_that_is_a_folder_is_a_one_line_error(tmp_path):
    out = _world(tmp_path / "out")
    (tmp_path / "sinkdir").mkdir()
    result = _invoke(out, "--apply", "--sink", f"jsonl:{tmp_path / 'sinkdir'}", *CLI_WHO)
    assert result.exit_code == 2 and "is a folder" in result.output and result.exception.__class__ is SystemExit
    from keyfarm.enforce import JsonlSink
    with pytest.raises(KeyfarmConfigError, match="is a folder"):
        JsonlSink(tmp_path / "sinkdir")


@pytest.mark.parametrize("edit", [
    lambda d: d.update(actions={"a": 1}),
    lambda d: d["actions"][0].update(score="high"),
    lambda d: d["actions"][0].update(action="delete_everything"),
    lambda d: d["actions"][0].update(account_id=7),
    lambda d: d.update(refusals=[{"scope": 1}]),
    lambda d: d.update(policy="strict"),
    lambda d: d["clusters"].append("x"),
    lambda d: d["actions"][0].update(idempotency_key="0" * 32),
    lambda d: d.update(supersedes="p-1"),
])
def test_a_plan_file_with_wrong_types_is_a_one_line_error(tmp_path, edit):
    out = _world(tmp_path / "out")
    _invoke(out, "--plan-out", tmp_path / "plan.json", "--as-of", TODAY)
    doc = json.loads((tmp_path / "plan.json").read_text())
    edit(doc)
    (tmp_path / "plan.json").write_text(json.dumps(doc))
    result = _invoke("--plan", tmp_path / "plan.json", "--apply", "--sink", f"jsonl:{tmp_path / 's.jsonl'}",
                     "--audit", tmp_path / "a.db", *CLI_WHO)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: plan:") and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "s.jsonl").exists()


# ---------------------------------------------------------------- the terminal

HOSTILE = "evil\x1b[2K\r  account ok: nothing\x1b]0;pwned\x07\u202etxt.exe\n  forged line\x9b31m"


def test_control_characters_in_ids_are_escaped_on_the_terminal(tmp_path):
    out = _world(tmp_path / "out", ids=[(HOSTILE, [HOSTILE + "-k"]), ("acc1", ["acc1k0"]), ("acc2", ["acc2k0"])])
    for args in ((), ("--json",)):
        result = _invoke(out, "--as-of", TODAY, *args)
        assert result.exit_code == 0, result.output
        text = result.output
        for raw in ("\x1b", "\x07", "\u202e", "\x9b", "\r"):
            assert raw not in text
        assert "forged line" not in text.splitlines()[-1] and not any(
            line.startswith("  forged line") for line in text.splitlines())
    assert "evil\\x1b[2K\\x0d" in _invoke(out, "--as-of", TODAY).output
    with Receiver(reject=("ban_key",)) as rx:
        applied = _invoke(out, "--apply", "--sink", rx.url, "--as-of", TODAY, *CLI_WHO)
    assert "\x1b" not in applied.output and "\\x1b" in applied.output


def test_cli_errors_escape_values_from_input(tmp_path):
    from keyfarm.cli import main
    (tmp_path / "keys.csv").write_text(f"key_id,account_id,created_at\n\"{HOSTILE}\",a,2026-11-01\n"
                                       f"\"{HOSTILE}\",a,2026-11-01\n")
    result = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert result.exit_code == 2 and "\x1b" not in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("text,message", [("[[allowlist]]\nkind = 'account_id'\nvalue = 'a'\nreason = 'r'\n",
                                           "unknown key 'allowlist'"),
                                          ("allow = [1]\n", "array of tables")])
def test_a_misspelt_allowlist_is_an_error_not_an_empty_allowlist(tmp_path, text, message):
    from keyfarm.enforce import load_allowlist
    (tmp_path / "allow.toml").write_text(text)
    with pytest.raises(KeyfarmInputError, match=message):
        load_allowlist(tmp_path / "allow.toml")


def test_an_allowlist_that_is_not_utf8_is_a_clear_error(tmp_path):
    from keyfarm.enforce import load_allowlist
    (tmp_path / "allow.csv").write_bytes(b"\xff\xfekind,value,reason\n")
    with pytest.raises(KeyfarmInputError, match="cannot read"):
        load_allowlist(tmp_path / "allow.csv")


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/x", "http:///x", "http://[::1/x"])
def test_a_sink_url_that_cannot_be_parsed_is_a_config_error(url):
    with pytest.raises(KeyfarmConfigError, match="sink URL"):
        HttpSink(url)
