"""Generated worlds: deterministic, every pattern present, each shaped as its docstring says."""
from __future__ import annotations

import hashlib
import ipaddress

import numpy as np
import pandas as pd
import pytest

from keyfarm.io import tables_from_frames
from keyfarm.synth import (BENIGN_PATTERNS, FARM_TACTICS, LEGACY_PATTERNS, MIN_KEYS, generate_world,
                           world_parameters, write_world)

N_KEYS = 6000    # every pattern is present from MIN_KEYS on; this size gives the crowds room


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def world():
    return generate_world(N_KEYS, seed=7)


@pytest.fixture(scope="module")
def req(world):
    """Requests with account, pattern, farm and group of their key, and the key's declared limit."""
    keys = world["keys"].merge(world["truth"], on="key_id")
    out = world["requests"].merge(keys, on="key_id")
    out["tokens"] = out["prompt_tokens"] + out["completion_tokens"]
    return out


def _of(req, pattern):
    return req[req["pattern"] == pattern]


def _cards(world, accounts):
    pay = world["payments"]
    return pay[pay["account_id"].isin(accounts)]


# ---------------------------------------------------------------- determinism and contents

def test_same_seed_same_bytes_other_seed_other_world(tmp_path):
    a = write_world(generate_world(2500, seed=5, dirty_rows=4), tmp_path / "a")
    b = write_world(generate_world(2500, seed=5, dirty_rows=4), tmp_path / "b")
    assert _digest(a) == _digest(b)
    c = write_world(generate_world(2500, seed=6), tmp_path / "c")
    assert _digest(a)["requests.parquet"] != _digest(c)["requests.parquet"]


def test_two_seeds_draw_different_parameters():
    one, two = world_parameters(50_000, 1), world_parameters(50_000, 2)
    assert world_parameters(50_000, 1) == one
    for section in ("world", "benign", "farms"):
        assert one[section] != two[section], section
    assert [f["n_accounts"] for f in one["farm_plan"]] != [f["n_accounts"] for f in two["farm_plan"]]


def test_write_world_writes_the_drawn_parameters(tmp_path):
    import json
    params = world_parameters(2000, 3)
    out = write_world(generate_world(2000, 3), tmp_path / "w", params=params)
    assert json.loads((out / "params.json").read_text()) == json.loads(json.dumps(params))


def test_every_pattern_is_present_from_the_smallest_world_on():
    truth = generate_world(MIN_KEYS, seed=2)["truth"]
    assert set(truth["pattern"]) == set(BENIGN_PATTERNS) | set(FARM_TACTICS)
    assert len(truth) == MIN_KEYS and truth["key_id"].is_unique


def test_truth_names_farms_and_groups(world):
    truth = world["truth"]
    farm = truth["pattern"].isin(FARM_TACTICS)
    assert truth.loc[farm, "farm_id"].notna().all() and truth.loc[~farm, "farm_id"].isna().all()
    assert (truth.loc[farm, "group_id"] == truth.loc[farm, "farm_id"]).all()
    grouped = truth[~farm].groupby("pattern")["group_id"].apply(lambda g: g.notna().mean())
    assert grouped[["plain", "heavy_user"]].max() == 0
    assert grouped.drop(["plain", "heavy_user"]).min() == 1
    assert truth.groupby("farm_id")["pattern"].nunique().max() == 1


def test_patterns_restrict_the_world_and_overrides_pin_parameters():
    world = generate_world(3000, seed=4, patterns=LEGACY_PATTERNS,
                           overrides={"world": {"popular_prompt_p": 0.0, "farm_key_share": 0.02}})
    assert set(world["truth"]["pattern"]) == set(LEGACY_PATTERNS)
    benign = world["requests"].merge(world["truth"], on="key_id").query("farm_id.isna()")
    assert not benign["prompt"].isin(["hello", "ping", "Tell me a joke."]).any()
    with pytest.raises(ValueError, match="no such parameter"):
        world_parameters(3000, 4, overrides={"world": {"no_such": 1}})
    with pytest.raises(ValueError, match="unknown patterns"):
        world_parameters(3000, 4, patterns=["plain", "no_such"])


