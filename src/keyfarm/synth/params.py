"""The parameters of a world, drawn per seed from wide ranges before anything is built.

`world_parameters(n_keys, seed)` is the whole plan: world-wide settings (limit tiers, usage curve,
client mix, regions), per benign pattern its share and group-size law, per farm tactic its size
range, and the list of farms with each one's own draws (size, usage band, creation spread, clock,
synchrony, device camouflage, cards and addresses). Nothing the detector could match is a
constant: every number here moves with the seed. The plan is JSON (`params.json` beside a world).
"""
from __future__ import annotations

import numpy as np

BENIGN_PATTERNS = ("plain", "campus_nat", "cgnat_mobile", "cloud_region", "family_card", "org",
                   "heavy_user", "ipv6_user", "hackathon", "ci_schedule", "gateway_tenants",
                   "enterprise_no_org", "benchmark_runners", "lookalike_apps")
FARM_TACTICS = ("naive", "card_rotation", "proxy_rotation", "ipv6_rotation", "slow_burn",
                "prompt_only", "tiny", "mixed_prompts", "hydra", "aged_accounts", "job_queue",
                "cot_wrapper", "diverse_prompts")
# The patterns of the first generator (before issue 13): what today's detector was built on.
LEGACY_PATTERNS = ("plain", "campus_nat", "cgnat_mobile", "cloud_region", "family_card", "org",
                   "heavy_user", "ipv6_user", "naive", "card_rotation", "proxy_rotation",
                   "ipv6_rotation", "slow_burn", "prompt_only", "tiny", "mixed_prompts")
MIN_KEYS = 2000

# What the first detector assumes beyond the first generator's patterns: benign keys use about 12 %
# of their limit (Beta(1.2, 9)), and heavy use is the `heavy_user` pattern's alone (no power users
# inside households, campuses or orgs); every member of an org declares it; popular prompts are popular
# enough to be hubs (30 % of benign requests: even the twelfth most popular prompt reaches more
# accounts than caps.prompt, whereas on a few dozen accounts it links them like a kit); and farms
# stay below the hub caps (35 accounts; a farm's address or client on more accounts than caps.ip /
# caps.device is a hub and links nothing). The generator draws all four per world; the
# detection-quality tests guard the first detector on the world it was built for, while
# scripts/quality.py measures it on the drawn worlds.
_UNDER_CAPS = {"accounts": [6, 35]}
LEGACY_OVERRIDES = {
    "world": {"benign_usage_beta": [1.2, 9.0], "power_user_share": 0.0, "popular_prompt_p": 0.3},
    "benign": {"org": {"declared_share": 1.0}},
    "farms": {t: _UNDER_CAPS for t in ("naive", "card_rotation", "proxy_rotation", "ipv6_rotation",
                                       "slow_burn", "prompt_only", "mixed_prompts")},
}

# (share of benign accounts low, high) per benign crowd; "plain" takes the rest
_BENIGN_SHARE = {"campus_nat": (0.02, 0.06), "cgnat_mobile": (0.04, 0.10), "cloud_region": (0.03, 0.07),
                 "family_card": (0.02, 0.04), "org": (0.03, 0.06), "heavy_user": (0.01, 0.03),
                 "ipv6_user": (0.03, 0.08), "hackathon": (0.004, 0.012), "ci_schedule": (0.005, 0.015),
                 "gateway_tenants": (0.005, 0.02), "enterprise_no_org": (0.003, 0.01),
                 "benchmark_runners": (0.003, 0.01), "lookalike_apps": (0.005, 0.015)}
# accounts per farm: (low end drawn in, high end drawn in) per tactic; hydra is sized apart
_FARM_SIZE = {"naive": ((4, 10), (15, 60)), "card_rotation": ((6, 12), (20, 60)),
              "proxy_rotation": ((6, 12), (20, 70)), "ipv6_rotation": ((5, 10), (15, 45)),
              "slow_burn": ((4, 8), (12, 35)), "prompt_only": ((5, 10), (15, 45)), "tiny": ((3, 3), (4, 5)),
              "mixed_prompts": ((6, 12), (15, 45)), "aged_accounts": ((6, 12), (20, 70)),
              "job_queue": ((25, 50), (80, 400)), "cot_wrapper": ((8, 15), (25, 90)),
              "diverse_prompts": ((6, 12), (15, 55))}
