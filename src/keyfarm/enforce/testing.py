"""A reference receiver for the HTTP sink protocol, with fault injection, and an OUT_DIR writer.

Stage: enforcement, for integration tests (ours and an operator's): `Receiver` is an HTTP server on
127.0.0.1 that applies actions once per idempotency key (409 on repeats), keeps the resulting
state (banned keys, suspended accounts, revoked keys), and can fail a fraction of requests with
500 or apply-then-stall past the client's timeout. `write_out_dir` writes a small linkage OUT_DIR.
"""
from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd

from keyfarm.graph.weighting import SIGNALS

EFFECT = {"ban_key": ("banned", "key_id", True), "unban_key": ("banned", "key_id", False),
          "suspend_account": ("suspended", "account_id", True),
          "unsuspend_account": ("suspended", "account_id", False),
          "revoke_key": ("revoked", "key_id", True), "restore_key": ("revoked", "key_id", False)}


class Receiver:
    """Start with `with Receiver(...) as rx:`; POST to `rx.url`. Thread-safe.

    fail_rate: share of requests answered 500 without applying anything. stall_rate: share of
    requests applied and then answered only after `stall` seconds (beyond a short client timeout).
    delay: seconds every request waits before applying (to make runs slow enough to kill).
    reject: action names answered 422 (a permanent failure). seed: the fault pattern's seed.
    """

    def __init__(self, *, fail_rate: float = 0.0, stall_rate: float = 0.0, stall: float = 0.5,
                 delay: float = 0.0, reject: tuple = (), seed: int = 0):
        self.fail_rate, self.stall_rate, self.stall, self.delay = fail_rate, stall_rate, stall, delay
        self.reject = set(reject)
        self._rng = random.Random(seed)
        self.lock = threading.Lock()
        self.applied: dict[str, int] = {}     # idempotency key -> deliveries (a resend counts again)
        self.landed: list[dict] = []          # actions in the order they took effect
        self.requests = 0
        self.faults = {"500": 0, "stall": 0, "409": 0}
        self.state = {"banned": set(), "suspended": set(), "revoked": set()}
        self.landed_event = threading.Event()
        self.event_after: int | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                receiver._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/actions"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
        header_keys = [k.strip() for k in h.headers.get("Idempotency-Key", "").split(",") if k.strip()]
        actions = body["actions"]
        assert header_keys == [a["idempotency_key"] for a in actions], "Idempotency-Key header mismatch"
        with self.lock:
            self.requests += 1
            roll = self._rng.random()
        if self.delay:
            time.sleep(self.delay)
        if roll < self.fail_rate:
            with self.lock:
                self.faults["500"] += 1
            return self._reply(h, 500, {"error": "injected failure"})
        results = []
        with self.lock:
            for a in actions:
                key = a["idempotency_key"]
                if a["action"] in self.reject:
                    results.append({"idempotency_key": key, "status": 422, "detail": "rejected"})
                elif key in self.applied:
                    self.applied[key] += 1
                    self.faults["409"] += 1
                    results.append({"idempotency_key": key, "status": 409, "detail": "already applied"})
                else:
                    self.applied[key] = 1
                    self.landed.append(a)
                    name, field, on = EFFECT[a["action"]]
                    (self.state[name].add if on else self.state[name].discard)(a[field])
                    results.append({"idempotency_key": key, "status": 200, "detail": "applied"})
            if self.event_after is not None and len(self.landed) >= self.event_after:
                self.landed_event.set()
        stall = roll < self.fail_rate + self.stall_rate
        if stall:
            with self.lock:
                self.faults["stall"] += 1
            time.sleep(self.stall)
        code = 409 if all(r["status"] == 409 for r in results) else 200
        try:
            self._reply(h, code, {"results": results})
        except OSError:  # the client gave up waiting; it will resend
            pass

    def repeated_effects(self) -> list[tuple[str, str]]:
        """(action, target) pairs that took effect more than once: a sink that sent one action under
        two idempotency keys would show here, where the receiver's own de-duplication cannot hide it."""
        seen = Counter((a["action"], a[EFFECT[a["action"]][1]]) for a in self.landed)
        return sorted(k for k, n in seen.items() if n > 1)

    @staticmethod
    def _reply(h, code: int, doc: dict) -> None:
        data = json.dumps(doc).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)


def write_out_dir(path: str | Path, clusters: list[dict], *, singletons: int = 0, run_id: str = "run-test",
                  org_id: dict | None = None, email_domain: dict | None = None) -> Path:
    """Write a linkage OUT_DIR from cluster specs.

    Each spec: cluster_id, accounts (list of (account_id, [key_id, ...])), score, flagged, and
    `edges`: list of (key_a, key_b, weight, {signal: weight}), "clique" (default: every pair,
    w_ip=1, as a shared token projects), "chain" (a path over the keys) or "star:<key_id>" (that
    key linked to every other key by w_ip=1).
    org_id / email_domain: account_id -> value, written as extra members columns.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    members, rows, edges = [], [], []
    for spec in clusters:
        cid = spec["cluster_id"]
        keys = []
        for account_id, key_ids in spec["accounts"]:
            for k in key_ids:
                members.append({"key_id": k, "account_id": account_id, "cluster_id": cid})
                keys.append(k)
        rows.append({"cluster_id": cid, "n_keys": len(keys), "n_accounts": len(spec["accounts"]),
                     "score": spec.get("score", 0.9), "flagged": spec.get("flagged", True),
                     "verdict": spec.get("verdict", "farm" if spec.get("flagged", True) else "clear"),
                     "signals": "ip", "total_tokens": 1000, "limit_multiplier": 3.0,
                     "explanation": spec.get("explanation", f"Flagged cluster {cid}.")})
        shape = spec.get("edges", "clique")
        if shape == "clique":
            shape = [(a, b, 1.0, {"ip": 1.0}) for i, a in enumerate(keys) for b in keys[i + 1:]]
        elif shape == "chain":
            shape = [(a, b, 1.0, {"ip": 1.0}) for a, b in zip(keys, keys[1:])]
        elif isinstance(shape, str) and shape.startswith("star:"):
            hub = shape[5:]
            shape = [(hub, k, 1.0, {"ip": 1.0}) for k in keys if k != hub]
        for a, b, w, per in shape:
            a, b = min(a, b), max(a, b)
            edges.append({"key_a": a, "key_b": b, "weight": w,
                          **{f"w_{s}": per.get(s, 0.0) for s in SIGNALS}})
    for i in range(singletons):
        members.append({"key_id": f"solo-{i:04d}", "account_id": f"solo-acc-{i:04d}",
                        "cluster_id": 10_000 + i})
    m = pd.DataFrame(members)
    if org_id is not None:
        m["org_id"] = m["account_id"].map(org_id)
    if email_domain is not None:
        m["email_domain"] = m["account_id"].map(email_domain)
    m.to_parquet(path / "members.parquet", index=False)
    pd.DataFrame(rows).to_parquet(path / "clusters.parquet", index=False)
    cols = ["key_a", "key_b", "weight"] + [f"w_{s}" for s in SIGNALS]
    pd.DataFrame(edges, columns=cols).to_parquet(path / "edges.parquet", index=False)
    (path / "run.json").write_text(json.dumps({"run_id": run_id, "version": "0.1.0", "config": {}}))
    return path
