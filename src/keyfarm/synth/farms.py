"""Farm tactics that hide behind infrastructure: one actor, many accounts, each kept under its own
limit while together they draw many. Each tactic's docstring says what it stands for and which
evidence of common control still gives it away; everything else (size, usage band, clock,
synchrony, device camouflage, tiers, cards) is drawn per farm in the plan (see params.py).
"""
from __future__ import annotations

import numpy as np

from keyfarm.synth._base import (DAY, DIURNAL, FARM_UA, HOUR, POPULAR_SDK, POPULAR_UA, UNIFORM,
                                 BROWSER_UA, Context, carrier_pool, datacenter_ipv4, new_block,
                                 residential_ipv4, unique_fingerprints)


def farm_base(ctx: Context, entry: dict) -> dict:
    """The accounts of one farm with the plan's common draws applied: keys, tier, usage band,
    creation burst, clock and shared time slots, device camouflage, a prompt kit; one card and one
    home-like address per account until the tactic says otherwise."""
    rng = ctx.rng
    n = int(entry["n_accounts"])
    b = new_block(ctx, entry["tactic"], n)
    b["farm"] = np.full(n, entry["farm"], np.int64)
    b["group"] = np.full(n, ctx.groups(1)[0], np.int64)
    b["n_keys"] = np.where(rng.random(n) < entry["two_key_share"], 2, 1)
    tiers = np.asarray(ctx.world["limit_tiers"], np.int64)
    if entry["limit_tier"] >= 0:
        b["limit"] = np.full(n, tiers[entry["limit_tier"]], np.int64)
    b["usage"] = rng.uniform(*entry["usage"], size=n)
    b["rate"] = np.full(n, entry["rate"]) * rng.uniform(0.8, 1.2, size=n)
    spread = entry["creation_spread_hours"] * HOUR
    birth = -(spread + rng.uniform(1, 60) * DAY)
    b["created"] = birth + rng.random(n) * spread
    b["key_created"] = b["created"] + rng.uniform(60, 2 * HOUR, size=n)
    b["key_spread"] = np.full(n, HOUR)
    b["card2"] = np.full(n, -1, np.int64)
    b["card"] = ctx.cards(n)
    if entry["clock"] == "24h":
        b["time_mode"] = np.full(n, UNIFORM, np.int8)
    else:
        b["time_mode"] = np.full(n, DIURNAL, np.int8)
        b["tz"] = (rng.uniform(0, 24) + rng.normal(0, 0.5, size=n)) % 24
    if entry["slot_share"] > 0:
        fires = np.sort(rng.uniform(0, ctx.span, size=max(int(entry["slots_per_day"] * ctx.days), 1)))
        b["slot_off"] = np.full(n, ctx.add_slots(fires), np.int64)
        b["slot_n"] = np.full(n, len(fires), np.int64)
        b["slot_p"] = np.full(n, entry["slot_share"])
        b["jitter"] = np.full(n, entry["jitter_seconds"])
    set_devices(ctx, b, entry["device"])
    kit(ctx, b, entry, popular_p=0.02)
    return b


def set_devices(ctx: Context, b: dict, mode: str) -> None:
    """Device camouflage: `custom` (the farm's own client, one rare fingerprint), `popular` (one
    popular SDK's fingerprint), `browser` (a unique fingerprint per account), `rotate` (a small
    private set of fingerprints rotated per request)."""
    rng = ctx.rng
    n = len(b["farm"])
    if mode == "custom":
        b["device"] = np.full(n, unique_fingerprints(rng, 1, "t13d_")[0], dtype=object)
        b["user_agent"] = np.full(n, FARM_UA[rng.integers(len(FARM_UA))], dtype=object)
    elif mode == "popular":
        k = int(rng.integers(len(POPULAR_SDK)))
        b["device"] = np.full(n, POPULAR_SDK[k], dtype=object)
        b["user_agent"] = np.full(n, POPULAR_UA[k], dtype=object)
    elif mode == "browser":
        b["device"] = unique_fingerprints(rng, n)
        b["user_agent"] = np.array(BROWSER_UA, dtype=object)[rng.integers(0, len(BROWSER_UA), n)]
    else:  # rotate
        k = int(rng.integers(3, 13))
        b["dev_off"] = np.full(n, ctx.add_devices(unique_fingerprints(rng, k)), np.int64)
        b["dev_n"] = np.full(n, k, np.int64)
        b["dev_p"] = np.ones(n)
        b["user_agent"] = np.full(n, FARM_UA[rng.integers(len(FARM_UA))], dtype=object)