_HYDRA_SHARE = (0.0035, 0.007)   # of benign accounts: ≥ 2,000 accounts at 1M keys
_HYDRA_FLOOR = 100


def _u(rng, lo, hi) -> float:
    return round(float(rng.uniform(lo, hi)), 4)


def world_parameters(n_keys: int, seed: int = 0, *, days: int = 3, requests_per_key: float = 10.0,
                     patterns=None, overrides: dict | None = None) -> dict:
    """Every drawn parameter of the world `generate_world(n_keys, seed, days=…, patterns=…)` builds.

    Parameters
    ----------
    n_keys, seed, days, requests_per_key
        As for generate_world; the plan is drawn from its own random stream of `seed`.
    patterns
        Benign patterns and farm tactics to include (default: all); "plain" is always included.
    overrides
        Nested dict merged into the drawn plan after drawing (e.g. ``{"world":
        {"benign_usage_beta": [1.2, 9.0]}}``): pins chosen parameters, for sweeps and for tests
        that need a world of known shape. Every key must exist in the plan.

    Returns
    -------
    dict (JSON-serialisable): "world", "benign", "farms" (tactic ranges) and "farm_plan" (one
    entry per farm, in farm order).
    """
    if n_keys < MIN_KEYS:
        raise ValueError(f"a world needs at least {MIN_KEYS} keys to hold its patterns")
    chosen = _chosen(patterns)
    rng = np.random.default_rng([seed, 0x9A7A])
    tiers_base = float(rng.choice([20_000, 25_000, 40_000, 50_000, 60_000, 100_000]))
    tiers = [int(tiers_base * m) for m in (1, rng.choice([2, 3]), rng.choice([5, 8]), rng.choice([20, 40]))]
    tier_p = rng.dirichlet([4, 3, 1.5, 0.4]).round(4)
    tier_p[0] += 1 - tier_p.sum()
    p1 = _u(rng, 0.6, 0.9)
    p2 = _u(rng, 0.5, 0.8) * (1 - p1)
    kpa = [p1, round(p2, 4), round((1 - p1 - p2) * 0.7, 4)]
    kpa.append(round(1 - sum(kpa), 4))
    peaks = sorted(float(round(x, 1)) for x in rng.uniform(0, 24, size=3))
    world = {
        "farm_key_share": _u(rng, 0.02, 0.05),
        "keys_per_account_p": kpa,
        "limit_tiers": tiers, "limit_tier_p": [float(x) for x in tier_p],
        "undeclared_limit_share": _u(rng, 0.0, 0.1),
        "benign_usage_beta": [_u(rng, 0.7, 2.0), _u(rng, 3.0, 12.0)],
        "power_user_share": _u(rng, 0.01, 0.06),
        "card_share": _u(rng, 0.55, 0.95), "second_card_share": _u(rng, 0.02, 0.12),
        "browser_share": _u(rng, 0.1, 0.4), "sdk_zipf": _u(rng, 0.8, 1.8),
        "placeholder_device_share": _u(rng, 0.01, 0.08), "missing_ua_share": _u(rng, 0.005, 0.05),
        "popular_prompt_p": _u(rng, 0.1, 0.4),
        "regions": {"peak_utc": peaks, "weights": [float(x) for x in rng.dirichlet([2, 2, 2]).round(4)]},
        "diurnal_width": sorted([_u(rng, 1.5, 3.0), _u(rng, 3.5, 6.0)]),
        "max_account_age_days": _u(rng, 200, 900),
        "requests_per_key": requests_per_key,
    }
    world["regions"]["weights"][0] = round(1 - sum(world["regions"]["weights"][1:]), 4)
    benign = {}
    for name, (lo, hi) in _BENIGN_SHARE.items():
        if name in chosen:
            benign[name] = {"share": _u(rng, lo, hi), **_benign_shape(rng, name)}
        else:
            rng.uniform(), _benign_shape(rng, name)   # same draws whatever the subset
    farms = {t: {"accounts": [int(rng.integers(*lo, endpoint=True)), int(rng.integers(*hi, endpoint=True))]}
             for t, (lo, hi) in _FARM_SIZE.items()}
    weights = rng.dirichlet(np.ones(len(FARM_TACTICS)))
    farms["hydra"] = {"share_of_benign_accounts": _u(rng, *_HYDRA_SHARE)}
    drawn = {"n_keys": int(n_keys), "seed": int(seed), "days": int(days), "patterns": sorted(chosen),
             "world": world, "benign": benign, "farms": farms}
    overrides = dict(overrides or {})
    late = overrides.pop("farm_plan", None)
    _merge(drawn, overrides, "")       # pinned before the plan, so the plan follows them
    n_farm_keys = int(round(n_keys * world["farm_key_share"]))
    kpa = world["keys_per_account_p"]
    n_benign_accounts = (n_keys - n_farm_keys) / float(np.dot(np.arange(1, len(kpa) + 1), kpa))
    drawn["farm_plan"] = _farm_plan(rng, [t for t in FARM_TACTICS if t in chosen], farms, weights,
                                    n_farm_keys, n_benign_accounts, days)
    if late is not None:
        drawn["farm_plan"] = late
    return drawn


