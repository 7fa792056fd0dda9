"""Building blocks shared by every pattern module: constants, id and text helpers, address helpers,
and the two containers a pattern works with (`Context`: the world being built; `new_block`: one
block of accounts, one column per behaviour the traffic engine reads).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

START = pd.Timestamp("2026-11-01T00:00:00Z")   # a Sunday
START_WEEKDAY = 6                               # Monday = 0
DAY = 86400.0
HOUR = 3600.0

POPULAR_SDK = ("t13d1516h2_8daaf6152771_e5627efa2ab1", "t13d1715h2_5b57614c22b0_3d5424432f57",
               "t13d1516h2_8daaf6152771_02713d6af862", "t13d301000_1d37bd780c83_d339722ba4af",
               "t13d1812h1_85036bcba153_b26ce05bbdd6", "t12d1209h1_d34a8e72043a_b39be8c56a14")
POPULAR_UA = ("acme-sdk-python/1.52.0", "acme-sdk-node/4.71.2", "python-httpx/0.27.0",
              "curl/8.5.0", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "acme-sdk-go/0.9.1")
BROWSER_UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15",
              "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
              "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X)",
              "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0")
FARM_UA = ("python-requests/2.31.0", "aiohttp/3.9.5", "Go-http-client/2.0", "okhttp/4.12.0",
           "node-fetch/1.0")
# what clients send when they send no fingerprint: empty, placeholder text, or nothing at all
PLACEHOLDER_DEVICES = ("", "unknown", "-", None)
POPULAR_PROMPTS = ("hello", "hi", "Summarize the following text:", "test",
                   "Translate the following into French:", "What is the capital of France?",
                   "You are a helpful assistant.", "Write a haiku about autumn.",
                   "Explain quantum computing in simple terms.", "ping",
                   "Fix the grammar in this sentence:", "Tell me a joke.")
CONSUMER_DOMAINS = ("mailbox.example", "inbox.test", "postal.example", "webmail.test", "mail.test",
                    "letters.example")
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

# time modes of an account's background activity (the traffic engine's `time_mode`)
DIURNAL, UNIFORM, BUSINESS = 0, 1, 2


# ---------------------------------------------------------------- ids, draws, text

def ids(prefix: str, n: int, salt: int) -> np.ndarray:
    """Unique opaque ids: an odd-multiplier bijection of 0..n-1 printed in hex."""
    x = (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B1) + np.uint64(salt)) & np.uint64(0xFFFFFFFF)
    x = x ^ (np.arange(n, dtype=np.uint64) << np.uint64(32))
    return (prefix + pd.Series(x).map("{:012x}".format)).to_numpy(dtype=object)


def zipf_choice(rng, n_items: int, size: int, a: float = 1.1) -> np.ndarray:
    p = 1.0 / np.arange(1, n_items + 1) ** a
    return rng.choice(n_items, size=size, p=p / p.sum())


def members(ctx, n: int, median: float, sigma: float, floor: int) -> tuple[np.ndarray, np.ndarray]:
    """Group index of each of n members (groups of lognormal size, `group_sizes`) and the groups'
    new global ids: accounts into campuses, companies into CI crowds, labs into benchmarks."""
    sizes = group_sizes(ctx.rng, n, median, sigma, floor)
    member = np.repeat(np.arange(len(sizes)), sizes)[:n]
    return member, ctx.groups(len(sizes))


def group_sizes(rng, total: int, median: float, sigma: float, floor: int) -> np.ndarray:
    """Sizes (lognormal around `median`, at least `floor`) of groups that together hold `total`."""
    total = max(int(total), floor)
    sizes = []
    left = total
    while left > 0:
        s = max(int(round(median * np.exp(sigma * rng.standard_normal()))), floor)
        if left - s < floor:
            s = left
        sizes.append(s)
        left -= s
    return np.array(sizes, np.int64)


def vocabulary(rng, size: int = 6000) -> np.ndarray:
    words = np.array(_WORDS, dtype=object)
    parts = rng.integers(0, len(_SYLLABLES), size=(size - len(words), 3))
    made = _SYLLABLES[parts[:, 0]] + _SYLLABLES[parts[:, 1]] + _SYLLABLES[parts[:, 2]]
    return np.unique(np.concatenate([words, made]))


def join_words(word_idx: np.ndarray, lengths: np.ndarray, vocab: np.ndarray) -> np.ndarray:
    """Rows of word indices → space-joined strings of each row's first `lengths` words."""
    n, width = word_idx.shape
    out = np.full(n, "", dtype=object)
    for j in range(width):  # loop over word positions, vectorised over rows
        active = lengths > j
        out[active] = out[active] + ("" if j == 0 else " ") + vocab[word_idx[active, j]]
    return out