def test_world_loads_without_quarantine(world):
    tables = tables_from_frames(**{k: v for k, v in world.items() if k != "truth"})
    assert tables.quarantine_counts() == {}
    assert len(tables.requests) == len(world["requests"])


def test_dirty_rows_are_quarantined_and_counted():
    world = generate_world(2000, seed=3, dirty_rows=8)
    tables = tables_from_frames(**{k: v for k, v in world.items() if k != "truth"})
    assert tables.quarantine_counts() == {"requests": {"bad_timestamp": 2, "malformed_ip": 2,
                                                       "negative_value": 2, "unknown_key_id": 2}}


def test_too_small_world_is_refused():
    with pytest.raises(ValueError, match="at least"):
        generate_world(100)


def test_requests_never_precede_their_key(world):
    first = world["requests"].groupby("key_id")["ts"].min()
    created = world["keys"].set_index("key_id")["created_at"].reindex(first.index)
    assert (first >= created).all()


# ---------------------------------------------------------------- no constant to match

def test_parameters_are_wide_and_not_at_a_cap():
    plans = [world_parameters(1_000_000, s) for s in (1, 2, 3)]
    for p in plans:
        sizes = [f["n_accounts"] for f in p["farm_plan"]]
        assert max(sizes) >= 2000                      # beyond every default hub cap
        assert not {40, 50, 60} & {max(sizes)}
        assert {f["device"] for f in p["farm_plan"]} >= {"custom", "popular", "browser", "rotate"}
    lows = [f["usage"][0] for p in plans for f in p["farm_plan"] if f["tactic"] != "job_queue"]
    assert max(lows) - min(lows) > 0.3                 # no narrow farm usage band
    assert len({round(p["world"]["benign_usage_beta"][0], 2) for p in plans}) == 3


# ---------------------------------------------------------------- benign crowds

def test_benign_traffic_holds_popular_and_placeholder_values(req):
    benign = req[req["farm_id"].isna()]
    per_fp = benign.groupby("device_fingerprint", dropna=False)["account_id"].nunique()
    assert per_fp.max() >= 300                                  # the default SDK everyone sends
    assert {"", "unknown", "-"} <= set(per_fp.index.dropna()) and benign["device_fingerprint"].isna().any()
    assert benign["user_agent"].isna().any()
    assert benign.loc[benign["prompt"] == "hello", "account_id"].nunique() >= 100


def test_campus_and_carrier_nat_share_addresses(req):
    per_ip = req.groupby(["pattern", "ip"])["account_id"].nunique().groupby("pattern").max()
    assert per_ip["campus_nat"] >= 20 and per_ip["cgnat_mobile"] >= 5
    cgnat = ipaddress.ip_network("100.64.0.0/10")
    assert all(ipaddress.ip_address(ip) in cgnat for ip in _of(req, "cgnat_mobile")["ip"].unique())


def test_hackathon_opens_together_and_draws_less_than_one_limit(world, req):
    hack = _of(req, "hackathon")
    for group, rows in hack.groupby("group_id"):
        assert rows["account_id"].nunique() >= 12
        assert rows["tokens"].sum() < rows["daily_token_limit"].min()        # all days, all keys
        created = world["accounts"].set_index("account_id").loc[rows["account_id"].unique(), "created_at"]
        assert created.max() - created.min() <= pd.Timedelta(hours=11)
        assert rows["ip"].value_counts(normalize=True).head(2).sum() > 0.8   # the venue
        assert rows["prompt"].value_counts().iloc[0] > 1 and \
            rows.groupby("prompt")["account_id"].nunique().max() >= 3        # the assignment


