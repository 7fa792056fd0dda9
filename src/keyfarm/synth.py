"""Synthetic worlds with ground truth: a benign population full of innocent sharing, and key farms.

Everything is vectorised NumPy over accounts, keys and requests (no per-request Python loops), so a
world of 1,000,000 keys and ~10,000,000 requests generates in minutes on two cores. The benign
patterns are the traps that fool naive linkers (campus NAT, carrier NAT, cloud regions, popular SDK
fingerprints, popular prompts, family cards, declared organisations, heavy users, IPv6 users); the
farm tactics rise in camouflage from one card/IP/device to prompt kits alone. Same seed, same bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

BENIGN_PATTERNS = ("plain", "campus_nat", "cgnat_mobile", "cloud_region", "family_card", "org",
                   "heavy_user", "ipv6_user")
FARM_TACTICS = ("naive", "card_rotation", "proxy_rotation", "ipv6_rotation", "slow_burn",
                "prompt_only", "tiny", "mixed_prompts")
# Share of benign accounts in each sharing pattern ("plain" takes the rest).
_BENIGN_SHARE = {"campus_nat": 0.04, "cgnat_mobile": 0.08, "cloud_region": 0.05, "family_card": 0.03,
                 "org": 0.05, "heavy_user": 0.02, "ipv6_user": 0.06}
_FARM_ACCOUNTS = {"naive": (8, 40), "card_rotation": (8, 40), "proxy_rotation": (8, 40),
                  "ipv6_rotation": (8, 30), "slow_burn": (6, 25), "prompt_only": (6, 25),
                  "tiny": (3, 5), "mixed_prompts": (8, 30)}
FARM_KEY_SHARE = 0.03
MIN_KEYS = 2000
START = pd.Timestamp("2026-11-01T00:00:00Z")
POPULAR_SDK = ("t13d1516h2_8daaf6152771_e5627efa2ab1", "t13d1715h2_5b57614c22b0_3d5424432f57",
               "t13d1516h2_8daaf6152771_02713d6af862", "t13d301000_1d37bd780c83_d339722ba4af",
               "t13d1812h1_85036bcba153_b26ce05bbdd6", "t12d1209h1_d34a8e72043a_b39be8c56a14")
POPULAR_UA = ("acme-sdk-python/1.52.0", "acme-sdk-node/4.71.2", "python-httpx/0.27.0",
              "curl/8.5.0", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "acme-sdk-go/0.9.1")
POPULAR_PROMPTS = ("hello", "hi", "Summarize the following text:", "test",
                   "Translate the following into French:", "What is the capital of France?",
                   "You are a helpful assistant.", "Write a haiku about autumn.",
                   "Explain quantum computing in simple terms.", "ping",
                   "Fix the grammar in this sentence:", "Tell me a joke.")
_WORDS = ("the a of to and in is for on with as by at from that this it be are was or an which "
          "explain describe write list give compare analyse summarise translate generate answer "
          "question problem solution step reason proof code function python data model value "
          "result example detail short long simple complex first second final output input format "
          "json table list number text document email report story poem essay letter plan idea "
          "market customer product price sale team project meeting schedule budget risk policy "
          "history science math physics chemistry biology law medicine health travel food music "
          "movie book game sport weather city country language culture economy energy climate "
          "please could would should must can will need want help make show tell find check "
          "improve review edit rewrite correct shorten expand clarify outline draft").split()
_SYLLABLES = np.array("ka lo mi ne ru sa te vo pi da ge zu fa ho ji ke li mo nu pa ri so tu va wi "
                      "xe yo za bre cla dro fri glo pra sti tro".split(), dtype=object)


@dataclass(frozen=True)
class WorldSpec:
    """Size and shape of a generated world."""

    n_keys: int
    seed: int = 0
    days: int = 3                   # days of request logs
    requests_per_key: float = 10.0  # mean rows per key
    dirty_rows: int = 0             # malformed request rows appended (for quarantine demos)


# ---------------------------------------------------------------- helpers

def _ids(prefix: str, n: int, salt: int) -> np.ndarray:
    """Unique opaque ids: an odd-multiplier bijection of 0..n-1 printed in hex."""
    x = (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B1) + np.uint64(salt)) & np.uint64(0xFFFFFFFF)
    x = x ^ (np.arange(n, dtype=np.uint64) << np.uint64(32))
    return (prefix + pd.Series(x).map("{:012x}".format)).to_numpy(dtype=object)


def _vocabulary(rng: np.random.Generator, size: int = 4000) -> np.ndarray:
    words = np.array(_WORDS, dtype=object)
    extra = size - len(words)
    parts = rng.integers(0, len(_SYLLABLES), size=(extra, 3))
    made = _SYLLABLES[parts[:, 0]] + _SYLLABLES[parts[:, 1]] + _SYLLABLES[parts[:, 2]]
    return np.unique(np.concatenate([words, made]))


def _join_words(word_idx: np.ndarray, lengths: np.ndarray, vocab: np.ndarray) -> np.ndarray:
    """Rows of word indices → space-joined strings of each row's first `lengths` words."""
    n, width = word_idx.shape
    out = np.full(n, "", dtype=object)
    for j in range(width):  # loop over word positions, vectorised over rows
        active = lengths > j
        sep = "" if j == 0 else " "
        out[active] = out[active] + sep + vocab[word_idx[active, j]]
    return out