# ---------------------------------------------------------------- addresses

def ipv4(a, b, c, d) -> np.ndarray:
    return (np.asarray(a, np.uint64) << np.uint64(24)) | (np.asarray(b, np.uint64) << np.uint64(16)) | \
        (np.asarray(c, np.uint64) << np.uint64(8)) | np.asarray(d, np.uint64)


def residential_ipv4(rng, size) -> np.ndarray:
    """Addresses in consumer ISP space: 2,000 /16 blocks, so /24s are shared by chance."""
    block = rng.integers(0, 2000, size=size)
    first = 24 + block // 256 * 7 % 170          # spreads blocks over public /8s 24..193
    return (first.astype(np.uint64) << np.uint64(24)) | ((block % 256).astype(np.uint64) << np.uint64(16)) | \
        rng.integers(0, 65536, size=size).astype(np.uint64)


def datacenter_ipv4(rng, size) -> np.ndarray:
    """Addresses in hosting space (private servers and rented proxies): 45.x, 91.x, 185.x, 193.x."""
    first = np.array([45, 91, 185, 193], np.uint64)[rng.integers(0, 4, size=size)]
    return (first << np.uint64(24)) | rng.integers(0, 2**24, size=size).astype(np.uint64)


def cloud_ipv4(rng, region: np.ndarray, size) -> np.ndarray:
    """Rotating addresses of a public cloud region: a few /24s in 52.x/16 and 34.x/16 per region."""
    region = np.asarray(region, np.int64)
    first = np.where(region % 2 == 0, 52, 34)
    return ipv4(first, 16 + region % 200, rng.integers(0, 4, size=size), rng.integers(1, 255, size=size))


def carrier_pool(rng, size: int, carrier: int) -> np.ndarray:
    """`size` distinct addresses of carrier number `carrier`'s block (a /14) inside 100.64.0.0/10."""
    block = np.uint64(100 << 24 | 64 << 16) + np.uint64(carrier % 16) * np.uint64(2**18)
    return block + rng.choice(2**18, size=min(size, 2**18), replace=False).astype(np.uint64)


