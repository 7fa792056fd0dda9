"""Benign crowds of common interest: unrelated customers who look coordinated because they use the
same thing — a CI schedule, a multi-tenant gateway, a public benchmark, a framework's template.
Each member has its own card and its own reason to exist, and nobody draws beyond its own limit.
"""
from __future__ import annotations

import numpy as np

from keyfarm.synth._base import (HOUR, POPULAR_SDK, POPULAR_UA, UNIFORM, Context, cloud_ipv4,
                                 datacenter_ipv4, join_words, members, new_block,
                                 unique_fingerprints, zipf_choice)

# popular cron schedules: (period seconds, offset seconds within the period)
_SCHEDULES = ((3600, 0), (1800, 0), (86400, 2 * 3600), (86400, 0), (900, 0), (3600, 1800),
              (86400, 6 * 3600), (21600, 0))


def _companies(ctx: Context, n: int, per_company: tuple[int, int]) -> np.ndarray:
    """Company index per account: companies of per_company[0]..per_company[1] accounts."""
    sizes = ctx.rng.integers(per_company[0], per_company[1] + 1, size=n)
    return np.repeat(np.arange(n), sizes)[:n]


def _company_cards(ctx: Context, b: dict, company: np.ndarray) -> None:
    b["card"] = ctx.cards(int(company.max()) + 1)[company]