def _zipf_choice(rng, n_items: int, size: int, a: float = 1.1) -> np.ndarray:
    p = 1.0 / np.arange(1, n_items + 1) ** a
    return rng.choice(n_items, size=size, p=p / p.sum())


def _ipv4(a: int, b: int, c, d) -> np.ndarray:
    return (np.uint64(a) << np.uint64(24)) | (np.uint64(b) << np.uint64(16)) | \
        (np.asarray(c, np.uint64) << np.uint64(8)) | np.asarray(d, np.uint64)


def _residential_ipv4(rng, size: int) -> np.ndarray:
    """Addresses in consumer ISP space: 2,000 /16 blocks, so /24s are shared by chance."""
    block = rng.integers(0, 2000, size=size)
    first = 24 + block // 256 * 7 % 170          # spreads blocks over public /8s 24..193
    second = block % 256
    return (first.astype(np.uint64) << np.uint64(24)) | (second.astype(np.uint64) << np.uint64(16)) | \
        rng.integers(0, 65536, size=size).astype(np.uint64)


# ---------------------------------------------------------------- accounts

def _assign_accounts(spec: WorldSpec, rng: np.random.Generator) -> pd.DataFrame:
    """One row per account: pattern, farm, group (campus/org/family/region/farm), key count."""
    n_farm_keys = int(round(spec.n_keys * FARM_KEY_SHARE))
    # farms: one of each tactic first, then tactics at random until the farm key budget is spent
    farm_rows = []
    keys_used, f = 0, 0
    while keys_used < max(n_farm_keys, 1) or f < len(FARM_TACTICS):
        tactic = FARM_TACTICS[f] if f < len(FARM_TACTICS) else FARM_TACTICS[rng.integers(len(FARM_TACTICS))]
        lo, hi = _FARM_ACCOUNTS[tactic]
        n_acc = int(rng.integers(lo, hi + 1))
        n_k = rng.choice([1, 2], size=n_acc, p=[0.7, 0.3])
        farm_rows.append(pd.DataFrame({"pattern": tactic, "farm": f, "group": f, "n_keys": n_k}))
        keys_used += int(n_k.sum())
        f += 1
    farms = pd.concat(farm_rows, ignore_index=True)

    n_benign_keys = max(spec.n_keys - int(farms["n_keys"].sum()), 1)
    n_benign = int(n_benign_keys / 1.25) + 1
    pattern = np.full(n_benign, "plain", dtype=object)
    group = np.zeros(n_benign, np.int64)
    order = rng.permutation(n_benign)
    start = 0
    for name, share in _BENIGN_SHARE.items():
        count = max(int(round(n_benign * share)), {"campus_nat": 150, "org": 6, "family_card": 2}
                    .get(name, 1))
        idx = order[start:start + count]
        count = len(idx)
        start += count
        pattern[idx] = name
        size = {"campus_nat": 300, "cgnat_mobile": 10**9, "cloud_region": 300, "family_card": 2.5,
                "org": 25, "heavy_user": 1, "ipv6_user": 20}[name]
        n_groups = max(1, int(round(count / size)))
        if name == "family_card":  # households of 2-3 accounts
            group[idx] = np.repeat(np.arange(count), rng.choice([2, 3], size=count))[:count]
        else:
            group[idx] = rng.integers(0, n_groups, size=count)
    n_keys = rng.choice([1, 2, 3], size=n_benign, p=[0.8, 0.15, 0.05])
    benign = pd.DataFrame({"pattern": pattern, "farm": -1, "group": group, "n_keys": n_keys})
    accounts = pd.concat([benign, farms], ignore_index=True)
    # trim or pad benign keys so the total matches n_keys exactly
    excess = int(accounts["n_keys"].sum()) - spec.n_keys
    if excess < 0:
        pad = pd.DataFrame({"pattern": "plain", "farm": -1, "group": 0, "n_keys": np.ones(-excess, np.int64)})
        accounts = pd.concat([benign, pad, farms], ignore_index=True)
        excess = 0
    if excess > 0:
        multi = np.flatnonzero((accounts["farm"].to_numpy() < 0) & (accounts["n_keys"].to_numpy() > 1))
        take = multi[:excess]
        accounts.loc[take, "n_keys"] -= 1
        excess -= len(take)
        if excess > 0:
            plain = np.flatnonzero(accounts["pattern"].to_numpy() == "plain")
            accounts = accounts.drop(index=plain[-excess:]).reset_index(drop=True)
    return accounts