def _merge(into: dict, changes: dict, where: str) -> None:
    for key, value in changes.items():
        if key not in into:
            raise ValueError(f"override {where}{key}: no such parameter")
        if isinstance(value, dict) and isinstance(into[key], dict):
            _merge(into[key], value, f"{where}{key}.")
        else:
            into[key] = value


def _chosen(patterns) -> set:
    if patterns is None:
        return set(BENIGN_PATTERNS) | set(FARM_TACTICS)
    chosen = set(patterns) | {"plain"}
    unknown = chosen - set(BENIGN_PATTERNS) - set(FARM_TACTICS)
    if unknown:
        raise ValueError(f"unknown patterns: {', '.join(sorted(unknown))}")
    return chosen


def _benign_shape(rng, name: str) -> dict:
    """Group-size law and behaviour of one benign crowd (drawn whether or not it is chosen)."""
    if name == "campus_nat":
        return {"median": _u(rng, 60, 300), "sigma": _u(rng, 0.3, 0.9), "egress_ips": [1, int(rng.integers(2, 5))],
                "institutional_share": _u(rng, 0.5, 1.0)}
    if name == "cgnat_mobile":
        return {"accounts_per_address": _u(rng, 4, 16), "carriers": int(rng.integers(2, 6))}
    if name == "cloud_region":
        return {"median": _u(rng, 80, 400), "sigma": _u(rng, 0.3, 0.8), "dominant_sdk_share": _u(rng, 0.4, 0.95)}
    if name == "family_card":
        return {"sizes_p": [float(x) for x in rng.dirichlet([5, 2, 1]).round(4)]}
    if name == "org":
        return {"median": _u(rng, 8, 40), "sigma": _u(rng, 0.4, 1.0), "company_card_share": _u(rng, 0.3, 0.9),
                "declared_share": _u(rng, 0.7, 1.0)}
    if name == "heavy_user":
        return {"usage": sorted([_u(rng, 0.4, 0.7), _u(rng, 0.85, 1.0)]), "round_the_clock_share": _u(rng, 0.1, 0.6)}
    if name == "ipv6_user":
        return {"accounts_per_48": _u(rng, 8, 40)}
    if name == "hackathon":
        return {"median": _u(rng, 25, 90), "sigma": _u(rng, 0.3, 0.7), "creation_hours": sorted([_u(rng, 0.5, 2), _u(rng, 3, 10)]),
                "budget_of_one_limit": sorted([_u(rng, 0.05, 0.3), _u(rng, 0.4, 0.75)]),
                "assignment_prompts": [int(rng.integers(3, 8)), int(rng.integers(10, 40))],
                "assignment_p": _u(rng, 0.3, 0.9), "card_share": _u(rng, 0.1, 0.8)}
    if name == "ci_schedule":
        return {"companies_median": _u(rng, 12, 60), "accounts_per_company": [1, int(rng.integers(2, 5))],
                "jitter_seconds": sorted([_u(rng, 0.5, 5), _u(rng, 20, 120)]), "scheduled_share": _u(rng, 0.6, 1.0)}
    if name == "gateway_tenants":
        return {"median": _u(rng, 20, 150), "sigma": _u(rng, 0.4, 1.0), "egress_ips": [1, int(rng.integers(3, 9))],
                "prefix_words": [int(rng.integers(8, 15)), int(rng.integers(20, 50))], "prefix_share": _u(rng, 0.6, 1.0)}
    if name == "enterprise_no_org":
        return {"median": _u(rng, 6, 30), "sigma": _u(rng, 0.3, 0.8), "office_ips": [1, int(rng.integers(2, 5))],
                "corporate_device_share": _u(rng, 0.0, 0.8)}
    if name == "benchmark_runners":
        return {"labs_median": _u(rng, 5, 25), "accounts_per_lab": [1, int(rng.integers(2, 4))],
                "benchmark_prompts": [int(rng.integers(150, 300)), int(rng.integers(400, 900))],
                "benchmark_share": _u(rng, 0.6, 1.0)}
    if name == "lookalike_apps":
        return {"apps_median": _u(rng, 10, 60), "sigma": _u(rng, 0.3, 0.9),
                "template_words": [int(rng.integers(15, 25)), int(rng.integers(30, 60))],
                "question_words": [int(rng.integers(3, 8)), int(rng.integers(12, 30))]}
    return {}


