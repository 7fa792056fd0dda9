"""Sinks: where enforcement actions go (a JSONL file, or an HTTP endpoint that applies them).

Stage: enforcement. A sink takes a batch of actions (dicts carrying an `idempotency_key`) and
returns one `SinkResult` per action: "done" (applied, or already applied before), "failed" (the
receiver rejected it: recorded, not retried) or "error" (not known to have landed: retried by the
next run with the same idempotency key). Both sinks deduplicate by idempotency key, so a resend
after a crash lands once.
"""
from __future__ import annotations

import http.client
import json
import logging
import os
import random
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from keyfarm import __version__
from keyfarm.errors import KeyfarmConfigError, KeyfarmInputError

log = logging.getLogger(__name__)
RETRYABLE_STATUS = {408, 425, 429}


@dataclass(frozen=True)
class SinkResult:
    status: str      # done | failed | error
    response: str    # what the receiver said (for the audit log)


class JsonlSink:
    """Append actions as JSON lines to a file, fsync after each batch.

    On open, a torn last line (a crash mid-write) is cut off, and the idempotency keys already in
    the file are loaded, so a resent action is reported "done (already applied)" and not written
    twice. One writer at a time (the audit run is the unit of work).
    """

    batch_size = 100

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.seen: set[str] = set()
        if self.path.exists():
            data = self.path.read_bytes()
            end = data.rfind(b"\n") + 1
            if end < len(data):
                log.warning("%s: cutting a torn last line of %d bytes", self.path, len(data) - end)
                with self.path.open("r+b") as fh:
                    fh.truncate(end)
                    os.fsync(fh.fileno())
            for number, line in enumerate(data[:end].splitlines(), 1):
                if line.strip():
                    try:
                        self.seen.add(json.loads(line)["idempotency_key"])
                    except (ValueError, KeyError, TypeError):
                        raise KeyfarmInputError(f"sink {self.path}: line {number} is not an action with an "
                                                "idempotency_key", table="sink", row=number) from None
        self._fh = self.path.open("ab")

    def send(self, actions: list[dict]) -> list[SinkResult]:
        results = []
        for action in actions:
            key = action["idempotency_key"]
            if key in self.seen:
                results.append(SinkResult("done", "already applied"))
                continue
            self._fh.write(json.dumps(action, sort_keys=True, ensure_ascii=False).encode() + b"\n")
            self.seen.add(key)
            results.append(SinkResult("done", "written"))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        return results

    def close(self) -> None:
        self._fh.close()

    def __repr__(self) -> str:
        return f"JsonlSink({str(self.path)!r})"


class HttpSink:
    """POST batches of actions as JSON to an endpoint, with timeouts, retries and idempotency keys.

    Request: `POST url`, body `{"actions": [action, ...]}`, header `Idempotency-Key` listing the
    batch's keys comma-separated (the HTTP form of one header per action; each action also carries
    its key in the body). Response: 2xx = applied; 409 = already applied (success); 408, 425, 429,
    5xx, timeouts and connection errors are retried with exponential backoff and seeded jitter;
    other 4xx are failures. A 2xx/409 body may carry per-action outcomes
    `{"results": [{"idempotency_key": k, "status": 200|409|4xx|5xx, "detail": "..."}]}`.
    Only stdlib urllib is used (no dependency); proxies follow the environment as usual.
    """

    def __init__(self, url: str, *, batch_size: int = 50, timeout: float = 5.0, retries: int = 5,
                 backoff: float = 0.2, max_backoff: float = 10.0, seed: int | None = 0,
                 headers: dict | None = None, sleep=time.sleep):
        if not url.startswith(("http://", "https://")):
            raise KeyfarmConfigError(f"sink URL must start with http:// or https://, got {url!r}")
        if batch_size < 1 or retries < 0 or timeout <= 0:
            raise KeyfarmConfigError("HttpSink needs batch_size >= 1, retries >= 0 and timeout > 0")
        self.url, self.batch_size, self.timeout, self.retries = url, batch_size, timeout, retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.headers = dict(headers or {})
        self._rng = random.Random(seed)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"HttpSink({self.url!r}, batch_size={self.batch_size}, timeout={self.timeout})"

    def delay(self, attempt: int) -> float:
        """Backoff before retry `attempt` (0-based): capped exponential, 50-100 % jitter."""
        return min(self.max_backoff, self.backoff * 2 ** attempt) * (0.5 + 0.5 * self._rng.random())

    def send(self, actions: list[dict]) -> list[SinkResult]:
        results: dict[str, SinkResult] = {}
        pending = list(actions)
        last = "not sent"
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.delay(attempt - 1))
            outcome, last = self._post(pending)
            for key, (status, response) in outcome.items():
                if status != "retry":
                    results[key] = SinkResult(status, response)
            pending = [a for a in pending if a["idempotency_key"] not in results]
            if not pending:
                break
            log.info("%s: %d actions to retry (%s)", self.url, len(pending), last)
        for a in pending:
            results[a["idempotency_key"]] = SinkResult("error", f"gave up after {self.retries + 1} attempts: {last}")
        return [results[a["idempotency_key"]] for a in actions]

    def _post(self, actions: list[dict]) -> tuple[dict, str]:
        """One POST; per idempotency key ("done" | "failed" | "retry", response text)."""
        keys = [a["idempotency_key"] for a in actions]
        body = json.dumps({"actions": actions}, sort_keys=True, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"keyfarm/{__version__}",
                   "Idempotency-Key": ", ".join(keys), **self.headers}
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                status, text = resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode("utf-8", "replace")
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError,
                http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            return {k: ("retry", f"transport error: {reason}") for k in keys}, f"transport error: {reason}"
        summary = f"HTTP {status}: {text[:300]}"
        whole = _classify(status)
        per_action = {}
        if whole == "done":
            try:
                doc = json.loads(text) if text.strip() else {}
                for item in doc.get("results", []) if isinstance(doc, dict) else []:
                    per_action[item["idempotency_key"]] = int(item["status"]), item.get("detail", "")
            except (ValueError, KeyError, TypeError):
                per_action = {}
        out = {}
        for k in keys:
            if k in per_action:
                code, detail = per_action[k]
                out[k] = (_classify(code), f"HTTP {code}: {detail}"[:500])
            else:
                out[k] = (whole, summary)
        return out, summary


def _classify(status: int) -> str:
    if 200 <= status < 300 or status == 409:
        return "done"
    if status >= 500 or status in RETRYABLE_STATUS:
        return "retry"
    return "failed"


def open_sink(spec: str, **http_options):
    """A sink from its CLI form: `jsonl:PATH` or `http(s)://HOST:PORT/PATH`."""
    if spec.startswith("jsonl:"):
        if not spec[6:]:
            raise KeyfarmConfigError("sink jsonl: needs a path, e.g. jsonl:actions.jsonl")
        return JsonlSink(spec[6:])
    if spec.startswith(("http://", "https://")):
        return HttpSink(spec, **http_options)
    raise KeyfarmConfigError(f"unknown sink {spec!r}: use jsonl:PATH or http://HOST:PORT/PATH")