def test_ci_jobs_fire_at_popular_clock_minutes_from_one_cloud(world, req):
    ci = _of(req, "ci_schedule")
    minute = ci["ts"].dt.minute + ci["ts"].dt.second / 60
    on_clock = ((minute % 15) < 2.5).mean()
    assert on_clock > 0.5
    plain_minute = _of(req, "plain")["ts"].dt.minute
    assert ((plain_minute % 15) < 2.5).mean() < 0.3
    for group, rows in ci.groupby("group_id"):
        assert rows["device_fingerprint"].nunique() == 1           # the same SDK
        assert rows["ip"].str.match(r"^(52|34)\.").all()           # the cloud's rotating addresses
    cards = _cards(world, ci["account_id"].unique()).merge(
        world["keys"][["account_id"]].drop_duplicates(), on="account_id")
    assert cards["payment_fingerprint"].nunique() >= 0.3 * ci["account_id"].nunique()   # own cards


def test_gateway_tenants_share_exits_and_prefix_but_not_cards_or_history(world, req):
    gw = _of(req, "gateway_tenants")
    accounts = world["accounts"].set_index("account_id")
    for group, rows in gw.groupby("group_id"):
        assert rows["ip"].nunique() <= 8 and rows["device_fingerprint"].nunique() == 1
        prefix = rows["prompt"].dropna().str.split().str[:6].str.join(" ").value_counts()
        assert prefix.iloc[0] >= 0.4 * rows["prompt"].notna().sum()
        acc = rows["account_id"].unique()
        cards = _cards(world, acc)
        assert cards.groupby("payment_fingerprint")["account_id"].nunique().max() == 1
        created = accounts.loc[acc, "created_at"]
        assert created.max() - created.min() > pd.Timedelta(days=30)


def test_enterprise_without_org_shares_one_card_in_business_hours(world, req):
    ent = _of(req, "enterprise_no_org")
    accounts = world["accounts"].set_index("account_id")
    assert accounts.loc[ent["account_id"].unique(), "org_id"].isna().all()
    for group, rows in ent.groupby("group_id"):
        cards = _cards(world, rows["account_id"].unique())
        assert cards["payment_fingerprint"].nunique() == 1
    assert (ent["ts"].dt.dayofweek < 5).mean() > 0.9


def test_benchmark_runners_send_the_same_prompts_verbatim_with_their_own_cards(world, req):
    bench = _of(req, "benchmark_runners")
    for group, rows in bench.groupby("group_id"):
        shared = rows.groupby("prompt")["account_id"].nunique()
        assert (shared >= 3).sum() >= 20                  # many of the benchmark's items, verbatim
        cards = _cards(world, rows["account_id"].unique())
        assert cards["payment_fingerprint"].nunique() >= rows["account_id"].nunique() / 3


def test_lookalike_apps_share_a_template_not_a_prompt(req):
    apps = _of(req, "lookalike_apps").dropna(subset=["prompt"])
    apps = apps[apps["prompt"].str.split().str.len() > 10]
    for group, rows in apps.groupby("group_id"):
        words = rows["prompt"].str.split()
        assert words.str[:2].str.join(" ").nunique() == 1         # the framework's template
        assert words.str[2].nunique() >= 3                         # each app's own name
        assert rows.groupby("prompt")["account_id"].nunique().max() <= 2


# ---------------------------------------------------------------- farms

def test_naive_farm_shares_card_ip_and_device(world, req):
    naive = _of(req, "naive")
    for farm, rows in naive.groupby("farm_id"):
        cards = _cards(world, rows["account_id"].unique())
        assert cards["payment_fingerprint"].nunique() == 1
        assert rows["ip"].nunique() == 1 and rows["device_fingerprint"].nunique() == 1


def test_hydra_hides_in_home_addresses_of_real_users(world, req):
    hydra = _of(req, "hydra")
    assert hydra["account_id"].nunique() >= 100
    benign_ips = set(req.loc[req["farm_id"].isna(), "ip"])
    exits = hydra["ip"].unique()
    assert np.mean([ip in benign_ips for ip in exits]) > 0.8
    per_exit = hydra.groupby("ip")["account_id"].nunique()
    assert per_exit.mean() > 1.5                                   # exits are co-used by the farm
    cards = _cards(world, hydra["account_id"].unique())
    assert cards.groupby("payment_fingerprint")["account_id"].nunique().max() == 1
    prompts = hydra.dropna(subset=["prompt"])
    prompts = prompts[~prompts["prompt"].str.len().lt(40)]         # popular prompts are short
    assert prompts.groupby("prompt")["account_id"].nunique().max() == 1
    assert hydra["ts"].dt.hour.nunique() == 24
    daily = hydra.groupby(["key_id", hydra["ts"].dt.floor("D")])["tokens"].sum().groupby("key_id").mean()
    limit = hydra.groupby("key_id")["daily_token_limit"].first().astype(float)
    assert (daily / limit).median() > 0.6


