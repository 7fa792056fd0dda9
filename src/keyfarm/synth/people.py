"""Benign patterns of individuals and households: people who share values by where they connect
from (a home, a carrier, an ISP's IPv6 block) or by sharing one card at home, and evade nothing.
"""
from __future__ import annotations

import numpy as np

from keyfarm.synth._base import UNIFORM, Context, carrier_pool, new_block


def plain(ctx: Context, n: int) -> dict:
    """`plain`: one person, one account. A home address (sometimes a phone, work or a café), a popular
    SDK or a browser, their own prompts and the popular ones ("hello"), use far below the limit
    for most, near it for a few power users. Their home addresses are also the exits of
    residential proxy networks (see farms.hydra), so an address alone proves nothing."""
    b = new_block(ctx, "plain", n)
    ctx.home_ips = b["ip_lo"][:, 0].copy()
    return b


def heavy_user(ctx: Context, n: int) -> dict:
    """`heavy_user`: one person or one small bot that really uses its whole limit, some around the
    clock: the usage signal of a farm with none of its control."""
    p = ctx.params["benign"]["heavy_user"]
    b = new_block(ctx, "heavy_user", n)
    b["usage"] = ctx.rng.uniform(*p["usage"], size=n)
    b["rate"] = ctx.rng.uniform(1.5, 4.0, size=n)
    b["n_keys"] = ctx.keys_per_account(n, [0.4, 0.3, 0.2, 0.1])
    clock = ctx.rng.random(n) < p["round_the_clock_share"]
    b["time_mode"] = np.where(clock, UNIFORM, b["time_mode"]).astype(np.int8)
    return b


def ipv6_user(ctx: Context, n: int) -> dict:
    """`ipv6_user`: a household on IPv6. Its /64 is its own, privacy addresses rotate inside it;
    its ISP hands out /64s from /48s shared by dozens of unrelated households (group: the /48)."""
    p = ctx.params["benign"]["ipv6_user"]
    b = new_block(ctx, "ipv6_user", n)
    n48 = max(1, int(round(n / p["accounts_per_48"])))
    g48 = ctx.rng.integers(0, n48, size=n)
    groups = ctx.groups(n48)
    b["group"] = groups[g48]
    prefix48 = (np.uint64(0x20010db8) << np.uint64(32)) | (groups[g48].astype(np.uint64) % np.uint64(65536) << np.uint64(16))
    sub = ctx.rng.integers(0, 65536, size=n).astype(np.uint64)
    v6 = ctx.rng.random((n, 4)) < 0.85       # some requests still leave over IPv4
    v6[:, 0] = True
    b["ip_ver"] = np.where(v6, 6, 4).astype(np.int8)
    b["ip_hi"] = np.where(v6, (prefix48 | sub)[:, None], np.uint64(0)).astype(np.uint64)
    b["ip_lo"] = np.where(v6, np.uint64(0), b["ip_lo"]).astype(np.uint64)
    b["ip_rand64"] = v6
    return b


def cgnat_mobile(ctx: Context, n: int) -> dict:
    """`cgnat_mobile`: phones behind a carrier's NAT: each request leaves from some address of the
    carrier's pool in 100.64.0.0/10, shared at random with thousands of strangers (group: carrier)."""
    p = ctx.params["benign"]["cgnat_mobile"]
    rng = ctx.rng
    b = new_block(ctx, "cgnat_mobile", n)
    carriers = ctx.groups(p["carriers"])
    which = rng.integers(0, len(carriers), size=n)
    b["group"] = carriers[which]
    for c in range(len(carriers)):
        rows = np.flatnonzero(which == c)
        if rows.size == 0:
            continue
        size = max(int(rows.size / p["accounts_per_address"]), 1)
        off = ctx.add_pool(carrier_pool(rng, size, c))
        b["pool_off"][rows] = off
        b["pool_n"][rows] = size
    b["pool_p"] = np.ones(n)
    return b


def family_card(ctx: Context, n: int) -> dict:
    """`family_card`: a household of 2–4 accounts on one card and one home address (group:
    household). It shares a card, but a few accounts drawing a few limits is a family."""
    p = ctx.params["benign"]["family_card"]
    rng = ctx.rng
    b = new_block(ctx, "family_card", n)
    sizes = rng.choice([2, 3, 4], size=n // 2 + 1, p=np.asarray(p["sizes_p"]) / np.sum(p["sizes_p"]))
    home = np.repeat(np.arange(len(sizes)), sizes)[:n]
    if n >= 2 and np.sum(home == home[-1]) == 1:   # no household of one
        home[-1] = home[-2]
    groups = ctx.groups(int(home.max()) + 1)
    b["group"] = groups[home]
    b["card"] = ctx.cards(int(home.max()) + 1)[home]
    ip = b["ip_lo"][np.unique(home, return_index=True)[1], 0]
    b["ip_lo"] = np.where(rng.random((n, 4)) < 0.85, ip[home][:, None], b["ip_lo"])
    return b
