"""Generated worlds: deterministic, every pattern present, sharing structure as documented."""
from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from keyfarm.io import tables_from_frames
from keyfarm.synth import BENIGN_PATTERNS, FARM_TACTICS, generate_world, write_world


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes(tmp_path):
    a = write_world(generate_world(2500, seed=5, dirty_rows=4), tmp_path / "a")
    b = write_world(generate_world(2500, seed=5, dirty_rows=4), tmp_path / "b")
    assert _digest(a) == _digest(b)
    c = write_world(generate_world(2500, seed=6), tmp_path / "c")
    assert _digest(a)["requests.parquet"] != _digest(c)["requests.parquet"]


def test_every_pattern_and_tactic_appears(small_world):
    truth = small_world["truth"]
    assert set(truth["pattern"]) == set(BENIGN_PATTERNS) | set(FARM_TACTICS)
    assert truth.loc[truth["pattern"].isin(FARM_TACTICS), "farm_id"].notna().all()
    assert truth.loc[truth["pattern"].isin(BENIGN_PATTERNS), "farm_id"].isna().all()
    assert len(truth) == 3000 and truth["key_id"].is_unique


def test_world_loads_without_quarantine(small_world):
    tables = tables_from_frames(**{k: v for k, v in small_world.items() if k != "truth"})
    assert tables.quarantine_counts() == {}
    assert len(tables.requests) == len(small_world["requests"])


def test_dirty_rows_are_quarantined_and_counted():
    world = generate_world(2000, seed=3, dirty_rows=8)
    tables = tables_from_frames(**{k: v for k, v in world.items() if k != "truth"})
    assert tables.quarantine_counts() == {"requests": {"bad_timestamp": 2, "malformed_ip": 2,
                                                       "negative_value": 2, "unknown_key_id": 2}}


def _accounts_per_value(world, column):
    req = world["requests"].merge(world["keys"][["key_id", "account_id"]], on="key_id") \
        .merge(world["truth"], on="key_id")
    return req.groupby(["pattern", column])["account_id"].nunique().groupby("pattern").max()


def test_benign_traps_share_values_across_many_accounts(small_world):
    per_ip = _accounts_per_value(small_world, "ip")
    assert per_ip["campus_nat"] >= 100      # hundreds of students behind two egress IPs
    assert per_ip["cgnat_mobile"] >= 10     # carrier NAT pool
    per_fp = _accounts_per_value(small_world, "device_fingerprint")
    assert per_fp["plain"] >= 300           # the default SDK fingerprint everyone sends
    per_prompt = _accounts_per_value(small_world, "prompt")
    assert per_prompt["plain"] >= 300       # "hello"


def test_naive_farm_shares_card_ip_and_device(small_world):
    truth = small_world["truth"]
    naive = truth[truth["pattern"] == "naive"]
    farm = naive["farm_id"].iloc[0]
    keys = small_world["keys"].merge(truth, on="key_id")
    accounts = keys.loc[keys["farm_id"] == farm, "account_id"].unique()
    cards = small_world["payments"]
    assert cards[cards["account_id"].isin(accounts)]["payment_fingerprint"].value_counts().iloc[0] >= 0.9 * len(accounts)
    req = small_world["requests"].merge(keys[["key_id", "farm_id"]], on="key_id")
    farm_req = req[req["farm_id"] == farm]
    assert farm_req["ip"].nunique() == 1 and farm_req["device_fingerprint"].nunique() == 1


def test_farm_keys_run_near_their_limit(small_world):
    req = small_world["requests"].merge(small_world["truth"], on="key_id")
    req["tokens"] = req["prompt_tokens"] + req["completion_tokens"]
    req["day"] = req["ts"].dt.floor("D")
    daily = req.groupby(["key_id", "day"])["tokens"].sum().groupby("key_id").mean()
    keys = small_world["keys"].set_index("key_id")
    use = (daily / keys["daily_token_limit"].astype(float).reindex(daily.index)).dropna()
    truth = small_world["truth"].set_index("key_id")["farm_id"]
    farm_use = use[truth.reindex(use.index).notna()].median()
    benign_use = use[truth.reindex(use.index).isna()].median()
    assert farm_use > 0.5 > benign_use


def test_too_small_world_is_refused():
    with pytest.raises(ValueError, match="at least"):
        generate_world(100)