def test_aged_accounts_were_opened_apart_and_activated_together(world, req):
    aged = _of(req, "aged_accounts")
    keys = world["keys"].set_index("key_id")
    accounts = world["accounts"].set_index("account_id")
    acc = aged["account_id"].unique()
    created = accounts.loc[acc, "created_at"]
    assert created.max() - created.min() > pd.Timedelta(days=30)
    key_created = keys.loc[aged["key_id"].unique(), "created_at"]
    assert key_created.max() - key_created.min() < pd.Timedelta(hours=13)
    first = aged.groupby("account_id")["ts"].min()
    assert first.max() - first.min() < pd.Timedelta(hours=14)


def test_job_queue_stays_in_carrier_nat_far_below_limits_in_shared_slots(world, req):
    jq = _of(req, "job_queue")
    cgnat = ipaddress.ip_network("100.64.0.0/10")
    assert all(ipaddress.ip_address(ip) in cgnat for ip in jq["ip"].unique())
    day = jq["ts"].dt.floor("D")
    daily = jq.groupby(["key_id", day])["tokens"].sum()
    limit = jq.groupby("key_id")["daily_token_limit"].first().astype(float)
    use = daily / limit.reindex(daily.index.get_level_values(0)).to_numpy()
    assert use.max() < 0.25                                      # each far below its limit
    together = jq.groupby(day)["tokens"].sum().max() / limit.median()
    assert together > 1.5                                        # together more than one limit
    per_card = _cards(world, jq["account_id"].unique()).groupby("payment_fingerprint")["account_id"].nunique()
    assert per_card.max() <= 6 and (per_card >= 2).any()         # a few accounts per card
    # the same irregular slots: most requests share their minute with another of the farm's accounts
    minute = jq["ts"].dt.floor("min")
    busy = jq.groupby(minute)["account_id"].transform("nunique")
    assert (busy >= 2).mean() > 0.7
    plain = _of(req, "plain").sample(len(jq), random_state=1)
    assert (plain.groupby(plain["ts"].dt.floor("min"))["account_id"].transform("nunique") >= 2).mean() < 0.5


def test_cot_wrapper_wraps_distinct_questions(req):
    cot = _of(req, "cot_wrapper").dropna(subset=["prompt"])
    for farm, rows in cot.groupby("farm_id"):
        long = rows[rows["prompt"].str.split().str.len() > 15]
        assert len(long) >= 0.9 * len(rows)
        assert long["prompt"].str.split().str[:8].str.join(" ").nunique() == 1    # one wrapper
        assert long["prompt"].nunique() >= 0.8 * len(long)                          # distinct questions


def test_diverse_prompts_share_no_prompt_but_something_else(world, req):
    div = _of(req, "diverse_prompts")
    for farm, rows in div.groupby("farm_id"):
        assert rows.dropna(subset=["prompt"]).groupby("prompt")["account_id"].nunique().max() == 1
        per_card = _cards(world, rows["account_id"].unique()).groupby("payment_fingerprint")["account_id"].nunique()
        per_ip = rows.groupby("ip")["account_id"].nunique()
        per_dev = rows.groupby("device_fingerprint")["account_id"].nunique()
        assert max(per_card.max(), per_ip.max(), per_dev.max()) >= 2


def test_every_farm_draws_more_than_one_limit(req):
    day = req["ts"].dt.floor("D")
    farms = req[req["farm_id"].notna()]
    peak = farms.groupby(["farm_id", day[farms.index]])["tokens"].sum().groupby("farm_id").max()
    limit = farms.groupby("farm_id")["daily_token_limit"].median().astype(float)
    assert (peak / limit > 1.0).mean() > 0.9