def _farm_plan(rng, tactics: list[str], farms: dict, weights, n_farm_keys: int, n_benign_accounts: float,
               days: int) -> list[dict]:
    """One entry per farm: one farm of each chosen tactic first, then tactics by the world's
    weights until the farm key budget is spent."""
    plan = []
    keys = 0.0
    if not tactics:
        return plan
    # a hydra is hundreds to thousands of accounts: after the first, few and smaller ones, so one
    # tactic does not hold most of the farm keys
    w = np.array([weights[FARM_TACTICS.index(t)] * (0.1 if t == "hydra" else 1.0) for t in tactics])
    w = w / w.sum()
    while keys < n_farm_keys or len(plan) < len(tactics):
        tactic = tactics[len(plan)] if len(plan) < len(tactics) else tactics[rng.choice(len(tactics), p=w)]
        if tactic == "hydra":
            share = farms["hydra"]["share_of_benign_accounts"] if len(plan) < len(tactics) else \
                rng.uniform(0.1, 0.5) * farms["hydra"]["share_of_benign_accounts"]
            n_acc = max(_HYDRA_FLOOR, int(round(share * n_benign_accounts)))
        else:
            lo, hi = farms[tactic]["accounts"]
            n_acc = int(round(np.exp(rng.uniform(np.log(lo), np.log(max(hi, lo) + 0.999)))))
        entry = {"farm": len(plan), "tactic": tactic, "n_accounts": n_acc, **_camouflage(rng, tactic, days)}
        keys += n_acc * (1 + entry["two_key_share"])
        plan.append(entry)
    return plan


_DEVICE_MODES = ("custom", "popular", "browser", "rotate")


