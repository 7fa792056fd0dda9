"""Benign patterns of institutions: campuses, companies (with and without a declared org), cloud
regions and hackathons. Many accounts behind one egress, one card or one venue, evading nothing:
each account is a person or a team with its own reason to exist.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from keyfarm.synth._base import (BUSINESS, DAY, HOUR, POPULAR_SDK, POPULAR_UA, Context, cloud_ipv4,
                                 ipv4, members, new_block, unique_fingerprints)


def campus_nat(ctx: Context, n: int) -> dict:
    """`campus_nat`: students of one university behind its NAT: one to a few egress addresses in one
    /24 for hundreds of accounts, mostly an institutional email domain, own cards, own prompts,
    term-time daytime use (group: campus)."""
    p = ctx.params["benign"]["campus_nat"]
    rng = ctx.rng
    b = new_block(ctx, "campus_nat", n)
    member, groups = members(ctx, n, p["median"], p["sigma"], 20)
    b["group"] = groups[member]
    n_egress = rng.integers(p["egress_ips"][0], p["egress_ips"][1] + 1, size=len(groups))
    which = rng.integers(0, 8, size=(n, 4)) % n_egress[member][:, None]
    gm = groups[member][:, None]
    egress = ipv4(128 + gm // 65536 % 8, gm // 256 % 256, gm % 256, 10 + which)
    b["ip_lo"] = np.where(rng.random((n, 4)) < 0.8, egress, b["ip_lo"]).astype(np.uint64)
    suffix = np.where(groups % 3 == 0, ".ac.uk", ".edu")[member]
    inst = "uni" + pd.Series(groups[member]).astype(str).to_numpy() + suffix
    b["email_domain"] = np.where(rng.random(n) < p["institutional_share"], inst, b["email_domain"])
    return b


def org(ctx: Context, n: int) -> dict:
    """`org`: a company that declared its organisation: employees' accounts (most with org_id),
    office address and sometimes home, often the company card, a corporate email domain
    (group: the org)."""
    p = ctx.params["benign"]["org"]
    rng = ctx.rng
    b = new_block(ctx, "org", n)
    member, groups = members(ctx, n, p["median"], p["sigma"], 3)
    b["group"] = groups[member]
    domain = "corp" + pd.Series(groups[member]).astype(str).to_numpy() + ".example"
    b["email_domain"] = domain
    b["org_id"] = np.where(rng.random(n) < p["declared_share"], "org_" + pd.Series(groups[member]).astype(str).to_numpy(),
                           None)
    company_card = rng.random(len(groups)) < p["company_card_share"]
    card = ctx.cards(len(groups))
    b["card"] = np.where(company_card[member], card[member], b["card"])
    office = ipv4(198, 51 + groups[member] // 256 % 4, groups[member] % 256, 20)
    b["ip_lo"] = np.where(rng.random((n, 4)) < 0.75, office[:, None], b["ip_lo"]).astype(np.uint64)
    business = rng.random(n) < 0.6
    b["time_mode"] = np.where(business, BUSINESS, b["time_mode"]).astype(np.int8)
    return b


def enterprise_no_org(ctx: Context, n: int) -> dict:
    """`enterprise_no_org`: one company's many accounts that never declared an organisation: one
    company card, office addresses, a corporate domain, business hours on weekdays, sometimes a
    corporate TLS proxy's fingerprint, mostly moderate use, accounts opened over months as teams
    joined (group: the company). It genuinely shares a card: it is benign because it is one
    legitimate customer, and at most worth a `review`."""
    p = ctx.params["benign"]["enterprise_no_org"]
    rng = ctx.rng
    b = new_block(ctx, "enterprise_no_org", n)
    member, groups = members(ctx, n, p["median"], p["sigma"], 5)
    b["group"] = groups[member]
    b["email_domain"] = "co" + pd.Series(groups[member]).astype(str).to_numpy() + ".example"
    b["card"] = ctx.cards(len(groups))[member]
    b["card2"] = np.full(n, -1, np.int64)
    n_office = rng.integers(p["office_ips"][0], p["office_ips"][1] + 1, size=len(groups))
    which = rng.integers(0, 8, size=(n, 4)) % n_office[member][:, None]
    gm = groups[member][:, None]
    office = ipv4(203, gm // 256 % 64, gm % 256, 40 + which)
    b["ip_lo"] = np.where(rng.random((n, 4)) < 0.85, office, b["ip_lo"]).astype(np.uint64)
    b["time_mode"] = np.full(n, BUSINESS, np.int8)
    b["tz"] = (rng.uniform(0, 24, size=len(groups))[member] + rng.normal(0, 0.3, size=n)) % 24
    corporate = rng.random(len(groups)) < p["corporate_device_share"]
    proxy_fp = unique_fingerprints(rng, len(groups), "t13d_corp")
    b["device"] = np.where(corporate[member], proxy_fp[member], b["device"])
    created = -rng.uniform(30, 700, size=len(groups))[member] * DAY + rng.uniform(0, 200, size=n) * DAY
    b["created"] = np.minimum(created, -DAY)
    b["key_created"] = b["created"] + rng.uniform(0, 3, size=n) * DAY
    b["usage"] = np.minimum(b["usage"], rng.uniform(0.1, 0.6, size=n))
    return b


def cloud_region(ctx: Context, n: int) -> dict:
    """`cloud_region`: apps hosted in one public cloud region: every request from some rotating
    address of the region's /24s, mostly the region's usual SDK (group: region)."""
    p = ctx.params["benign"]["cloud_region"]
    rng = ctx.rng
    b = new_block(ctx, "cloud_region", n)
    member, groups = members(ctx, n, p["median"], p["sigma"], 10)
    b["group"] = groups[member]
    for g in range(len(groups)):
        rows = np.flatnonzero(member == g)
        off = ctx.add_pool(cloud_ipv4(rng, np.full(256, groups[g]), 256))
        b["pool_off"][rows] = off
        b["pool_n"][rows] = 256
    b["pool_p"] = rng.uniform(0.8, 1.0, size=n)
    sdk = rng.integers(0, len(POPULAR_SDK), size=len(groups))[member]
    dominant = rng.random(n) < p["dominant_sdk_share"]
    b["device"] = np.where(dominant, np.array(POPULAR_SDK, dtype=object)[sdk], b["device"])
    b["user_agent"] = np.where(dominant, np.array(POPULAR_UA, dtype=object)[sdk], b["user_agent"])
    b["time_mode"] = np.where(rng.random(n) < 0.5, 1, b["time_mode"]).astype(np.int8)
    return b


def hackathon(ctx: Context, n: int) -> dict:
    """`hackathon`: a class or event: dozens of accounts opened within hours at one venue (its one
    or two addresses), the assignment's prompts shared by everyone, a few hours of low use
    (group: the event). Together the whole event draws less than one account's daily limit:
    coordinated-looking, evading nothing."""
    p = ctx.params["benign"]["hackathon"]
    rng = ctx.rng
    b = new_block(ctx, "hackathon", n)
    member, groups = members(ctx, n, p["median"], p["sigma"], 12)
    b["group"] = groups[member]
    g = len(groups)
    day = rng.integers(0, ctx.days, size=g)
    start = day * DAY + rng.uniform(7, 12, size=g) * HOUR       # the event opens in the morning
    length = rng.uniform(3, 9, size=g) * HOUR
    spread = rng.uniform(*p["creation_hours"], size=g) * HOUR
    created = start[member] - spread[member] * rng.random(n) - 600
    b["created"] = created
    b["key_created"] = created + rng.uniform(0, 300, size=n)
    b["key_spread"] = np.full(n, 300.0)
    b["use_at_creation"] = np.ones(n, bool)
    b["n_keys"] = ctx.keys_per_account(n, [0.85, 0.15])
    b["t0"] = start[member]
    b["t1"] = np.minimum(start + length, ctx.span)[member]
    b["time_mode"] = np.full(n, 1, np.int8)
    gm = groups[member][:, None]
    venue = ipv4(131, 100 + gm // 256 % 100, gm % 256, 5 + rng.integers(0, 2, size=(n, 4)))
    b["ip_lo"] = np.where(rng.random((n, 4)) < 0.9, venue, b["ip_lo"]).astype(np.uint64)
    b["card"] = np.where(rng.random(n) < p["card_share"], b["card"], -1)
    limit = np.asarray(ctx.world["limit_tiers"])[0]
    b["limit"] = np.full(n, limit, np.int64)
    # the whole event's tokens (all days, all keys) stay under one daily limit: budget / accounts
    budget = rng.uniform(*p["budget_of_one_limit"], size=g)
    keys_in_group = np.bincount(member, weights=b["n_keys"], minlength=g)
    n_days = np.floor((b["t1"] - 1) / DAY) - np.floor(b["t0"] / DAY) + 1    # calendar days touched
    b["usage"] = budget[member] / keys_in_group[member] / n_days / 1.35   # 1.35: per-request noise
    lo, hi = p["assignment_prompts"]
    n_items = rng.integers(lo, hi + 1, size=g)
    for i in range(g):
        rows = np.flatnonzero(member == i)
        b["shared_off"][rows] = ctx.add_texts(ctx.phrases(int(n_items[i]), 8, 40))
        b["shared_n"][rows] = n_items[i]
    b["shared_p"] = np.full(n, p["assignment_p"])
    b["popular_p"] = np.full(n, 0.1)
    return b

