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
    `big_cluster_links` each key linked to the next that many keys) and a singleton; with the
    scaled features and fitted weights of a score breakdown, activity and slots (timelines),
    hubs (a prompt hub's hostile text), labels (hostile notes) and changes.parquet."""
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
        "flagged": [True, False, False], "signals": [hostile("signals", i) for i in range(3)],
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
    from keyfarm.scoring.verdict import MODEL_FEATURES, ScoringConfig

    clusters["verdict"] = ["farm", "clear", "review"]
    clusters["share_ip"] = [0.5, 0.0, 1.0]
    clusters["control"] = [0.9, 0.0, 0.2]
    clusters["activation_spread_hours"] = [2.0, 50.0, 10.0]
    clusters["rotation_blocks"] = [1.0, 1.0, 20.0]
    for column in ("span_payment", "span_timing", "span_device", "share_prompt"):
        clusters[column] = [0.75, 0.0, 0.3]
    for i, name in enumerate(MODEL_FEATURES):
        clusters[f"f_{name}"] = np.round(rng.random(3), 6)
    scoring = ScoringConfig().to_dict()
    logit = scoring["bias"] + sum(clusters[f"f_{n}"] * scoring["weights"].get(n, 0.0) for n in MODEL_FEATURES)
    clusters["score"] = np.round(1 / (1 + np.exp(-logit)), 6)

    start = pd.Timestamp("2026-01-02", tz="UTC")
    in_clusters = [i for i in range(n) if cluster[i] in (0, 1, 2)]
    activity = pd.DataFrame({
        "cluster_id": np.repeat(np.array(cluster, np.int64)[in_clusters], 4),
        "account_id": np.repeat(np.array(accounts, dtype=object)[in_clusters], 4),
        "bin": np.tile(start + pd.to_timedelta([0, 900, 3600 * 7, 86400 + 1800], unit="s"), len(in_clusters)),
        "n_requests": rng.integers(1, 20, 4 * len(in_clusters)).astype(np.int64),
        "tokens": rng.integers(10, 5000, 4 * len(in_clusters)).astype(np.int64)})
    activity = activity.groupby(["cluster_id", "account_id", "bin"], as_index=False).sum()
    slots = pd.DataFrame({"cluster_id": np.array([0, 0, 2], np.int64),
                          "slot": start + pd.to_timedelta([60, 3600 * 7 + 120, 86400 + 1860], unit="s"),
                          "n_accounts": np.array([4, 3, 9], np.int64)})
    hubs = pd.DataFrame({"token": [hostile("hub_token", 0), "pdup:0011223344556677"],
                         "signal": [hostile("hub_signal", 0), "prompt"], "n_accounts": np.array([99, 50], np.int64),
                         "n_keys": np.array([120, 60], np.int64), "score": [0.7, None],
                         "verdict": [hostile("hub_verdict"), None], "example": [None, hostile("hub_example") + SCRIPT_XSS]})
    labels = pd.DataFrame({"account_id": pd.Series([None, IMG_XSS], dtype=object),
                           "cluster_id": pd.array([0, None], dtype="Int64"), "label": ["farm", "benign"],
                           "source": [hostile("label_source"), "analyst"],
                           "ts": pd.to_datetime(["2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z"], utc=True),
                           "note": [hostile("label_note") + SCRIPT_XSS, hostile("label_note", 1)]})
    changes = pd.DataFrame({"cluster_id": np.array([2, 0], np.int64), "status": ["grown", "new"],
                            "n_accounts_before": np.array([8, 0], np.int64),
                            "n_accounts_after": np.array([10, 4], np.int64),
                            "n_keys_before": np.array([9, 0], np.int64), "n_keys_after": np.array([12, 4], np.int64),
                            "previous_cluster_ids": [hostile("previous_cluster_ids"), ""],
                            "returning": [False, True], "verdict_before": [hostile("verdict_before"), None],
                            "verdict_after": ["farm", hostile("verdict_after")]})
    activity.to_parquet(out / "activity.parquet", index=False)
    slots.to_parquet(out / "slots.parquet", index=False)
    hubs.to_parquet(out / "hubs.parquet", index=False)
    labels.to_parquet(out / "labels.parquet", index=False)
    changes.to_parquet(out / "changes.parquet", index=False)
    members.to_parquet(out / "members.parquet", index=False)
    clusters.to_parquet(out / "clusters.parquet", index=False)
    edges.to_parquet(out / "edges.parquet", index=False)
    run = {"version": hostile("version"), "run_id": hostile("run_id"), "seed": 0, "config": {"scoring": scoring},
           "input": hostile("input"), "input_rows": {"keys": n, hostile("table"): 3},
           "valid_rows": {"keys": n}, "quarantined": {"requests": {hostile("reason"): 2}},
           "hubs": [{"token": hostile("hub_token"), "signal": hostile("hub_signal"), "n_accounts": 99, "n_keys": 120}],
           "n_hubs": {"ip": 1}, "timings": {hostile("stage"): 1.5},
           "counts": {"keys": n, "accounts": len(set(accounts)), "edges": m, "clusters": 3,
                      "flagged_clusters": 2, "flagged_keys": 6 + big_cluster_keys}}
    (out / "run.json").write_text(json.dumps(run, indent=2))
    return out
