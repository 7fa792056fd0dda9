"""A small hostile OUT_DIR for tests of the report: every string field carries markup.

Stage: report (test support). Each string value is `<i class="xss-<field>">…</i>` plus quotes,
an ampersand and non-ASCII text, and the key ids include the classic
`</script><script>alert(1)</script>` and `<img src=x onerror=alert(1)>`, so a test can assert that
raw markup from the data never reaches a page.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm.report.outputs import SIGNALS

SCRIPT_XSS = "</script><script>alert(1)</script>"
IMG_XSS = "<img src=x onerror=alert(1)>"
MARK = 'class="xss-'


def hostile(field: str, i: int | str = "") -> str:
    """A value for `field` that is markup if not escaped: `<i class="xss-field">'"&é🔑 i</i>`."""
    return f'<i class="xss-{field}">\'"&é🔑 {i}</i>'


def hostile_out_dir(path, *, big_cluster_keys: int = 30, big_cluster_links: int | None = None,
                    seed: int = 0) -> Path:
    """Write an OUT_DIR: cluster 0 (6 keys, 4 accounts; the XSS key ids), cluster 1 (2 keys),
    cluster 2 (`big_cluster_keys` keys over as many/3 accounts; all pairs linked, or with
    `big_cluster_links` each key linked to the next that many keys) and a singleton."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    keys = [SCRIPT_XSS, IMG_XSS, hostile("key_id", 2), hostile("key_id", 3), "k4 ключ", "k5"]
    accounts = [hostile("account_id", 0), hostile("account_id", 0), IMG_XSS, hostile("account_id", 2),
                hostile("account_id", 3), hostile("account_id", 3)]
    cluster = [0] * 6
    keys += ["m0", "m1"]
    accounts += ["acct m0", "acct m1"]
    cluster += [1, 1]
    big = [f"big{i:03d}" for i in range(big_cluster_keys)]
    keys += big
    accounts += [f"bigacct{i // 3:03d}" for i in range(big_cluster_keys)]
    cluster += [2] * big_cluster_keys
    keys += ["solo"]
    accounts += ["acct solo"]
    cluster += [3]
    n = len(keys)
    members = pd.DataFrame({
        "key_id": keys, "account_id": accounts, "cluster_id": np.array(cluster, np.int64),
        "org_id": [hostile("org_id", i) for i in range(n)],
        "email_domain": [hostile("email_domain", i) for i in range(n)],
        "created_at": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="h"),
        "daily_token_limit": pd.array([100_000] * (n - 1) + [None], dtype="Int64"),
        "total_tokens": rng.integers(1_000, 500_000, n).astype(np.int64),
        "peak_daily_tokens": rng.integers(1_000, 120_000, n).astype(np.int64),
        "n_requests": rng.integers(1, 50, n).astype(np.int64),
        "usage": rng.random(n),
    })
    pairs = [(i, j) for i in range(6) for j in range(i + 1, 6)] + [(6, 7)]
    reach = big_cluster_keys if big_cluster_links is None else big_cluster_links + 1
    pairs += [(6 + 2 + i, 6 + 2 + j) for i in range(big_cluster_keys)
              for j in range(i + 1, min(i + reach, big_cluster_keys))]
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    ka = np.array(keys, dtype=object)[a]
    kb = np.array(keys, dtype=object)[b]
    lo, hi = np.where(ka < kb, ka, kb), np.where(ka < kb, kb, ka)
    m = len(pairs)
    w = {s: rng.random(m) * (rng.random(m) < 0.6) for s in SIGNALS}
    edges = pd.DataFrame({"key_a": lo, "key_b": hi, "weight": sum(w.values()) + 0.01,
                          **{f"w_{s}": v for s, v in w.items()},
                          "cluster_id": np.array(cluster, np.int64)[a],
                          "evidence_payment": [hostile("evidence_payment", i) for i in range(m)],
                          "evidence_ip": [hostile("evidence_ip", i) for i in range(m)],
                          "evidence_device": [hostile("evidence_device", i) for i in range(m)],
                          "evidence_prompt": [hostile("evidence_prompt", i) for i in range(m)],
                          "evidence_timing": [hostile("evidence_timing", i) for i in range(m)],
                          "prompt_example_a": [SCRIPT_XSS if i % 2 else hostile("prompt_example_a", i) for i in range(m)],
                          "prompt_example_b": [IMG_XSS if i % 2 else hostile("prompt_example_b", i) for i in range(m)]})
    clusters = pd.DataFrame({
        "cluster_id": np.array([0, 1, 2], np.int64), "n_keys": np.array([6, 2, big_cluster_keys], np.int64),
        "n_accounts": np.array([4, 2, (big_cluster_keys + 2) // 3], np.int64), "score": [0.97, 0.2, 0.6],
        "flagged": [True, False, True], "signals": [hostile("signals", i) for i in range(3)],
        "total_tokens": np.array([10, 20, 30], np.int64), "limit_multiplier": [12.5, 0.4, 3.0],
        "explanation": [hostile("explanation", i) + " " + SCRIPT_XSS for i in range(3)],
        "usage": [0.9, 0.1, 0.5], "creation_spread_hours": [1.5, 100.0, 3.0], "synchrony": [0.8, 0.0, 0.5],
        "prompt_homogeneity": [0.9, 0.0, 0.2], "n_signals": np.array([3, 1, 2], np.int64),
        "declared_org": [False, False, True], "institutional_domain": [False, True, False],
        "weakest_key_a": [hostile("weakest_key_a", i) for i in range(3)],
        "weakest_key_b": [hostile("weakest_key_b", i) for i in range(3)], "weakest_weight": [0.1, 0.2, 0.3],
        "weakest_signal": [hostile("weakest_signal", i) for i in range(3)],
        "strongest_key_a": [hostile("strongest_key_a", i) for i in range(3)],
        "strongest_key_b": [hostile("strongest_key_b", i) for i in range(3)], "strongest_weight": [2.0, 1.0, 1.5],
        "strongest_signal": [hostile("strongest_signal", i) for i in range(3)],
        "strongest_evidence": [hostile("strongest_evidence", i) for i in range(3)],
    })
    members.to_parquet(out / "members.parquet", index=False)
    clusters.to_parquet(out / "clusters.parquet", index=False)
    edges.to_parquet(out / "edges.parquet", index=False)
    run = {"version": hostile("version"), "run_id": hostile("run_id"), "seed": 0, "config": {},
           "input": hostile("input"), "input_rows": {"keys": n, hostile("table"): 3},
           "valid_rows": {"keys": n}, "quarantined": {"requests": {hostile("reason"): 2}},
           "hubs": [{"token": hostile("hub_token"), "signal": hostile("hub_signal"), "n_accounts": 99, "n_keys": 120}],
           "n_hubs": {"ip": 1}, "timings": {hostile("stage"): 1.5},
           "counts": {"keys": n, "accounts": len(set(accounts)), "edges": m, "clusters": 3,
                      "flagged_clusters": 2, "flagged_keys": 6 + big_cluster_keys}}
    (out / "run.json").write_text(json.dumps(run, indent=2))
    return out