def format_ips(version: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Text form of IPs: dotted quad for v4 (each distinct address formatted once); eight hex
    groups for v6 (io canonicalises)."""
    from keyfarm.ipaddr import format_ipv4

    out = np.empty(len(version), dtype=object)
    v4 = np.flatnonzero(version == 4)
    codes, uniques = pd.factorize(lo[v4])
    out[v4] = format_ipv4(np.asarray(uniques, np.uint64))[codes]
    v6 = np.flatnonzero(version != 4)
    if v6.size:
        text = None
        for word, shift in ((hi, 48), (hi, 32), (hi, 16), (hi, 0), (lo, 48), (lo, 32), (lo, 16), (lo, 0)):
            g = pd.Series((word[v6] >> np.uint64(shift)) & np.uint64(0xFFFF)).map("{:x}".format)
            text = g if text is None else text + ":" + g
        out[v6] = text.to_numpy(dtype=object)
    return out


# ---------------------------------------------------------------- the world being built

@dataclass
class Context:
    """What pattern modules share while a world is built: the random state, the drawn parameters,
    and the tables that blocks index into (texts, time slots, address pools, device strings)."""

    rng: np.random.Generator
    params: dict
    vocab: np.ndarray
    days: int
    texts: list = field(default_factory=list)
    n_texts: int = 0
    slots: list = field(default_factory=list)
    n_slots: int = 0
    pool: list = field(default_factory=list)   # (version, hi, lo) arrays
    n_pool: int = 0
    devices: list = field(default_factory=list)
    n_devices: int = 0
    next_card: int = 0
    next_group: int = 0
    home_ips: np.ndarray | None = None          # plain accounts' home addresses (hydra exits)

    @property
    def world(self) -> dict:
        return self.params["world"]

    @property
    def span(self) -> float:
        return self.days * DAY

    def add_texts(self, texts: np.ndarray) -> int:
        self.texts.append(np.asarray(texts, dtype=object))
        self.n_texts += len(texts)
        return self.n_texts - len(texts)

    def add_slots(self, seconds: np.ndarray) -> int:
        self.slots.append(np.asarray(seconds, np.float64))
        self.n_slots += len(seconds)
        return self.n_slots - len(seconds)

    def add_pool(self, lo: np.ndarray, version: int = 4, hi=None) -> int:
        lo = np.asarray(lo, np.uint64)
        hi = np.zeros(lo.size, np.uint64) if hi is None else np.asarray(hi, np.uint64)
        self.pool.append((np.full(lo.size, version, np.int8), hi, lo))
        self.n_pool += lo.size
        return self.n_pool - lo.size

    def add_devices(self, strings) -> int:
        strings = np.asarray(strings, dtype=object)
        self.devices.append(strings)
        self.n_devices += len(strings)
        return self.n_devices - len(strings)

    def cards(self, n: int) -> np.ndarray:
        out = np.arange(self.next_card, self.next_card + n, dtype=np.int64)
        self.next_card += n
        return out

    def groups(self, n: int) -> np.ndarray:
        out = np.arange(self.next_group, self.next_group + n, dtype=np.int64)
        self.next_group += n
        return out

    # ------------------------------------------------------------ text

    def phrases(self, n: int, lo: int = 3, hi: int = 30) -> np.ndarray:
        """`n` fresh prompt-like texts of lo..hi words (Zipf over the vocabulary: common words repeat,
        whole texts practically never do)."""
        rng = self.rng
        lengths = rng.integers(lo, hi + 1, size=n)
        words = zipf_choice(rng, len(self.vocab), n * hi, a=1.05).reshape(n, hi)
        return join_words(words, lengths, self.vocab)

    def template(self, n_words: int) -> np.ndarray:
        """Word indices of one fixed template (rare words: a template belongs to one author)."""
        return self.rng.integers(0, len(self.vocab), size=n_words)

    def paraphrases(self, template: np.ndarray, n: int, *, edit: float, slot_words: int = 3,
                    cut: int = 3) -> np.ndarray:
        """`n` light paraphrases of one template: a share `edit` of words swapped, a task slot
        filled anew, up to `cut` words dropped at the end."""
        rng = self.rng
        words = np.tile(template, (n, 1))
        swap = rng.random(words.shape) < edit
        words[swap] = rng.integers(0, len(self.vocab), size=int(swap.sum()))
        at = min(5, max(len(template) - slot_words, 0))
        words[:, at:at + slot_words] = rng.integers(0, len(self.vocab), size=(n, min(slot_words, len(template) - at)))
        lengths = len(template) - rng.integers(0, cut + 1, size=n)
        return join_words(words, np.maximum(lengths, 1), self.vocab)

    def words_text(self, word_idx: np.ndarray) -> str:
        return " ".join(self.vocab[word_idx])

    # ------------------------------------------------------------ benign draws

    def limits(self, n: int) -> np.ndarray:
        w = self.world
        p = np.asarray(w["limit_tier_p"], np.float64)
        return np.asarray(w["limit_tiers"], np.int64)[self.rng.choice(len(p), size=n, p=p / p.sum())]

    def benign_usage(self, n: int) -> np.ndarray:
        a, b = self.world["benign_usage_beta"]
        use = self.rng.beta(a, b, size=n)
        power = self.rng.random(n) < self.world["power_user_share"]
        return np.where(power, self.rng.uniform(0.4, 1.0, size=n), use)

    def keys_per_account(self, n: int, p=None) -> np.ndarray:
        p = np.asarray(self.world["keys_per_account_p"] if p is None else p, np.float64)
        return self.rng.choice(np.arange(1, len(p) + 1), size=n, p=p / p.sum())

    def tz_centres(self, n: int) -> np.ndarray:
        """UTC hour around which each account's day peaks (the world's mix of regions)."""
        reg = self.world["regions"]
        weights = np.asarray(reg["weights"], np.float64)
        pick = self.rng.choice(len(reg["peak_utc"]), size=n, p=weights / weights.sum())
        return (np.asarray(reg["peak_utc"])[pick] + self.rng.normal(0, 1.0, size=n)) % 24

    def client_devices(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Device fingerprint and User-Agent of ordinary clients: popular SDKs, browsers (nearly
        unique fingerprints), and clients that send a placeholder or nothing."""
        rng, w = self.rng, self.world
        sdk = zipf_choice(rng, len(POPULAR_SDK), n, a=w["sdk_zipf"])
        fp = np.array(POPULAR_SDK, dtype=object)[sdk]
        ua = np.array(POPULAR_UA, dtype=object)[sdk]
        browser = rng.random(n) < w["browser_share"]
        fp = np.where(browser, unique_fingerprints(rng, n), fp)
        ua = np.where(browser, np.array(BROWSER_UA, dtype=object)[rng.integers(0, len(BROWSER_UA), n)], ua)
        blank = rng.random(n) < w["placeholder_device_share"]
        fp = np.where(blank, np.array(PLACEHOLDER_DEVICES, dtype=object)[rng.integers(0, 4, n)], fp)
        ua = np.where(rng.random(n) < w["missing_ua_share"], None, ua)
        return fp, ua


