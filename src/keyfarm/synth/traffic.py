"""The request engine: turns the per-account behaviour columns every pattern fills (see
_base.new_block) into request rows, vectorised over requests (no per-request Python loop).

Per request: a time (the account's window; its background clock — diurnal, round the clock or
business hours on weekdays — or one of its shared time slots plus jitter), an address (one of the
account's four own slots, or its shared pool), a device (its own, or its rotation set), a
User-Agent, a prompt (popular, from a shared pool, or its own) and tokens (each key's usage of its
limit per active day, spread over its requests).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from keyfarm.synth._base import (BUSINESS, DAY, DIURNAL, HOUR, POPULAR_PROMPTS, START, START_WEEKDAY,
                                 Context, format_ips, zipf_choice)


def _concat(parts, dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def requests(ctx: Context, acc: dict, k_acc: np.ndarray, key_created: np.ndarray, limit: np.ndarray,
             key_ids: np.ndarray) -> pd.DataFrame:
    """Request rows of every key (key_id, ts, ip, device_fingerprint, user_agent, prompt,
    prompt_tokens, completion_tokens), sorted by time then key."""
    rng = ctx.rng
    rpk = ctx.world["requests_per_key"]
    span = ctx.span
    rate = acc["rate"][k_acc]
    mean = np.maximum(rate * (rpk - 1) / rate.mean(), 0)
    n_rows = rng.poisson(mean) + 1
    rk = np.repeat(np.arange(len(k_acc)), n_rows)
    ra = k_acc[rk]
    n = len(rk)

    # windows per key: the account's, never before the key exists
    t0k = np.maximum(acc["t0"][k_acc], key_created + 60.0)
    t1k = acc["t1"][k_acc].astype(np.float64)
    t0k = np.minimum(t0k, t1k - 600.0)
    ts = _times(ctx, acc, ra, t0k[rk], t1k[rk], n)
    # keys used at once: each such key's first row moves to just after its window opens
    first_row = np.concatenate([[0], np.cumsum(n_rows)[:-1]])
    now = first_row[acc["use_at_creation"][k_acc]]
    ts[now] = t0k[rk[now]] + rng.uniform(0, 600, size=now.size)

    ver, hi, lo = _addresses(ctx, acc, ra, n)
    device = acc["device"][ra]
    rot = np.flatnonzero((rng.random(n) < acc["dev_p"][ra]) & (acc["dev_n"][ra] > 0))
    if rot.size:
        table = _concat(ctx.devices, object)
        device[rot] = table[acc["dev_off"][ra[rot]] + (rng.random(rot.size) * acc["dev_n"][ra[rot]]).astype(np.int64)]
    prompt = _prompts(ctx, acc, ra, n)

    # each key uses `use` of its limit on every calendar day it is active, spread over that day's rows
    use = np.clip(acc["usage"][k_acc] * rng.uniform(0.85, 1.15, size=len(k_acc)), 0.0005, 1.0)
    day = np.floor(ts / DAY).astype(np.int64)
    day = day - day.min() if n else day
    cell = rk * (int(day.max()) + 1 if n else 1) + day
    codes, uniques = pd.factorize(cell)
    rows_that_day = np.bincount(codes)[codes]
    per_row = (use * limit)[rk] / rows_that_day
    tokens = np.maximum((per_row * rng.uniform(0.7, 1.3, size=n)).astype(np.int64), 1)
    prompt_tokens = np.maximum((tokens * rng.uniform(0.2, 0.6, size=n)).astype(np.int64), 1)
    order = np.lexsort((rk, ts))
    ts_out = START + pd.to_timedelta(np.round(ts[order], 3), unit="s")
    return pd.DataFrame({
        "key_id": key_ids[rk[order]], "ts": ts_out, "ip": format_ips(ver[order], hi[order], lo[order]),
        "device_fingerprint": device[order], "user_agent": acc["user_agent"][ra[order]],
        "prompt": prompt[order], "prompt_tokens": prompt_tokens[order],
        "completion_tokens": (tokens - prompt_tokens)[order],
    })


def _times(ctx: Context, acc: dict, ra: np.ndarray, t0: np.ndarray, t1: np.ndarray, n: int) -> np.ndarray:
    rng = ctx.rng
    uniform = t0 + rng.random(n) * (t1 - t0)
    mode = acc["time_mode"][ra]
    d0 = np.floor(t0 / DAY)
    nd = np.maximum(np.ceil(t1 / DAY) - d0, 1)
    day = d0 + np.floor(rng.random(n) * nd)
    hour = np.where(mode == BUSINESS, acc["tz"][ra] + rng.uniform(-4.5, 4.5, size=n),
                    rng.normal(acc["tz"][ra], acc["width"][ra]))
    hour = hour % 24
    weekday = (START_WEEKDAY + day.astype(np.int64)) % 7
    # business hours: weekend days move to the nearest weekday inside the window
    busy = mode == BUSINESS
    fwd = np.where(weekday == 5, 2, np.where(weekday == 6, 1, 0))
    back = np.where(weekday == 5, -1, np.where(weekday == 6, -2, 0))
    moved = np.where(day + fwd < d0 + nd, day + fwd, np.where(day + back >= d0, day + back, day))
    day = np.where(busy, moved, day)
    clock = day * DAY + hour * HOUR
    t = np.where((mode == DIURNAL) | busy, clock, uniform)
    t = np.where((t >= t0) & (t < t1), t, uniform)
    slot = np.flatnonzero((rng.random(n) < acc["slot_p"][ra]) & (acc["slot_n"][ra] > 0))
    if slot.size:
        table = _concat(ctx.slots, np.float64)
        a = ra[slot]
        fire = table[acc["slot_off"][a] + (rng.random(slot.size) * acc["slot_n"][a]).astype(np.int64)]
        fire = fire + rng.random(slot.size) * acc["jitter"][a]
        ok = (fire >= t0[slot]) & (fire < t1[slot])
        t[slot[ok]] = fire[ok]
    return t


def _addresses(ctx: Context, acc: dict, ra: np.ndarray, n: int):
    rng = ctx.rng
    cum = np.cumsum(acc["ip_p"], axis=1)
    cum = cum / cum[:, -1:]
    slot = (rng.random(n)[:, None] > cum[ra]).sum(axis=1)
    slot = np.minimum(slot, 3)
    ver = acc["ip_ver"][ra, slot]
    hi = acc["ip_hi"][ra, slot]
    lo = acc["ip_lo"][ra, slot].copy()
    rand = np.flatnonzero(acc["ip_rand64"][ra, slot])
    lo[rand] = rng.integers(0, 2**63, size=rand.size, dtype=np.int64).astype(np.uint64)
    pooled = np.flatnonzero((rng.random(n) < acc["pool_p"][ra]) & (acc["pool_n"][ra] > 0))
    if pooled.size:
        pv = _concat([p[0] for p in ctx.pool], np.int8)
        ph = _concat([p[1] for p in ctx.pool], np.uint64)
        pl = _concat([p[2] for p in ctx.pool], np.uint64)
        a = ra[pooled]
        at = acc["pool_off"][a] + (rng.random(pooled.size) * acc["pool_n"][a]).astype(np.int64)
        ver[pooled], hi[pooled], lo[pooled] = pv[at], ph[at], pl[at]
    return ver, hi, lo


def _prompts(ctx: Context, acc: dict, ra: np.ndarray, n: int) -> np.ndarray:
    rng = ctx.rng
    texts = _concat(ctx.texts, object)
    r = rng.random(n)
    pop_p = acc["popular_p"][ra]
    shared = (r >= pop_p) & (r < pop_p + acc["shared_p"][ra]) & (acc["shared_n"][ra] > 0)
    own = (r >= pop_p) & ~shared & (acc["own_n"][ra] > 0)
    popular = ~shared & ~own
    idx = np.zeros(n, np.int64)
    u = rng.random(n)
    idx[shared] = acc["shared_off"][ra[shared]] + (u[shared] * acc["shared_n"][ra[shared]]).astype(np.int64)
    idx[own] = acc["own_off"][ra[own]] + (u[own] * acc["own_n"][ra[own]]).astype(np.int64)
    out = texts[idx]
    pop = np.flatnonzero(popular)
    out[pop] = np.array(POPULAR_PROMPTS, dtype=object)[zipf_choice(rng, len(POPULAR_PROMPTS), pop.size, a=1.2)]
    out[rng.random(n) < acc["none_p"][ra]] = None
    return out