def kit(ctx: Context, b: dict, entry: dict, *, popular_p: float, shared_p: float = 0.92) -> None:
    """The farm's prompt kit: 1–3 templates, each paraphrased dozens of times, drawn by every account."""
    rng = ctx.rng
    n_t = int(rng.integers(1, 4))
    texts = np.concatenate([ctx.paraphrases(ctx.template(int(rng.integers(22, 60))), int(rng.integers(20, 80)),
                                            edit=entry.get("edit", 0.08)) for _ in range(n_t)])
    b["shared_off"][:] = ctx.add_texts(texts)
    b["shared_n"][:] = len(texts)
    b["shared_p"][:] = shared_p
    b["popular_p"][:] = popular_p


def distinct_prompts(ctx: Context, b: dict, *, per_account: np.ndarray) -> None:
    """Every account its own pool of fresh prompts, no template: nothing for a prompt signal."""
    per_account = np.maximum(np.asarray(per_account, np.int64), 2)
    off = ctx.add_texts(ctx.phrases(int(per_account.sum()), 6, 45))
    b["own_off"] = off + np.concatenate([[0], np.cumsum(per_account)[:-1]])
    b["own_n"] = per_account
    b["shared_p"][:] = 0.0


def farm_addresses(ctx: Context, b: dict, n_ips: int, *, datacenter: bool = True) -> None:
    """All accounts on the farm's own few addresses (private servers or a rented block)."""
    rng = ctx.rng
    n = len(b["farm"])
    ips = datacenter_ipv4(rng, n_ips) if datacenter else residential_ipv4(rng, n_ips)
    b["ip_lo"] = ips[rng.integers(0, n_ips, size=(n, 4))].astype(np.uint64)