def _companies_in_groups(ctx: Context, b: dict, n: int, per_company, median: float, sigma: float,
                         min_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accounts in companies of per_company accounts, each company with its own card, companies in
    groups of lognormal size (a crowd, a benchmark, a framework): the accounts' `group` is their
    company's. Returns (company per account, group per company, group ids)."""
    company = _companies(ctx, n, tuple(per_company))
    group_of, groups = members(ctx, int(company.max()) + 1, median, sigma, min_size)
    b["group"] = groups[group_of][company]
    _company_cards(ctx, b, company)
    return company, group_of, groups


def ci_schedule(ctx: Context, n: int) -> dict:
    """`ci_schedule`: unrelated companies' scheduled jobs (nightly evals, hourly summaries) that fire
    at the same popular clock minutes (:00, :30, 02:00 daily…) from one cloud region's rotating
    addresses with the same SDK (group: the crowd of one region and its schedules). Each company
    has its own card and its own job prompts; synchrony here is the clock's, not one actor's."""
    p = ctx.params["benign"]["ci_schedule"]
    rng = ctx.rng
    b = new_block(ctx, "ci_schedule", n)
    company, crowd_of, crowds = _companies_in_groups(ctx, b, n, p["accounts_per_company"],
                                                     p["companies_median"], 0.5, 6)
    n_comp = len(crowd_of)
    # one slot table per popular schedule, shared by every company on it
    slot_off, slot_n = [], []
    for period, offset in _SCHEDULES:
        fires = np.arange(offset, ctx.span, period, dtype=np.float64)
        slot_off.append(ctx.add_slots(fires))
        slot_n.append(len(fires))
    sched = zipf_choice(rng, len(_SCHEDULES), n_comp, a=1.0)[company]
    b["slot_off"] = np.asarray(slot_off, np.int64)[sched]
    b["slot_n"] = np.asarray(slot_n, np.int64)[sched]
    b["slot_p"] = np.full(n, p["scheduled_share"])
    b["jitter"] = rng.uniform(*p["jitter_seconds"], size=n_comp)[company]
    b["time_mode"] = np.full(n, UNIFORM, np.int8)
    b["rate"] = rng.uniform(1.0, 3.0, size=n)
    for c in range(len(crowds)):
        rows = np.flatnonzero(crowd_of[company] == c)
        b["pool_off"][rows] = ctx.add_pool(cloud_ipv4(rng, np.full(512, crowds[c]), 512))
        b["pool_n"][rows] = 512
    b["pool_p"] = np.ones(n)
    sdk = rng.integers(0, 3, size=len(crowds))[crowd_of][company]
    b["device"] = np.array(POPULAR_SDK, dtype=object)[sdk]
    b["user_agent"] = np.array(POPULAR_UA, dtype=object)[sdk]
    n_jobs = rng.integers(1, 5, size=n_comp)
    offs = ctx.add_texts(ctx.phrases(int(n_jobs.sum()), 10, 40)) + np.concatenate([[0], np.cumsum(n_jobs)[:-1]])
    b["shared_off"] = offs[company]
    b["shared_n"] = n_jobs[company]
    b["shared_p"] = np.full(n, 0.9)
    b["popular_p"] = np.full(n, 0.02)
    return b


def gateway_tenants(ctx: Context, n: int) -> dict:
    """`gateway_tenants`: customers of a multi-tenant gateway or reseller. Their traffic leaves
    through the gateway's few addresses with its TLS fingerprint and User-Agent, and most prompts
    carry the gateway's system-prompt prefix; but each tenant has its own card, its own history
    (accounts opened over months) and its own use (group: the gateway). Common infrastructure,
    not common control."""
    p = ctx.params["benign"]["gateway_tenants"]
    rng = ctx.rng
    b = new_block(ctx, "gateway_tenants", n)
    member, groups = members(ctx, n, p["median"], p["sigma"], 8)
    b["group"] = groups[member]
    g = len(groups)
    fp = unique_fingerprints(rng, g, "t13d_gw")
    b["device"] = fp[member]
    b["user_agent"] = ("gw-" + np.asarray(groups, dtype=str).astype(object) + "/2." +
                       rng.integers(0, 9, size=g).astype(str).astype(object))[member]
    n_ips = rng.integers(p["egress_ips"][0], p["egress_ips"][1] + 1, size=g)
    n_own = rng.integers(3, 12, size=n)
    texts = ctx.phrases(int(n_own.sum()), 4, 30)
    account_of_text = np.repeat(np.arange(n), n_own)
    lo, hi = p["prefix_words"]
    plen = rng.integers(lo, hi + 1, size=g)
    prefixes = np.array([ctx.words_text(ctx.template(int(k))) for k in plen], dtype=object)
    with_prefix = rng.random(len(texts)) < p["prefix_share"]
    texts = np.where(with_prefix, prefixes[member[account_of_text]] + " " + texts, texts)
    b["own_off"] = ctx.add_texts(texts) + np.concatenate([[0], np.cumsum(n_own)[:-1]])
    b["own_n"] = n_own
    for i in range(g):
        rows = np.flatnonzero(member == i)
        b["pool_off"][rows] = ctx.add_pool(datacenter_ipv4(rng, int(n_ips[i])))
        b["pool_n"][rows] = n_ips[i]
    b["pool_p"] = np.ones(n)
    b["popular_p"] = b["popular_p"] * 0.5
    return b


def benchmark_runners(ctx: Context, n: int) -> dict:
    """`benchmark_runners`: unrelated labs running one public benchmark: hundreds of its prompts sent
    verbatim by every lab, each lab in one run of a few hours, from its own addresses with its own
    card and client (group: the benchmark). Identical prompts, independent labs."""
    p = ctx.params["benign"]["benchmark_runners"]
    rng = ctx.rng
    b = new_block(ctx, "benchmark_runners", n)
    lab, bench_of, benches = _companies_in_groups(ctx, b, n, p["accounts_per_lab"], p["labs_median"], 0.5, 4)
    n_lab = len(bench_of)
    lo, hi = p["benchmark_prompts"]
    for i in range(len(benches)):
        k = int(rng.integers(lo, hi + 1))
        items = "Question: " + ctx.phrases(k, 12, 45) + " Answer with A, B, C or D."
        rows = np.flatnonzero(bench_of[lab] == i)
        b["shared_off"][rows] = ctx.add_texts(items)
        b["shared_n"][rows] = k
    b["shared_p"] = np.full(n, p["benchmark_share"])
    b["popular_p"] = np.full(n, 0.02)
    start = rng.uniform(0, max(ctx.span - 6 * HOUR, HOUR), size=n_lab)
    length = rng.uniform(1, 12, size=n_lab) * HOUR
    b["t0"] = start[lab]
    b["t1"] = np.minimum(start + length, ctx.span)[lab]
    b["time_mode"] = np.full(n, UNIFORM, np.int8)
    b["rate"] = rng.uniform(2.0, 6.0, size=n)
    lab_ip = residential_or_cloud(ctx, n_lab)
    b["ip_lo"] = np.where(rng.random((n, 4)) < 0.9, lab_ip[lab][:, None], b["ip_lo"]).astype(np.uint64)
    return b


def residential_or_cloud(ctx: Context, n: int) -> np.ndarray:
    """One address per lab or app: a university, an office or a cloud host."""
    rng = ctx.rng
    cloud = cloud_ipv4(rng, rng.integers(0, 200, size=n), n)
    return np.where(rng.random(n) < 0.5, cloud, datacenter_ipv4(rng, n)).astype(np.uint64)


def lookalike_apps(ctx: Context, n: int) -> dict:
    """`lookalike_apps`: unrelated apps built on one framework whose default system prompt is a
    template ("You are {app}, an assistant for {domain}…"): every app's prompts are the template
    with its own name and domain filled in around its users' own questions, so prompts look
    alike across apps that share nothing else (group: the framework's template)."""
    p = ctx.params["benign"]["lookalike_apps"]
    rng = ctx.rng
    b = new_block(ctx, "lookalike_apps", n)
    app, frame_of, frames = _companies_in_groups(ctx, b, n, (1, 2), p["apps_median"], p["sigma"], 5)
    n_app = len(frame_of)
    lo, hi = p["template_words"]
    templates = [ctx.template(int(rng.integers(lo, hi + 1))) for _ in frames]
    n_prompts = rng.integers(5, 20, size=n_app)
    rows_app = np.repeat(np.arange(n_app), n_prompts)
    width = max(len(t) for t in templates)
    words = np.zeros((len(rows_app), width), np.int64)
    lengths = np.zeros(len(rows_app), np.int64)
    name = rng.integers(0, len(ctx.vocab), size=(n_app, 2))   # the app's name and domain
    for f, t in enumerate(templates):
        r = np.flatnonzero(frame_of[rows_app] == f)
        words[r, :len(t)] = t
        words[r, 2] = name[rows_app[r], 0]
        words[r, min(6, len(t) - 1)] = name[rows_app[r], 1]
        lengths[r] = len(t)
    qlo, qhi = p["question_words"]
    texts = join_words(words, lengths, ctx.vocab) + " " + ctx.phrases(len(rows_app), qlo, qhi)
    offs = ctx.add_texts(texts) + np.concatenate([[0], np.cumsum(n_prompts)[:-1]])
    b["own_off"] = offs[app]
    b["own_n"] = n_prompts[app]
    b["popular_p"] = np.full(n, 0.05)
    app_ip = residential_or_cloud(ctx, n_app)
    b["ip_lo"] = np.where(rng.random((n, 4)) < 0.8, app_ip[app][:, None], b["ip_lo"]).astype(np.uint64)
    return b

