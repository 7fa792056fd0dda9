"""Farm tactics defined by their prompts: a paraphrase kit on otherwise clean accounts, a kit
hidden among popular prompts, a chain-of-thought wrapper around a question bank (distillation),
and a farm with no shared prompt at all. See farms.py for the common draws.
"""
from __future__ import annotations

import numpy as np

from keyfarm.synth._base import Context
from keyfarm.synth.farms import (distinct_prompts, farm_addresses, farm_base, kit, set_devices,
                                 shared_cards)


def prompt_only(ctx: Context, entry: dict) -> dict:
    """`prompt_only`: clean accounts (own cards, own home-like addresses, popular or browser
    clients) that send one paraphrased prompt kit. Evidence: near-duplicate prompts across the
    farm's accounts and their shared time slots."""
    b = farm_base(ctx, entry)
    if entry["device"] not in ("popular", "browser"):
        set_devices(ctx, b, "browser")
    return b


def mixed_prompts(ctx: Context, entry: dict) -> dict:
    """`mixed_prompts`: the kit mixed half and half with popular prompts, on rotating cards and
    the farm's own servers. Evidence: the kit's share of prompts, the addresses, the cards."""
    b = farm_base(ctx, entry)
    popular = ctx.rng.uniform(0.3, 0.6)
    kit(ctx, b, entry, popular_p=popular, shared_p=0.98 - popular)
    shared_cards(ctx, b, entry["accounts_per_card"])
    farm_addresses(ctx, b, entry["n_ips"])
    return b


def cot_wrapper(ctx: Context, entry: dict) -> dict:
    """`cot_wrapper`: distillation through many accounts: one chain-of-thought-eliciting wrapper
    ("reason step by step, show every intermediate step, then…") around distinct questions from a
    large question bank, so no two prompts are equal. Cards and addresses are drawn per farm
    (own or a few). Evidence: the wrapper, a long fixed text shared by every prompt of the farm
    and by nobody else, plus whatever infrastructure the farm shares."""
    b = farm_base(ctx, entry)
    rng = ctx.rng
    n = len(b["farm"])
    wrapper = ctx.template(int(rng.integers(*entry["wrapper_words"], endpoint=True)))
    cut = int(len(wrapper) * rng.uniform(0.5, 0.9))
    prefix, suffix = " ".join(ctx.vocab[wrapper[:cut]]), " ".join(ctx.vocab[wrapper[cut:]])
    n_q = int(10 * n * ctx.world["requests_per_key"] * entry["rate"]) + 20   # drawn with replacement
    questions = ctx.phrases(n_q, *entry["question_words"])
    b["shared_off"][:] = ctx.add_texts(prefix + " " + questions + " " + suffix)
    b["shared_n"][:] = n_q
    b["shared_p"][:] = 0.97
    b["own_off"][:], b["own_n"][:] = b["shared_off"], b["shared_n"]   # every prompt is wrapped
    b["popular_p"][:] = 0.01
    if rng.random() < 0.5:
        shared_cards(ctx, b, entry["accounts_per_card"])
    if rng.random() < 0.5:
        farm_addresses(ctx, b, entry["n_ips"])
    return b


def diverse_prompts(ctx: Context, entry: dict) -> dict:
    """`diverse_prompts`: no prompt shared at all, not even a popular one: every account writes its
    own. Evidence: what else it shares, drawn per farm among cards (a few accounts per card),
    the farm's servers and its client (a rare fingerprint or a private rotation set), plus the
    creation burst and shared time slots."""
    b = farm_base(ctx, entry)
    distinct_prompts(ctx, b, per_account=np.ceil(b["rate"] * ctx.world["requests_per_key"] * b["n_keys"]) * 2)
    b["popular_p"][:] = 0.0
    shares = entry["shares"]
    if "card" in shares:
        shared_cards(ctx, b, max(2, entry["accounts_per_card"]))
    if "ip" in shares:
        farm_addresses(ctx, b, entry["n_ips"])
    if "device" in shares:
        set_devices(ctx, b, entry["device"] if entry["device"] in ("custom", "rotate") else "custom")
    elif entry["device"] in ("custom", "rotate"):
        set_devices(ctx, b, "browser")
    return b