def shared_cards(ctx: Context, b: dict, accounts_per_card: int) -> None:
    """A new card every `accounts_per_card` accounts."""
    n = len(b["farm"])
    k = max(int(accounts_per_card), 1)
    b["card"] = ctx.cards(-(-n // k))[np.arange(n) // k]


def naive(ctx: Context, entry: dict) -> dict:
    """`naive`: a script on one server: one card, one address, one client for every account.
    Evidence: all of it (card, address, rare device), plus the creation burst."""
    b = farm_base(ctx, entry)
    shared_cards(ctx, b, len(b["farm"]))
    farm_addresses(ctx, b, 1, datacenter=ctx.rng.random() < 0.5)
    set_devices(ctx, b, "custom")
    return b


def tiny(ctx: Context, entry: dict) -> dict:
    """`tiny`: three to five accounts on one card and one address: a side hustle doubling or
    tripling a limit. Evidence: the card and the address; too small for a group signal."""
    b = farm_base(ctx, entry)
    shared_cards(ctx, b, len(b["farm"]))
    farm_addresses(ctx, b, 1, datacenter=ctx.rng.random() < 0.5)
    return b


def card_rotation(ctx: Context, entry: dict) -> dict:
    """`card_rotation`: a fresh card every one to four accounts (prepaid or stolen cards), the farm's
    own few servers, its prompt kit. Evidence: the shared addresses, the kit, the burst."""
    b = farm_base(ctx, entry)
    shared_cards(ctx, b, entry["accounts_per_card"])
    farm_addresses(ctx, b, entry["n_ips"])
    return b


def proxy_rotation(ctx: Context, entry: dict) -> dict:
    """`proxy_rotation`: rotating proxies: each address serves two to four of the farm's accounts
    (a ring over many /24s), cards per one to four accounts. Evidence: the ring of co-used
    addresses, the client (custom or a private rotation set), the kit."""
    b = farm_base(ctx, entry)
    rng = ctx.rng
    n = len(b["farm"])
    ring = residential_ipv4(rng, n)
    pos = np.arange(n)
    b["ip_lo"] = ring[np.stack([pos, (pos + 1) % n, (pos + 2) % n, (pos + 1) % n], axis=1)].astype(np.uint64)
    shared_cards(ctx, b, entry["accounts_per_card"])
    if entry["device"] in ("browser", "popular"):
        set_devices(ctx, b, "rotate")
    return b


def ipv6_rotation(ctx: Context, entry: dict) -> dict:
    """`ipv6_rotation`: one rented IPv6 /48, a new /64 per account and new addresses per request,
    one to a few cards. Evidence: the /48 and the cards."""
    b = farm_base(ctx, entry)
    rng = ctx.rng
    n = len(b["farm"])
    prefix48 = (np.uint64(0x2a0a0000 + int(rng.integers(0, 65536))) << np.uint64(32)) | \
        (np.uint64(int(rng.integers(0, 65536))) << np.uint64(16))
    b["ip_ver"] = np.full((n, 4), 6, np.int8)
    b["ip_hi"] = np.repeat((prefix48 | rng.choice(65536, size=n, replace=False).astype(np.uint64))[:, None], 4, axis=1)
    b["ip_lo"] = np.zeros((n, 4), np.uint64)
    b["ip_rand64"] = np.ones((n, 4), bool)
    shared_cards(ctx, b, max(entry["accounts_per_card"], n // 3))
    return b


def slow_burn(ctx: Context, entry: dict) -> dict:
    """`slow_burn`: accounts opened one by one over weeks, each with its own card, moderate use;
    but they run from the farm's few addresses. Evidence: the addresses (and the client unless
    it is a browser)."""
    b = farm_base(ctx, entry)
    farm_addresses(ctx, b, entry["n_ips"], datacenter=ctx.rng.random() < 0.5)
    return b


def hydra(ctx: Context, entry: dict) -> dict:
    """`hydra`: hundreds to thousands of accounts behind a residential proxy network whose exits are
    real users' home addresses (the same addresses benign `plain` accounts use), one card per
    account, fully diverse prompts, use near the limit around the clock.
    Evidence: the exit pool is co-used: every exit serves many of the farm's accounts and every
    account hops over many exits of the same pool (a dense account × exit structure no household
    has), the accounts were opened in one campaign (days), and together they draw thousands of
    limits; the client gives it away too unless it is a browser fingerprint."""
    b = farm_base(ctx, entry)
    rng = ctx.rng
    n = len(b["farm"])
    homes = ctx.home_ips if ctx.home_ips is not None and len(ctx.home_ips) else residential_ipv4(rng, 1000)
    size = int(np.clip(round(n * entry["exits_per_account"]), 20, len(homes)))
    exits = rng.choice(homes, size=size, replace=False)
    b["pool_off"] = np.full(n, ctx.add_pool(exits), np.int64)
    b["pool_n"] = np.full(n, size, np.int64)
    b["pool_p"] = np.ones(n)
    distinct_prompts(ctx, b, per_account=np.ceil(b["rate"] * ctx.world["requests_per_key"] * b["n_keys"]))
    b["popular_p"][:] = 0.01
    return b


def aged_accounts(ctx: Context, entry: dict) -> dict:
    """`aged_accounts`: accounts opened months apart by different people (own cards, own sign-up
    domains), bought, then activated together: new keys and first requests within a few hours,
    then run from the buyer's infrastructure. Evidence: the activation burst (keys created and
    first requests together after months of silence), the buyer's addresses (its servers or a
    proxy ring) and client, the prompt kit."""
    b = farm_base(ctx, entry)
    rng = ctx.rng
    n = len(b["farm"])
    spread = entry["creation_spread_hours"] * HOUR
    b["created"] = -(rng.uniform(20, 60) * DAY + rng.random(n) * spread)
    act = entry["activation_at_hours"] * HOUR
    b["key_created"] = act + rng.random(n) * entry["activation_hours"] * HOUR
    b["key_spread"] = np.full(n, 600.0)
    b["use_at_creation"] = np.ones(n, bool)
    b["t0"] = np.full(n, act)
    b["card"] = ctx.cards(n)
    if entry["infra"] == "datacenter":
        farm_addresses(ctx, b, entry["n_ips"])
    else:
        ring = residential_ipv4(rng, n)
        pos = np.arange(n)
        b["ip_lo"] = ring[np.stack([pos, (pos + 1) % n, (pos + 2) % n, (pos + 1) % n], axis=1)].astype(np.uint64)
    return b


def job_queue(ctx: Context, entry: dict) -> dict:
    """`job_queue`: a central scheduler spreading jobs over many accounts, each far below its limit
    (a few percent of it) but together many limits; every request leaves in the scheduler's own
    irregular time slots; a few accounts per card; addresses only in carrier NAT (100.64.0.0/10,
    which linkers ignore). Evidence: the same irregular time slots across all accounts, the cards
    each shared by a few of them, and the combined draw of many limits."""
    b = farm_base(ctx, entry)
    rng = ctx.rng
    n = len(b["farm"])
    target = min(rng.uniform(2.0, 6.0), 0.12 * n)      # limits drawn together
    use = b["usage"]
    use = np.minimum(use * max(target / use.sum(), 1.0), 0.15)
    b["usage"] = use
    b["rate"] = rng.uniform(0.5, 1.5, size=n)
    shared_cards(ctx, b, entry["accounts_per_card"])
    carrier = int(rng.integers(0, 16))
    pool = carrier_pool(rng, int(entry["cgnat_addresses"]), carrier)
    b["pool_off"] = np.full(n, ctx.add_pool(pool), np.int64)
    b["pool_n"] = np.full(n, len(pool), np.int64)
    b["pool_p"] = np.ones(n)
    b["ip_lo"] = pool[rng.integers(0, len(pool), size=(n, 4))].astype(np.uint64)
    if entry["device"] == "browser":
        set_devices(ctx, b, "popular")
    jobs = ctx.phrases(int(3 * n * ctx.world["requests_per_key"]) + 10, 8, 40)
    b["shared_off"][:] = ctx.add_texts(jobs)
    b["shared_n"][:] = len(jobs)
    b["shared_p"][:] = 0.98
    return b