def _account_attributes(acc: pd.DataFrame, spec: WorldSpec, rng) -> pd.DataFrame:
    """Creation time, sign-up domain, org id, payment instruments per account."""
    n = len(acc)
    pat = acc["pattern"].to_numpy()
    farm = acc["farm"].to_numpy()
    grp = acc["group"].to_numpy()
    day = 86400.0
    created = -rng.uniform(1, 400, size=n) * day            # seconds relative to START
    n_farms = int(farm.max()) + 1
    farm_birth = -rng.uniform(1, 30, size=n_farms) * day
    is_farm = farm >= 0
    fidx = np.where(is_farm, farm, 0)
    burst = rng.uniform(0, 2, size=n) * 3600.0
    weeks = rng.uniform(0, 42, size=n) * day
    farm_created = farm_birth[fidx] + np.where(pat == "slow_burn", -weeks, burst)
    created = np.where(is_farm, farm_created, created)

    consumer = np.array(["mailbox.example", "inbox.test", "postal.example", "webmail.test"], dtype=object)
    domain = consumer[rng.integers(0, len(consumer), size=n)]
    domain = np.where(pat == "campus_nat", "uni" + pd.Series(grp).astype(str).to_numpy() + ".edu", domain)
    domain = np.where(pat == "org", "corp" + pd.Series(grp).astype(str).to_numpy() + ".example", domain)
    org_id = np.where(pat == "org", "org_" + pd.Series(grp).astype(str).to_numpy(), None)

    # payment instruments: card ids (unique unless a pattern or tactic shares them)
    card = np.arange(n, dtype=np.int64)
    base = n
    family = pat == "family_card"
    card = np.where(family, base + grp, card); base += int(grp.max()) + 1
    org = pat == "org"
    card = np.where(org, base + grp, card); base += int(grp.max()) + 1
    one_card = np.isin(pat, ["naive", "tiny", "ipv6_rotation"])
    card = np.where(one_card, base + farm, card); base += n_farms
    rotation = np.isin(pat, ["card_rotation", "mixed_prompts"])
    within = acc.groupby("farm").cumcount().to_numpy()
    rot_card = base + farm * 64 + within // rng.integers(1, 4, size=n)
    card = np.where(rotation, rot_card, card)
    second = rng.random(n) < 0.1  # some accounts add a second, private card
    return pd.DataFrame({"created_at": created, "email_domain": domain, "org_id": org_id,
                         "card": card, "second_card": np.where(second, 10**9 + np.arange(n), -1)})


