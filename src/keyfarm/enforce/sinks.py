"""Sinks: where enforcement actions go (a JSONL file, or an HTTP endpoint that applies them).

Stage: enforcement. A sink takes a batch of actions (dicts carrying an `idempotency_key`) and
returns one `SinkResult` per action: "done" (applied, or already applied before), "failed" (the
receiver rejected it: recorded, not retried) or "error" (not known to have landed: retried by the
next run with the same idempotency key). Both sinks deduplicate by idempotency key, so a resend
after a crash lands once.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import random
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import (HTTPError, InvalidHeader, LocationParseError, MaxRetryError, ProtocolError,
                                ReadTimeoutError)
from urllib3.util import Retry, parse_url

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
        if self.path.is_dir():
            raise KeyfarmConfigError(f"sink jsonl:{self.path} is a folder; give the path of a file")
        try:
            self._open()
        except OSError as exc:
            raise KeyfarmInputError(f"sink {self.path}: cannot open for appending: {exc.strerror or exc}",
                                    table="sink") from None

    def _open(self) -> None:
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
        """Append the batch and fsync; a write that fails (disk full, file gone) reports the whole
        batch "error": nothing of it is known to be on disk, the next run resends it."""
        results, fresh, lines = [], set(), []
        for action in actions:
            key = action["idempotency_key"]
            if key in self.seen or key in fresh:
                results.append(SinkResult("done", "already applied"))
                continue
            fresh.add(key)
            lines.append(json.dumps(action, sort_keys=True, ensure_ascii=False).encode() + b"\n")
            results.append(SinkResult("done", "written"))
        data = b"".join(lines)
        try:
            self._fh.write(data)
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as exc:
            log.warning("%s: write failed: %s", self.path, exc)
            return [SinkResult("error", f"write failed: {exc.strerror or exc}") for _ in actions]
        self.seen.update(fresh)
        return results

    def close(self) -> None:
        self._fh.close()

    def __repr__(self) -> str:
        return f"JsonlSink({str(self.path)!r})"


class HttpSink:
    """POST batches of actions as JSON to an endpoint, with a deadline per request, retries and
    idempotency keys.

    Request: `POST url`, body `{"actions": [action, ...]}`, header `Idempotency-Key` listing the
    batch's keys comma-separated (the HTTP form of one header per action; each action also carries
    its key in the body). Response: 2xx = applied; 409 = already applied (success); 408, 425, 429,
    5xx, timeouts, connection errors and replies cut short are retried; other 4xx are failures. A
    2xx/409 body may carry per-action outcomes
    `{"results": [{"idempotency_key": k, "status": 200|409|4xx|5xx, "detail": "..."}]}`; once it
    does, an action counts as done only by an item of its own with a 2xx/409 status: an action the
    list leaves out, names twice with different statuses, or names in a malformed item stays
    pending, and so does every action of a 2xx whose body is not a JSON object (a proxy's page).

    HTTP is urllib3's (connections, TLS verification, response parsing, limits) and the retry
    policy is its `Retry` (which failures count, exponential backoff capped at `max_backoff`,
    Retry-After honoured up to `max_backoff`); the loop around it is ours because outcomes are per
    action: a retry resends only the actions still pending. `timeout` is one wall-clock deadline
    per request (connect, send, the whole reply), not per socket read, so a receiver trickling
    bytes cannot hold a batch past it. A redirect is not followed (its actions stay pending, as a
    redirect confirms nothing) unless `follow_redirects`, which POSTs the same body to the new
    location (up to 5 hops), never a GET without it. Reply bodies are read up to `max_body` bytes.
    """

    max_hops = 5

    def __init__(self, url: str, *, batch_size: int = 50, timeout: float = 5.0, retries: int = 5,
                 backoff: float = 0.2, max_backoff: float = 10.0, seed: int | None = 0,
                 headers: dict | None = None, sleep=time.sleep, follow_redirects: bool = False,
                 max_body: int = 1 << 20):
        if not _is_http(url):
            raise KeyfarmConfigError(f"sink URL must start with http:// or https://, got {url!r}")
        try:
            host = parse_url(url).host
        except LocationParseError as exc:
            raise KeyfarmConfigError(f"sink URL {url!r} is not a valid URL: {exc}") from None
        if not host:
            raise KeyfarmConfigError(f"sink URL {url!r} names no host")
        if batch_size < 1 or retries < 0 or not timeout > 0 or not backoff >= 0 or not max_body > 0:
            raise KeyfarmConfigError("HttpSink needs batch_size >= 1, retries >= 0, timeout > 0, backoff >= 0 "
                                     "and max_body > 0")
        self.url, self.batch_size, self.timeout, self.retries = url, batch_size, float(timeout), retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.follow_redirects, self.max_body = follow_redirects, max_body
        self.headers = dict(headers or {})
        self._rng = random.Random(seed)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"HttpSink({self.url!r}, batch_size={self.batch_size}, timeout={self.timeout})"

    def retry_policy(self) -> Retry:
        """urllib3's Retry for one batch: `retries` resends of any cause, backoff, Retry-After."""
        return Retry(total=self.retries, redirect=0, allowed_methods=None,
                     status_forcelist=RETRYABLE_STATUS | set(range(500, 600)), backoff_factor=self.backoff,
                     backoff_max=self.max_backoff, retry_after_max=max(1, int(self.max_backoff)),
                     raise_on_status=False, raise_on_redirect=False)

    def send(self, actions: list[dict]) -> list[SinkResult]:
        results: dict[str, SinkResult] = {}
        pending = list(actions)
        retry = self.retry_policy()
        attempts, last = 0, {}
        while pending:
            attempts += 1
            reply = self._post(pending)
            for key, (status, response) in reply.outcomes.items():
                last[key] = response
                if status in ("done", "failed"):
                    results[key] = SinkResult(status, response)
            pending = [a for a in pending if a["idempotency_key"] not in results]
            if not pending or reply.final:
                break
            try:
                retry = retry.increment("POST", self.url, response=reply.response, error=reply.error)
            except MaxRetryError:
                break
            log.info("%s: %d actions to retry (%s)", self.url, len(pending), reply.summary)
            self._sleep(self._wait(retry, reply.response))
        for a in pending:
            why = last.get(a["idempotency_key"], "not sent")
            results[a["idempotency_key"]] = SinkResult("error", f"gave up after {attempts} attempt(s): {why}"[:500])
        return [results[a["idempotency_key"]] for a in actions]

    def _wait(self, retry: Retry, response) -> float:
        """Seconds before the next attempt: the receiver's Retry-After (capped), else the policy's
        backoff with seeded 50-100 % jitter."""
        if response is not None and response.status in Retry.RETRY_AFTER_STATUS_CODES:
            try:
                after = retry.get_retry_after(response)
            except InvalidHeader:
                after = None
            if after is not None:
                return min(self.max_backoff, max(0.0, after))
        base = retry.get_backoff_time() or min(self.max_backoff, self.backoff)
        return base * (0.5 + 0.5 * self._rng.random())

    def _post(self, actions: list[dict]) -> "_Reply":
        """One POST of the batch (following redirects as POSTs when allowed): outcome per key."""
        keys = [a["idempotency_key"] for a in actions]
        body = json.dumps({"actions": actions}, sort_keys=True, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"keyfarm/{__version__}",
                   "Idempotency-Key": ", ".join(keys), **self.headers}
        url = self.url
        for _hop in range(self.max_hops + 1):
            try:
                response, text = self._request(url, body, headers)
            except _AttemptError as exc:
                return _Reply.every(keys, "retry", f"transport error: {exc}", error=exc.cause)
            summary = f"HTTP {response.status}: {text[:300]}"
            if 300 <= response.status < 400:
                location = response.headers.get("Location")
                target = urljoin(url, location) if location else None
                if self.follow_redirects and target and _is_http(target):
                    url = target
                    continue
                why = f"HTTP {response.status} redirect to {location!r} not followed" + \
                    ("" if self.follow_redirects else " (follow_redirects is off)")
                return _Reply.every(keys, "retry", why, response=response, final=True)
            return _Reply(outcomes=_outcomes(response.status, text, keys), summary=summary, response=response)
        return _Reply.every(keys, "retry", f"more than {self.max_hops} redirects", final=True)

    def _request(self, url: str, body: bytes, headers: dict):
        """(response, body text up to max_body) of one request within one deadline, or
        _AttemptError. A watchdog shuts the socket down when the deadline passes, which ends any
        read in progress however slowly the bytes arrive."""
        parts = parse_url(url)
        cls = HTTPSConnection if parts.scheme == "https" else HTTPConnection
        conn = cls(parts.host, parts.port, timeout=self.timeout)
        expired = threading.Event()

        def expire():
            expired.set()
            sock = getattr(conn, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        watchdog = threading.Timer(self.timeout, expire)
        watchdog.daemon = True
        watchdog.start()
        try:
            conn.connect()
            if expired.is_set():
                raise TimeoutError("deadline")
            conn.request("POST", parts.request_uri, body=body, headers=headers, preload_content=False)
            response = conn.getresponse()
            data = response.read(self.max_body, decode_content=True)
            if expired.is_set():
                raise TimeoutError("deadline")
            return response, data.decode("utf-8", "replace")
        except (HTTPError, http.client.HTTPException, OSError, ValueError) as exc:
            if expired.is_set():
                raise _AttemptError(f"no complete reply within the {self.timeout:g} s deadline",
                                    ReadTimeoutError(None, url, "deadline")) from None
            cause = exc if isinstance(exc, HTTPError) else ProtocolError(str(exc) or type(exc).__name__, exc)
            raise _AttemptError(f"{type(exc).__name__}: {exc}", cause) from None
        finally:
            watchdog.cancel()
            conn.close()


class _AttemptError(Exception):
    """One request failed before a complete reply; `cause` is the urllib3 error Retry counts."""

    def __init__(self, message: str, cause: Exception):
        super().__init__(message)
        self.cause = cause


@dataclass
class _Reply:
    outcomes: dict            # idempotency key -> ("done" | "failed" | "retry", response text)
    summary: str
    response: object = None   # the urllib3 response (status, headers for Retry-After), if any
    error: Exception | None = None
    final: bool = False       # resending the same request cannot help (a redirect not followed)

    @classmethod
    def every(cls, keys, status, text, **kw) -> "_Reply":
        return cls(outcomes={k: (status, text) for k in keys}, summary=text, **kw)


def _outcomes(status: int, text: str, keys: list[str]) -> dict:
    """Outcome per key of a reply with `status` and body `text` (see HttpSink)."""
    whole = _classify(status)
    summary = f"HTTP {status}: {text[:300]}"
    if whole != "done":
        return {k: (whole, summary) for k in keys}
    if not text.strip():
        return {k: ("done", summary) for k in keys}
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return {k: ("retry", f"HTTP {status} with an unreadable body (not a JSON object): {text[:200]}")
                for k in keys}
    if "results" not in doc:
        return {k: ("done", summary) for k in keys}
    items = doc["results"]
    if not isinstance(items, list):
        return {k: ("retry", f"HTTP {status}: `results` is not a list") for k in keys}
    wanted, found, conflicted = set(keys), {}, set()
    for item in items:
        if not isinstance(item, dict):
            continue
        key, code = item.get("idempotency_key"), item.get("status")
        if not isinstance(key, str) or key not in wanted or isinstance(code, bool) or not isinstance(code, int) \
                or not 100 <= code <= 599:
            continue
        detail = item.get("detail", "")
        if key in found and found[key][0] != code:
            conflicted.add(key)
        found[key] = (code, detail if isinstance(detail, str) else json.dumps(detail))
    out = {}
    for k in keys:
        if k in conflicted:
            out[k] = ("retry", f"HTTP {status}: conflicting results for this action")
        elif k not in found:
            out[k] = ("retry", f"HTTP {status}: no well-formed result for this action")
        else:
            code, detail = found[k]
            out[k] = (_classify(code), f"HTTP {code}: {detail}"[:500])
    return out


def _classify(status: int) -> str:
    if 200 <= status < 300 or status == 409:
        return "done"
    if status >= 500 or status in RETRYABLE_STATUS or status < 200 or 300 <= status < 400:
        return "retry"
    return "failed"


def _is_http(url: str) -> bool:
    return isinstance(url, str) and url.lower().startswith(("http://", "https://"))


def open_sink(spec: str, **http_options):
    """A sink from its CLI form: `jsonl:PATH` or `http(s)://HOST:PORT/PATH`."""
    if spec.startswith("jsonl:"):
        if not spec[6:]:
            raise KeyfarmConfigError("sink jsonl: needs a path, e.g. jsonl:actions.jsonl")
        return JsonlSink(spec[6:])
    if _is_http(spec):
        return HttpSink(spec, **http_options)
    raise KeyfarmConfigError(f"unknown sink {spec!r}: use jsonl:PATH or http://HOST:PORT/PATH")
