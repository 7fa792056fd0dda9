"""Assembling a world: the plan (params.py) → blocks of accounts per pattern (people, institutions,
crowds, farms, kits) → keys, payments, requests (traffic.py) and truth; and writing it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm.synth import crowds, farms, institutions, kits, people, traffic
from keyfarm.synth._base import START, Context, concat_blocks, ids, take, vocabulary
from keyfarm.synth.params import BENIGN_PATTERNS, world_parameters

BENIGN_BUILDERS = {
    "campus_nat": institutions.campus_nat, "cgnat_mobile": people.cgnat_mobile,
    "cloud_region": institutions.cloud_region, "family_card": people.family_card, "org": institutions.org,
    "heavy_user": people.heavy_user, "ipv6_user": people.ipv6_user, "hackathon": institutions.hackathon,
    "ci_schedule": crowds.ci_schedule, "gateway_tenants": crowds.gateway_tenants,
    "enterprise_no_org": institutions.enterprise_no_org, "benchmark_runners": crowds.benchmark_runners,
    "lookalike_apps": crowds.lookalike_apps,
}
FARM_BUILDERS = {
    "naive": farms.naive, "card_rotation": farms.card_rotation, "proxy_rotation": farms.proxy_rotation,
    "ipv6_rotation": farms.ipv6_rotation, "slow_burn": farms.slow_burn, "prompt_only": kits.prompt_only,
    "tiny": farms.tiny, "mixed_prompts": kits.mixed_prompts, "hydra": farms.hydra,
    "aged_accounts": farms.aged_accounts, "job_queue": farms.job_queue, "cot_wrapper": kits.cot_wrapper,
    "diverse_prompts": kits.diverse_prompts,
}
# fewest accounts a chosen benign crowd gets, however small the world
_FLOOR = {"campus_nat": 45, "cgnat_mobile": 30, "cloud_region": 20, "family_card": 4, "org": 8,
          "heavy_user": 3, "ipv6_user": 20, "hackathon": 15, "ci_schedule": 20, "gateway_tenants": 12,
          "enterprise_no_org": 6, "benchmark_runners": 12, "lookalike_apps": 15}
DEFAULT_LIMIT = 100_000    # what a key without a declared limit may draw (the job's default)


def generate_world(n_keys: int, seed: int = 0, *, days: int = 3, requests_per_key: float = 10.0,
                   dirty_rows: int = 0, patterns=None, overrides: dict | None = None) -> dict[str, pd.DataFrame]:
    """A synthetic world: SCHEMA.md input tables `keys`, `accounts`, `payments`, `requests`, plus `truth`.

    Parameters
    ----------
    n_keys
        Exact number of keys (at least params.MIN_KEYS).
    seed
        Same seed, same bytes; the drawn parameters are `world_parameters(n_keys, seed, …)`.
    days, requests_per_key
        Days of request logs; mean request rows per key.
    dirty_rows
        Malformed request rows appended (for quarantine demos and tests).
    patterns
        Benign patterns and farm tactics to include (default: all of BENIGN_PATTERNS and
        FARM_TACTICS; `LEGACY_PATTERNS` gives the first generator's set). "plain" is always in.
    overrides
        Parameters pinned over the drawn ones (see world_parameters).

    Returns
    -------
    dict of DataFrames. `truth` has key_id, farm_id (null: benign), pattern, and group_id: the farm
    id for farm keys, for benign crowds the id of the unit that makes the crowd look coordinated
    (one campus, carrier, cloud region, household, org, company, ISP /48, hackathon, CI crowd,
    gateway, benchmark, framework template), null for keys in no group.
    """
    params = world_parameters(n_keys, seed, days=days, requests_per_key=requests_per_key, patterns=patterns,
                              overrides=overrides)
    rng = np.random.default_rng(seed)
    ctx = Context(rng=rng, params=params, vocab=vocabulary(np.random.default_rng([seed, 1])), days=days)
    acc = _accounts(ctx, n_keys)
    acc = take(acc, rng.permutation(len(acc["farm"])))     # no pattern order in ids
    n_acc = len(acc["farm"])
    account_ids = ids("acct_", n_acc, 0x51ED)

    k_acc = np.repeat(np.arange(n_acc), acc["n_keys"])
    key_created = acc["key_created"][k_acc] + rng.random(len(k_acc)) * acc["key_spread"][k_acc]
    limit = acc["limit"][k_acc]
    undeclared = (rng.random(len(k_acc)) < ctx.world["undeclared_limit_share"]) & \
        (acc["pattern"][k_acc] != "hackathon")
    effective = np.where(undeclared, DEFAULT_LIMIT, limit)
    key_ids = ids("key_", len(k_acc), 0x4B3)
    requests = traffic.requests(ctx, acc, k_acc, key_created, effective, key_ids)
    if dirty_rows:
        requests = pd.concat([requests, _dirty(requests, dirty_rows, rng)], ignore_index=True)

    keys = pd.DataFrame({"key_id": key_ids, "account_id": account_ids[k_acc], "created_at": _at(key_created),
                         "daily_token_limit": pd.array(np.where(undeclared, np.nan, limit.astype(float)),
                                                       dtype="Float64").astype("Int64")})
    accounts = pd.DataFrame({"account_id": account_ids, "created_at": _at(acc["created"]),
                             "email_domain": acc["email_domain"], "org_id": acc["org_id"]})
    cards = pd.concat([pd.DataFrame({"account_id": account_ids, "card": acc["card"]}),
                       pd.DataFrame({"account_id": account_ids, "card": acc["card2"]})], ignore_index=True)
    cards = cards[cards["card"] >= 0].drop_duplicates()
    payments = pd.DataFrame({"account_id": cards["account_id"].to_numpy(),
                             "payment_fingerprint": "pf_" + pd.Series(
                                 (cards["card"].to_numpy(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
                             ).map("{:016x}".format).to_numpy()})
    farm = acc["farm"][k_acc]
    farm_ids = ids("farm_", max(int(acc["farm"].max()) + 1, 1), 0xFA4)
    group = acc["group"][k_acc]
    group_ids = ids("grp_", max(ctx.next_group, 1), 0x6A0)
    truth = pd.DataFrame({
        "key_id": key_ids,
        "farm_id": np.where(farm >= 0, farm_ids[np.maximum(farm, 0)], None),
        "pattern": acc["pattern"][k_acc],
        "group_id": np.where(farm >= 0, farm_ids[np.maximum(farm, 0)],
                             np.where(group >= 0, group_ids[np.maximum(group, 0)], None)),
    })
    return {"keys": keys, "accounts": accounts, "payments": payments, "requests": requests, "truth": truth}


def _accounts(ctx: Context, n_keys: int) -> dict:
    """Every account of the world as one block: benign crowds, then plain (whose homes the hydra
    exits use), then the farms of the plan; plain accounts absorb the difference to n_keys."""
    params = ctx.params
    plan = params["farm_plan"]
    farm_keys = sum(e["n_accounts"] * (1 + e["two_key_share"]) for e in plan)
    kpa = np.asarray(params["world"]["keys_per_account_p"])
    mean_kpa = float(np.dot(np.arange(1, len(kpa) + 1), kpa))
    n_benign = max(n_keys - farm_keys, 0) / mean_kpa
    blocks = []
    for name in BENIGN_PATTERNS:
        if name == "plain" or name not in params["benign"]:
            continue
        count = max(int(round(params["benign"][name]["share"] * n_benign)), _FLOOR[name])
        blocks.append(BENIGN_BUILDERS[name](ctx, count))
    used = sum(int(b["n_keys"].sum()) for b in blocks)
    n_plain = int((n_keys - used - farm_keys) / mean_kpa * 1.04) + 50
    plain = people.plain(ctx, max(n_plain, 50))
    keep_homes = int(len(plain["farm"]) * 0.85)
    ctx.home_ips = plain["ip_lo"][:keep_homes, 0].copy()
    farm_blocks = [FARM_BUILDERS[e["tactic"]](ctx, e) for e in plan]
    used += sum(int(b["n_keys"].sum()) for b in farm_blocks)
    # plain accounts take the rest: drop accounts from the end, then add keys where short
    need = n_keys - used
    plain_keys = np.cumsum(plain["n_keys"])
    n_keep = int(np.searchsorted(plain_keys, need, side="left")) + 1
    n_keep = min(n_keep, len(plain_keys))
    plain = take(plain, np.arange(n_keep))
    excess = int(plain["n_keys"].sum()) - need
    if excess > 0:
        plain["n_keys"][-1] -= excess
        if plain["n_keys"][-1] < 1:
            raise ValueError("world too small for its patterns")
    elif excess < 0:
        if -excess > len(plain["n_keys"]) * 3:
            raise ValueError(f"a world of {n_keys} keys is too small for its patterns")
        add = np.zeros(len(plain["n_keys"]), np.int64)
        np.add.at(add, np.arange(-excess) % len(add), 1)
        plain["n_keys"] = plain["n_keys"] + add
    return concat_blocks(blocks + [plain] + farm_blocks)


def _at(seconds: np.ndarray) -> pd.Series:
    """Timestamps (UTC, whole seconds) from seconds relative to START."""
    return START + pd.to_timedelta(np.round(seconds), unit="s")


def _dirty(requests: pd.DataFrame, n: int, rng) -> pd.DataFrame:
    """Malformed request rows of every kind the loader must quarantine."""
    bad = requests.sample(n=min(n, len(requests)), random_state=int(rng.integers(2**31))).copy()
    kind = np.arange(len(bad)) % 4
    bad = bad.astype({"ts": object, "ip": object, "key_id": object, "prompt_tokens": object})
    bad.loc[kind == 0, "ip"] = "999.1.2.3"
    bad.loc[kind == 1, "key_id"] = "key_unknown"
    bad.loc[kind == 2, "ts"] = "not-a-time"
    bad.loc[kind == 3, "prompt_tokens"] = -5
    return bad


def _plain_strings(frame: pd.DataFrame) -> dict:
    """to_parquet's `schema` when `frame` holds Arrow-backed text (the continuation reads worlds so):
    those columns written as Arrow `string`, as Python-backed text is, so the file is the same
    bytes whichever way its text was held. Empty (pandas' own schema) otherwise."""
    import pyarrow as pa

    arrow = [isinstance(t, pd.StringDtype) and t.storage == "pyarrow" for t in frame.dtypes]
    if not any(arrow):
        return {}
    schema = pa.Schema.from_pandas(frame.iloc[:0], preserve_index=False)
    fields = [pa.field(f.name, pa.string()) if f.type == pa.large_string() else f for f in schema]
    return {"schema": pa.schema(fields)}


def write_world(world: dict[str, pd.DataFrame], out_dir: str | Path, *, params: dict | None = None) -> Path:
    """Write each table as <name>.parquet in out_dir (created if needed), and `params` (the drawn
    parameters, world_parameters(...)) as params.json when given."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in world.items():
        frame = frame.copy(deep=False)   # columns are replaced, never written into
        for col in frame.columns:
            if frame[col].dtype == object:
                frame[col] = frame[col].astype("string") if name != "requests" or col != "ts" \
                    else frame[col].astype(str)
        frame.to_parquet(out / f"{name}.parquet", index=False, **_plain_strings(frame))
    if params is not None:
        (out / "params.json").write_text(json.dumps(params, indent=1, sort_keys=True) + "\n")
    return out