# ---------------------------------------------------------------- network and devices per account

def _account_network(acc: pd.DataFrame, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Four IP slots per account (version, hi, lo) and per-slot use probabilities by pattern."""
    n = len(acc)
    pat = acc["pattern"].to_numpy()
    grp = acc["group"].to_numpy()
    farm = acc["farm"].to_numpy()
    version = np.full((n, 4), 4, np.int8)
    hi = np.zeros((n, 4), np.uint64)
    lo = _residential_ipv4(rng, n * 4).reshape(n, 4)
    lo[:, 1:] = np.where(rng.random((n, 3)) < 0.5, lo[:, :1], lo[:, 1:])  # home IP dominates

    def put(mask, values):
        lo[mask] = values

    m = pat == "campus_nat"  # two egress IPs in one /24 per campus
    put(m, _ipv4(128, 30, grp[m, None] % 256, 10 + np.array([0, 1, 0, 1])[None, :]) * np.ones((1, 4), np.uint64))
    m = pat == "cgnat_mobile"  # carrier NAT pool in 100.64.0.0/10, shared at random
    pool = max(int(m.sum() // 8), 1)
    pick = rng.integers(0, pool, size=(int(m.sum()), 4))
    put(m, (np.uint64(100) << np.uint64(24)) | np.uint64(64 << 16) + pick.astype(np.uint64) * np.uint64(7))
    m = pat == "cloud_region"  # a few cloud /24s per region, any host
    put(m, _ipv4(52, 20 + grp[m, None] % 50, rng.integers(0, 3, size=(int(m.sum()), 4)),
                 rng.integers(1, 255, size=(int(m.sum()), 4))))
    m = pat == "family_card"  # one home
    put(m, np.repeat(_residential_ipv4(np.random.default_rng(int(grp.max()) + 11), int(grp.max()) + 1)[grp[m]][:, None], 4, axis=1))
    m = pat == "org"  # office IP, sometimes home
    office = _ipv4(198, 51, grp[m] % 256, 20)
    put(m, np.where(rng.random((int(m.sum()), 4)) < 0.8, office[:, None], lo[m]))

    n_farms = int(farm.max()) + 1
    farm_ip = _residential_ipv4(rng, n_farms * 4).reshape(n_farms, 4)
    m = np.isin(pat, ["naive", "tiny"])
    put(m, np.repeat(farm_ip[farm[m], :1], 4, axis=1))
    m = np.isin(pat, ["card_rotation", "mixed_prompts", "slow_burn"])  # a few farm IPs
    put(m, farm_ip[farm[m]][:, rng.permutation(4)])
    m = pat == "proxy_rotation"  # ring of proxy IPs: each IP on ~3 farm accounts, many /24s
    within = acc.groupby("farm").cumcount().to_numpy()[m]
    size = acc.groupby("farm")["farm"].transform("size").to_numpy()[m]
    proxy_base = _residential_ipv4(rng, int(m.sum()) * 1)  # one proxy IP per account position
    ring = np.stack([(within + s) % size for s in range(3)] + [(within + 1) % size], axis=1)
    first_row = np.flatnonzero(m)
    farm_start = pd.Series(np.arange(int(m.sum()))).groupby(farm[m]).transform("min").to_numpy()
    put(m, proxy_base[farm_start[:, None] + ring])
    del first_row

    # IPv6: household /64 inside an ISP /48 shared with ~20 others; rotation farms: one /48, /64 each
    m6 = pat == "ipv6_user"
    prefix48 = (np.uint64(0x20010db8) << np.uint64(32)) | (grp[m6].astype(np.uint64) << np.uint64(16))
    sub = rng.integers(0, 65536, size=int(m6.sum())).astype(np.uint64)
    version[m6] = 6
    hi[m6] = (prefix48 | sub)[:, None]
    m6f = pat == "ipv6_rotation"
    within = acc.groupby("farm").cumcount().to_numpy()[m6f]
    prefix48 = (np.uint64(0x2a0a0000) << np.uint64(32)) | (farm[m6f].astype(np.uint64) << np.uint64(16))
    version[m6f] = 6
    hi[m6f] = (prefix48 | within.astype(np.uint64))[:, None]
    slot_p = np.tile([0.7, 0.1, 0.1, 0.1], (n, 1))
    return version, hi, lo, slot_p


def _account_devices(acc: pd.DataFrame, rng) -> tuple[np.ndarray, np.ndarray]:
    """Device fingerprint and user agent per account: popular SDKs for most, custom for farms."""
    n = len(acc)
    pat = acc["pattern"].to_numpy()
    farm = acc["farm"].to_numpy()
    sdk = _zipf_choice(rng, len(POPULAR_SDK), n, a=1.3)
    fp = np.array(POPULAR_SDK, dtype=object)[sdk]
    ua = np.array(POPULAR_UA, dtype=object)[sdk]
    browser = rng.random(n) < 0.25  # browsers and unusual clients: nearly unique fingerprints
    uniq = "t13d" + pd.Series(rng.integers(0, 2**40, size=n)).map("{:010x}".format).to_numpy()
    fp = np.where(browser & (farm < 0), uniq, fp)
    fp = np.where(pat == "cloud_region", POPULAR_SDK[0], fp)
    custom = np.isin(pat, ["naive", "card_rotation", "proxy_rotation", "ipv6_rotation", "tiny",
                           "mixed_prompts"])
    farm_fp = "t13d" + pd.Series(farm * 7919 + 17).map("{:06x}ff_farmclient".format).to_numpy()
    fp = np.where(custom, farm_fp, fp)
    ua = np.where(custom, "python-requests/2.31.0", ua)
    return fp, ua


# ---------------------------------------------------------------- prompts

def _prompt_pools(acc: pd.DataFrame, vocab: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Benign prompts (a few of each account's own) and farm paraphrase pools.

    Returns (texts, account_offset, account_count): account a draws its non-popular prompts from
    texts[offset[a] : offset[a] + count[a]].
    """
    n = len(acc)
    farm = acc["farm"].to_numpy()
    per_benign = 3
    nb = int((farm < 0).sum())
    lengths = rng.integers(4, 40, size=nb * per_benign)
    words = _zipf_choice(rng, len(vocab), nb * per_benign * 40, a=1.05).reshape(-1, 40)
    benign_texts = _join_words(words, lengths, vocab)

    n_farms = int(farm.max()) + 1
    per_farm = 60
    tmpl_len = rng.integers(25, 60, size=n_farms)
    templates = rng.integers(0, len(vocab), size=(n_farms, 60))
    rows = np.repeat(np.arange(n_farms), per_farm)
    words = templates[rows].copy()
    swap = rng.random(words.shape) < 0.08                        # light paraphrase: word swaps
    words[swap] = rng.integers(0, len(vocab), size=int(swap.sum()))
    slot = rng.integers(0, len(vocab), size=(len(rows), 3))      # the task item slot
    words[:, 5:8] = slot
    cut = tmpl_len[rows] - rng.integers(0, 4, size=len(rows))    # small deletions at the end
    farm_texts = _join_words(words, cut, vocab)

    texts = np.concatenate([benign_texts, farm_texts])
    offset = np.zeros(n, np.int64)
    count = np.zeros(n, np.int64)
    bidx = np.flatnonzero(farm < 0)
    offset[bidx] = np.arange(nb) * per_benign
    count[bidx] = per_benign
    fidx = np.flatnonzero(farm >= 0)
    offset[fidx] = len(benign_texts) + farm[fidx] * per_farm
    count[fidx] = per_farm
    return texts, offset, count


# ---------------------------------------------------------------- requests

def _requests(acc, keys, net, devices, prompts, spec: WorldSpec, rng) -> pd.DataFrame:
    pat = acc["pattern"].to_numpy()
    farm = acc["farm"].to_numpy()
    k_acc = keys["account"].to_numpy()
    k_pat = pat[k_acc]
    k_farm = farm[k_acc]
    is_farm = k_farm >= 0
    mean = np.where(is_farm, 2.0, 1.0) * np.where(k_pat == "heavy_user", 3.0, 1.0)
    mean = mean * spec.requests_per_key / mean.mean()
    n_rows = rng.poisson(mean) + 1
    rk = np.repeat(np.arange(len(keys)), n_rows)          # request → key
    ra = k_acc[rk]                                        # request → account
    n = len(rk)

    # time: benign uniform over the days with a diurnal bump; farms in shared 5-minute bursts
    day = rng.integers(0, spec.days, size=n)
    hour = rng.normal(14, 4, size=n) % 24  # a diurnal bump around 14:00 UTC
    secs = day * 86400 + hour * 3600
    n_farms = int(farm.max()) + 1
    bursts = rng.uniform(0, spec.days * 86400 - 600, size=(n_farms, 24))
    rf = farm[ra]
    fb = bursts[np.maximum(rf, 0), rng.integers(0, 24, size=n)] + rng.uniform(0, 300, size=n)
    secs = np.where(rf >= 0, fb, secs)
    ts = START + pd.to_timedelta(np.round(secs, 3), unit="s")

    version, hi, lo, slot_p = net
    slot = (rng.random(n)[:, None] > np.cumsum(slot_p[ra], axis=1)).sum(axis=1)
    slot = np.minimum(slot, 3)
    ver = version[ra, slot]
    ip_hi = hi[ra, slot]
    ip_lo = lo[ra, slot]
    v6 = ver == 6
    ip_lo = np.where(v6, rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64), ip_lo)
    ip = _format_ips(ver, ip_hi, ip_lo)

    fp, ua = devices
    texts, offset, count = prompts
    own = offset[ra] + (rng.random(n) * count[ra]).astype(np.int64)
    prompt = texts[own]
    popular_p = np.where(rf >= 0, np.where(pat[ra] == "mixed_prompts", 0.5, 0.02), 0.3)
    popular = rng.random(n) < popular_p
    pop_idx = _zipf_choice(rng, len(POPULAR_PROMPTS), n, a=1.2)
    prompt = np.where(popular, np.array(POPULAR_PROMPTS, dtype=object)[pop_idx], prompt)
    prompt = np.where(rng.random(n) < 0.01, None, prompt)

    # tokens: each key's daily use is a fraction of its limit; farms and heavy users run near it
    limit = keys["limit_for_usage"].to_numpy()
    use = np.where(is_farm | (k_pat == "heavy_user"), rng.uniform(0.8, 0.97, size=len(keys)),
                   rng.beta(1.2, 9, size=len(keys)))
    per_row = use * limit * spec.days / n_rows
    tokens = np.maximum((per_row[rk] * rng.uniform(0.7, 1.3, size=n)).astype(np.int64), 1)
    prompt_tokens = np.maximum((tokens * rng.uniform(0.2, 0.6, size=n)).astype(np.int64), 1)
    frame = pd.DataFrame({
        "key_id": keys["key_id"].to_numpy()[rk], "ts": ts, "ip": ip,
        "device_fingerprint": fp[ra], "user_agent": ua[ra], "prompt": prompt,
        "prompt_tokens": prompt_tokens, "completion_tokens": tokens - prompt_tokens,
    })
    return frame.sort_values(["ts", "key_id"], kind="stable").reset_index(drop=True)


