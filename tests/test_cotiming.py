"""Co-timing (scoring.features._cotiming): accounts that keep acting in their cluster's own bursts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keyfarm.scoring.features import KeyActivity, _cotiming
from keyfarm.scoring.verdict import CONTROL_FEATURES, ScoringConfig, feature_scales

PER_HOUR, PER_DAY = 12, 288          # 300-s bins
START = 20_000 * PER_DAY              # 2024-10-04 00:00 UTC, an epoch-aligned day
DAYS = 3


def _bins(rows) -> KeyActivity:
    frame = pd.DataFrame(rows, columns=["key", "bin"]).drop_duplicates().sort_values(["key", "bin"])
    return KeyActivity(daily=pd.DataFrame(columns=["key", "day", "tokens"]), bins=frame.reset_index(drop=True),
                       n_bins_total=DAYS * PER_DAY)


def _run(rows, clusters):
    """clusters: per account (= key) its cluster; returns cotiming per cluster id 0..max."""
    acc_cluster = np.asarray(clusters, np.int64)
    cids = np.unique(acc_cluster)
    n_acc = np.bincount(acc_cluster)[cids].astype(np.float64)
    return _cotiming(_bins(rows), np.arange(acc_cluster.size), acc_cluster, cids, n_acc, 300)


def scheduler(rng, accounts, n_bursts=100, per_burst=6, background=10):
    """One actor's queue: irregular bins, each dispatching a few of its accounts, plus background."""
    rows = []
    for b in rng.choice(DAYS * PER_DAY, n_bursts, replace=False):
        rows += [(a, START + b) for a in rng.choice(accounts, per_burst, replace=False)]
    for a in accounts:
        rows += [(a, START + b) for b in rng.integers(0, DAYS * PER_DAY, background)]
    return rows


def cron(rng, accounts, minute_bin=0, background=10):
    """Independent jobs firing every hour at the same clock minute, plus their own traffic."""
    rows = []
    for a in accounts:
        rows += [(a, START + h * PER_HOUR + minute_bin) for h in range(DAYS * 24)]
        rows += [(a, START + b) for b in rng.integers(0, DAYS * PER_DAY, background)]
    return rows


def daily_jobs(rng, accounts, at_bins=(2 * PER_HOUR, 3 * PER_HOUR + 3), background=10):
    """Independent jobs that all fire every day at 02:00 and 03:15 (a CI crowd)."""
    rows = []
    for a in accounts:
        rows += [(a, START + d * PER_DAY + b) for d in range(DAYS) for b in at_bins]
        rows += [(a, START + b) for b in rng.integers(0, DAYS * PER_DAY, background)]
    return rows


def business_hours(rng, accounts, n=40):
    """A crowd that works when everyone works: random bins between 09:00 and 17:00."""
    rows = []
    for a in accounts:
        day = rng.integers(0, DAYS, n)
        rows += [(a, START + d * PER_DAY + 9 * PER_HOUR + b) for d, b in zip(day, rng.integers(0, 8 * PER_HOUR, n))]
    return rows


def test_a_scheduler_is_co_timed_and_crowds_on_the_clock_are_not():
    rng = np.random.default_rng(0)
    groups = [np.arange(i * 30, (i + 1) * 30) for i in range(4)]
    rows = scheduler(rng, groups[0]) + cron(rng, groups[1]) + daily_jobs(rng, groups[2]) \
        + business_hours(rng, groups[3])
    got = _run(rows, np.repeat(np.arange(4), 30))
    assert got[0] >= 0.9, got
    assert got[1:].max() <= 0.05, got


def test_a_scheduler_is_found_whatever_the_population_beside_it():
    """The test is within the cluster: a million strangers' traffic in the same bins changes nothing."""
    rng = np.random.default_rng(1)
    farm = np.arange(40)
    rows = scheduler(rng, farm, n_bursts=80, per_burst=6, background=6)
    crowd = business_hours(rng, np.arange(40, 640), n=30)
    alone = _run(rows, np.zeros(40))
    beside = _run(rows + crowd, np.r_[np.zeros(40), np.ones(600)].astype(np.int64))
    assert alone[0] == pytest.approx(beside[0])
    assert alone[0] >= 0.8
    assert beside[1] <= 0.05


def test_fine_bins_are_read_when_present():
    """key_activity(fine_seconds=60) gives co-timing its one-minute bins; `bins` stay five-minute."""
    from keyfarm.scoring import key_activity

    t0 = pd.Timestamp("2026-11-02 10:00:07", tz="UTC")
    ts = [t0 + pd.Timedelta(seconds=s) for s in (0, 30, 70, 299)]
    requests = pd.DataFrame({"key": [0, 0, 0, 0], "ts": ts, "prompt_tokens": 1, "completion_tokens": 1})
    act = key_activity(requests, bin_seconds=300, fine_seconds=60)
    assert act.fine_seconds == 60
    assert act.fine_bins["bin"].tolist() == sorted({int(t.timestamp()) // 60 for t in ts})
    assert act.bins["bin"].tolist() == sorted({int(t.timestamp()) // 300 for t in ts})
    assert key_activity(requests).fine_bins is None


def test_small_clusters_and_accounts_with_one_burst_do_not_count():
    rng = np.random.default_rng(2)
    lockstep = [(a, START + b) for a in range(3) for b in (17, 401, 555)]       # three accounts: not tested
    once = [(a, START + 100) for a in range(3, 13)] + \
        [(a, START + b) for a in range(3, 13) for b in rng.integers(0, DAYS * PER_DAY, 10)]
    got = _run(lockstep + once, np.r_[np.zeros(3), np.ones(10)].astype(np.int64))
    assert got.tolist() == [0.0, 0.0]


def test_cotiming_is_control_evidence_of_the_verdict():
    assert "cotiming" in CONTROL_FEATURES
    feats = pd.DataFrame({"span_payment": [0.0], "span_timing": [0.0], "span_device": [0.0],
                          "span_control": [0.0], "share_ip": [0.0], "share_prompt": [0.0], "span_ip": [0.0],
                          "usage": [0.8], "usage_low": [0.7], "rotation_blocks": [1.0],
                          "creation_spread_hours": [np.nan], "activation_spread_hours": [np.nan],
                          "synchrony": [0.1], "cotiming": [0.85], "limit_multiplier": [12.0],
                          "n_accounts": [30], "declared_org": [False], "institutional_domain": [False]})
    scaled = feature_scales(feats, ScoringConfig())
    assert scaled["cotiming"].iloc[0] == pytest.approx(0.85)
    assert scaled["control_evasion"].iloc[0] > 0