def unique_fingerprints(rng, n: int, prefix: str = "t13d") -> np.ndarray:
    return (prefix + pd.Series(rng.integers(0, 2**40, size=n)).map("{:010x}".format)).to_numpy(dtype=object)


def new_block(ctx: Context, pattern: str, n: int) -> dict:
    """`n` accounts behaving like ordinary individuals; a pattern overrides what makes it itself.

    Columns: identity (pattern, farm, group), keys and limits, creation (use_at_creation: each
    key's first request within minutes of the key's creation), sign-up and payment,
    usage and request rate, activity (window t0..t1, mode, peak hour, width, shared time slots),
    addresses (four own slots with use probabilities, plus a shared pool), device and User-Agent
    (plus a shared rotation pool), prompts (own pool, shared pool, popular prompts).
    """
    rng, w = ctx.rng, ctx.world
    age = rng.uniform(1, w["max_account_age_days"], size=n) * DAY
    created = -age
    home = residential_ipv4(rng, n * 4).reshape(n, 4)
    home[:, 1:] = np.where(rng.random((n, 3)) < 0.5, home[:, :1], home[:, 1:])  # home IP dominates
    p_home = rng.uniform(0.5, 0.95, size=n)
    ip_p = np.stack([p_home] + [(1 - p_home) / 3] * 3, axis=1)
    fp, ua = ctx.client_devices(n)
    card = np.where(rng.random(n) < w["card_share"], ctx.cards(n), -1)
    card2 = np.where(rng.random(n) < w["second_card_share"], ctx.cards(n), -1)
    n_own = rng.integers(1, 6, size=n)
    own_off = ctx.add_texts(ctx.phrases(int(n_own.sum()), 5, 40)) + np.concatenate([[0], np.cumsum(n_own)[:-1]])
    return {
        "pattern": np.full(n, pattern, dtype=object), "farm": np.full(n, -1, np.int64),
        "group": np.full(n, -1, np.int64),
        "n_keys": ctx.keys_per_account(n), "limit": ctx.limits(n),
        "created": created, "key_created": created + rng.uniform(0, 1, size=n) * np.minimum(age, 60 * DAY),
        "key_spread": np.full(n, DAY), "use_at_creation": np.zeros(n, bool),
        "email_domain": np.array(CONSUMER_DOMAINS, dtype=object)[rng.integers(0, len(CONSUMER_DOMAINS), n)],
        "org_id": np.full(n, None, dtype=object), "card": card, "card2": card2,
        "usage": ctx.benign_usage(n), "rate": np.ones(n),
        "t0": np.zeros(n), "t1": np.full(n, ctx.span), "time_mode": np.full(n, DIURNAL, np.int8),
        "tz": ctx.tz_centres(n), "width": rng.uniform(*w["diurnal_width"], size=n),
        "slot_off": np.zeros(n, np.int64), "slot_n": np.zeros(n, np.int64), "slot_p": np.zeros(n),
        "jitter": np.zeros(n),
        "ip_ver": np.full((n, 4), 4, np.int8), "ip_hi": np.zeros((n, 4), np.uint64), "ip_lo": home,
        "ip_p": ip_p, "ip_rand64": np.zeros((n, 4), bool),
        "pool_off": np.zeros(n, np.int64), "pool_n": np.zeros(n, np.int64), "pool_p": np.zeros(n),
        "device": fp, "user_agent": ua,
        "dev_off": np.zeros(n, np.int64), "dev_n": np.zeros(n, np.int64), "dev_p": np.zeros(n),
        "own_off": own_off.astype(np.int64), "own_n": n_own.astype(np.int64),
        "shared_off": np.zeros(n, np.int64), "shared_n": np.zeros(n, np.int64), "shared_p": np.zeros(n),
        "popular_p": np.full(n, w["popular_prompt_p"]), "none_p": np.full(n, 0.01),
    }


def take(block: dict, rows: np.ndarray) -> dict:
    """Rows of a block (a new block)."""
    return {k: v[rows] for k, v in block.items()}


def concat_blocks(blocks: list[dict]) -> dict:
    keys = blocks[0].keys()
    for b in blocks:
        bad = [k for k in keys if np.ndim(b[k]) == 0 or len(b[k]) != len(b["farm"])]
        if bad:
            raise ValueError(f"block {b['pattern'][:1]}: columns {bad} are not one row per account")
    return {k: np.concatenate([b[k] for b in blocks]) for k in keys}