def _format_ips(version: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Text form of IPs: dotted quad for v4; eight hex groups for v6 (io canonicalises)."""
    from keyfarm.ipaddr import format_ipv4

    out = np.empty(len(version), dtype=object)
    v4 = version == 4
    out[v4] = format_ipv4(lo[v4])
    v6 = ~v4
    if v6.any():
        groups = []
        for word, shift in ((hi, 48), (hi, 32), (hi, 16), (hi, 0), (lo, 48), (lo, 32), (lo, 16), (lo, 0)):
            g = (word[v6] >> np.uint64(shift)) & np.uint64(0xFFFF)
            groups.append(pd.Series(g).map("{:x}".format))
        text = groups[0]
        for g in groups[1:]:
            text = text + ":" + g
        out[v6] = text.to_numpy(dtype=object)
    return out


# ---------------------------------------------------------------- the world

def generate_world(n_keys: int, seed: int = 0, *, days: int = 3, requests_per_key: float = 10.0,
                   dirty_rows: int = 0) -> dict[str, pd.DataFrame]:
    """A synthetic world: SCHEMA.md input tables `keys`, `accounts`, `payments`, `requests`, plus `truth`."""
    if n_keys < MIN_KEYS:
        raise ValueError(f"a world needs at least {MIN_KEYS} keys to hold every pattern and tactic")
    spec = WorldSpec(n_keys=n_keys, seed=seed, days=days, requests_per_key=requests_per_key,
                     dirty_rows=dirty_rows)
    rng = np.random.default_rng(seed)
    acc = _assign_accounts(spec, rng)
    attrs = _account_attributes(acc, spec, rng)
    account_ids = _ids("acct_", len(acc), 0x51ED)
    n_farms = int(acc["farm"].max()) + 1
    farm_ids = _ids("farm_", n_farms, 0xFA4)

    k_acc = np.repeat(np.arange(len(acc)), acc["n_keys"].to_numpy())
    key_created = attrs["created_at"].to_numpy()[k_acc] + \
        rng.uniform(0, 86400.0, size=len(k_acc)) * (acc["farm"].to_numpy()[k_acc] < 0)
    tiers = np.array([50_000, 100_000, 200_000, 1_000_000])
    limit = tiers[rng.choice(4, size=len(k_acc), p=[0.3, 0.45, 0.2, 0.05])]
    limit = np.where(acc["farm"].to_numpy()[k_acc] >= 0, 100_000, limit)
    declared = np.where(rng.random(len(k_acc)) < 0.05, np.nan, limit.astype(float))
    keys = pd.DataFrame({"key_id": _ids("key_", len(k_acc), 0x4B3), "account": k_acc,
                         "created_at": _at(key_created),
                         "limit_for_usage": np.where(np.isnan(declared), 100_000, limit)})
    keys["account_id"] = account_ids[k_acc]
    keys["daily_token_limit"] = pd.array(declared, dtype="Float64").astype("Int64")

    vocab = _vocabulary(np.random.default_rng([seed, 1]))
    requests = _requests(acc, keys, _account_network(acc, rng), _account_devices(acc, rng),
                         _prompt_pools(acc, vocab, rng), spec, rng)
    if dirty_rows:
        requests = pd.concat([requests, _dirty(requests, dirty_rows, rng)], ignore_index=True)

    accounts = pd.DataFrame({"account_id": account_ids,
                             "created_at": _at(attrs["created_at"].to_numpy()),
                             "email_domain": attrs["email_domain"], "org_id": attrs["org_id"]})
    cards = pd.concat([
        pd.DataFrame({"account_id": account_ids, "card": attrs["card"]}),
        pd.DataFrame({"account_id": account_ids, "card": attrs["second_card"]}).query("card >= 0"),
    ], ignore_index=True)
    payments = pd.DataFrame({"account_id": cards["account_id"],
                             "payment_fingerprint": "pf_" + pd.Series(
                                 (cards["card"].to_numpy(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
                             ).map("{:016x}".format)})
    farm = acc["farm"].to_numpy()[k_acc]
    truth = pd.DataFrame({"key_id": keys["key_id"],
                          "farm_id": np.where(farm >= 0, farm_ids[np.maximum(farm, 0)], None),
                          "pattern": acc["pattern"].to_numpy()[k_acc]})
    keys_out = keys[["key_id", "account_id", "created_at", "daily_token_limit"]]
    return {"keys": keys_out, "accounts": accounts, "payments": payments, "requests": requests,
            "truth": truth}


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


def write_world(world: dict[str, pd.DataFrame], out_dir: str | Path) -> Path:
    """Write each table as <name>.parquet in out_dir (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in world.items():
        frame = frame.copy()
        for col in frame.columns:
            if frame[col].dtype == object:
                frame[col] = frame[col].astype("string") if name != "requests" or col != "ts" \
                    else frame[col].astype(str)
        frame.to_parquet(out / f"{name}.parquet", index=False)
    return out