def _camouflage(rng, tactic: str, days: int) -> dict:
    """A farm's own draws: usage band, keys, creation, clock, synchrony and device camouflage."""
    lo = _u(rng, 0.3, 0.85)
    usage = [lo, round(min(0.99, lo + float(rng.uniform(0.05, 0.35))), 4)]
    device_p = {"naive": (1, 0, 0, 0), "tiny": (0.6, 0.4, 0, 0), "card_rotation": (0.5, 0.4, 0, 0.1),
                "proxy_rotation": (0.6, 0.2, 0, 0.2), "ipv6_rotation": (0.5, 0.3, 0.1, 0.1),
                "slow_burn": (0.3, 0.5, 0.1, 0.1), "prompt_only": (0, 0.5, 0.5, 0),
                "mixed_prompts": (0.4, 0.4, 0.1, 0.1), "hydra": (0.2, 0.4, 0.2, 0.2),
                "aged_accounts": (0.3, 0.4, 0.1, 0.2), "job_queue": (0.2, 0.6, 0, 0.2),
                "cot_wrapper": (0.3, 0.3, 0.2, 0.2), "diverse_prompts": (0.4, 0.3, 0.1, 0.2)}[tactic]
    entry = {
        "usage": usage,
        "two_key_share": _u(rng, 0.0, 0.5),
        "creation_spread_hours": round(float(np.exp(rng.uniform(np.log(0.3), np.log(96)))), 2),
        "clock": "24h" if rng.random() < 0.6 else "diurnal",
        "slot_share": _u(rng, 0.0, 0.9),
        "slots_per_day": int(np.exp(rng.uniform(np.log(6), np.log(200)))),
        "jitter_seconds": round(float(np.exp(rng.uniform(np.log(3), np.log(900)))), 1),
        "device": str(rng.choice(_DEVICE_MODES, p=device_p)),
        "limit_tier": int(rng.integers(0, 3)) if rng.random() < 0.7 else -1,   # -1: whatever each account has
        "rate": _u(rng, 1.0, 3.0),
        "n_ips": int(rng.integers(1, 6)),
        "accounts_per_card": int(rng.integers(1, 5)),
    }
    if tactic == "slow_burn":
        entry["creation_spread_hours"] = round(float(rng.uniform(14, 120)) * 24, 1)
        entry["usage"] = [_u(rng, 0.2, 0.5), _u(rng, 0.55, 0.9)]
    if tactic == "aged_accounts":
        entry["creation_spread_hours"] = round(float(rng.uniform(60, 500)) * 24, 1)
        entry["activation_hours"] = _u(rng, 0.5, 12)
        entry["activation_at_hours"] = _u(rng, 0, max(days * 24 - 24, 1))
        entry["infra"] = str(rng.choice(["datacenter", "proxy_ring"]))
    if tactic == "hydra":
        entry["usage"] = [_u(rng, 0.7, 0.88), _u(rng, 0.9, 0.99)]
        entry["clock"] = "24h"
        entry["exits_per_account"] = _u(rng, 0.3, 2.0)
        entry["creation_spread_hours"] = round(float(np.exp(rng.uniform(np.log(6), np.log(240)))), 1)
    if tactic == "job_queue":
        entry["usage"] = [_u(rng, 0.005, 0.03), _u(rng, 0.05, 0.15)]
        entry["slot_share"] = 1.0
        entry["jitter_seconds"] = _u(rng, 1, 45)
        entry["slots_per_day"] = int(rng.integers(20, 150))
        entry["accounts_per_card"] = int(rng.integers(2, 6))
        entry["creation_spread_hours"] = round(float(np.exp(rng.uniform(np.log(2), np.log(2000)))), 1)
        entry["cgnat_addresses"] = int(rng.integers(3, 40))
    if tactic == "cot_wrapper":
        entry["wrapper_words"] = [int(rng.integers(18, 30)), int(rng.integers(35, 70))]
        entry["question_words"] = [int(rng.integers(4, 8)), int(rng.integers(10, 25))]
    if tactic == "diverse_prompts":
        entry["shares"] = [str(x) for x in rng.choice(["card", "ip", "device"], size=int(rng.integers(1, 3)),
                                                       replace=False)]
        if entry["device"] not in ("custom", "rotate") and "device" in entry["shares"]:
            entry["device"] = "custom"
    if tactic == "prompt_only":
        entry["slot_share"] = _u(rng, 0.2, 0.9)
        entry["edit"] = _u(rng, 0.03, 0.15)
    if tactic in ("mixed_prompts", "naive", "card_rotation", "proxy_rotation", "tiny", "ipv6_rotation"):
        entry["edit"] = _u(rng, 0.03, 0.15)
    if tactic in ("naive", "tiny"):   # one script runs every account in the same runs
        entry["slot_share"] = 1.0
    return entry
