"""Prompt signal (signals stage): near-duplicate prompts across accounts, by MinHash + LSH in Numba.

Pipeline: a prompt's first `max_chars` code points are normalised (lower-case; decimal digits → "0";
everything that is not a letter, mark or number, including punctuation, "_" and emoji, → a space;
spaces collapsed and stripped), identical normalised prompts are de-duplicated (logs repeat), each
distinct prompt is shingled (character 9-grams by default, or word n-grams; a prompt shorter than
one n-gram is one shingle, its whole text, so short prompts never share a bucket unless equal), MinHashed
into `num_perm` values and cut into `bands` bands of `rows` values. The MinHash is one-permutation
hashing with optimal densification by default (one seeded hash per shingle picks one of num_perm
bins and a value, each bin keeps its least value, empty bins copy a non-empty one along a fixed
probe sequence), or, with prompt.minhash = "classic", num_perm universal hash functions per
shingle (a*x + b mod 2**31-1, a and b drawn from np.random.default_rng(seed)); both agree in a
value with probability the Jaccard similarity J of the shingle sets. Two prompts of Jaccard
similarity J share a given band with probability J**rows, and at least one band with probability
1 - (1 - J**rows)**bands: a threshold near (1/bands)**(1/rows). The defaults (character 9-grams,
32 × 4, threshold 0.42) were measured with scripts/measure_shingles.py (see PromptConfig).

Evidence (the incidence `weight`): one near-duplicate prompt shared by two keys is about one unit.
- Each band bucket is a token `lsh:<band>:<16 hex>` and a key ties to it with weight tie/bands, so
  two keys whose prompts share m bands get m/bands: 1 for identical prompts, about J**rows for
  near-duplicates, 1/bands for a chance collision in one band.
- A key ties to a token once however often, and with however many of its prompts, it reaches it,
  so volume is not evidence; `count` keeps the number of requests.
- tie = min(1, chatty_prompts / distinct prompts of the key): a key with thousands of distinct
  prompts has thousands of chances to collide with someone, so each of its ties is weaker and it
  cannot dominate the graph. Farm keys that share a template still share many tokens.
- Only tokens reached by two or more accounts are emitted (a token on one account links nothing
  across accounts). The bands of a prompt whose bucket holds no other distinct prompt all link the
  same keys, so they are emitted as one token `pdup:<16 hex>` (hash of the normalised text) with
  weight tie × (such bands)/bands: the same evidence in one row instead of up to `bands`.
Popular prompts ("hello", "Summarize the following text:") become tokens on thousands of accounts:
the graph builder treats them as hubs (caps.prompt), drops and reports them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

from keyfarm.errors import KeyfarmConfigError
from keyfarm.signals import make_incidence, pair_stats, sorted_groups, ts_ns
from keyfarm.signals.minhash import (CHARS, PRIME, WORDS, band_hashes, char_tables, minhash_parallel,
                                     minhash_serial, normalize_parallel, normalize_serial, oph_parallel,
                                     oph_raw_parallel, oph_raw_serial, oph_serial, text_hashes_parallel,
                                     text_hashes_serial, ascii_outputs)

log = logging.getLogger(__name__)

PROMPT_LIMITS = {"num_perm": 1024, "shingle_words": 32, "shingle_chars": 64, "max_chars": 1_000_000}
MINHASH_METHODS = ("oph", "classic")
PARALLEL_MIN_DOCS = 2000   # below this the serial kernels win (thread start-up); measured in bench_prompt
_NO_LIMIT = np.iinfo(np.int64).max


@dataclass(frozen=True)
class PromptConfig:
    """Prompt hashing settings; defaults measured with scripts/measure_shingles.py (seed 0) and on a
    generated world (keyfarm.synth, 6,000 keys).

    On paraphrased templates (10 % / 20 % of words edited) against unrelated prompts, character
    9-grams with 32 bands × 4 rows (threshold 0.42) found 0.69 / 0.21 of paraphrase pairs at a
    false-positive rate of 0.0027 per unrelated pair; word 3-grams with 32 × 4 found only 0.36 /
    0.04 (0.0010). Shorter character n-grams found more (char 4-grams, 25 × 5: 0.90 / 0.64) but
    on the generated world's short benign prompts they put 1,946 units of prompt evidence on
    pairs outside farms (char 9-grams: 9.2, word 3-grams: 2.4) against about 7,000 inside farms.
    """

    num_perm: int = 128         # MinHash values; estimate's standard error about sqrt(J(1-J)/num_perm)
    minhash: str = "oph"        # "oph": one permutation, densified; "classic": num_perm hash functions
    bands: int = 32             # LSH bands; bands × rows <= num_perm
    rows: int = 4               # signature values per band; threshold ≈ (1/bands)**(1/rows) = 0.42
    shingle: str = "char"       # "char": code-point n-grams (spaces included); "word": word n-grams
    shingle_words: int = 3      # n of word n-grams
    shingle_chars: int = 9      # n of character n-grams
    max_chars: int = 4000       # prompts are cut at this many code points before normalising
    min_chars: int = 1          # normalised prompts shorter than this (code points) emit no tokens
    chatty_prompts: int = 100   # a key with more distinct prompts has its ties scaled by this / n
    seed: int = 1

    def __post_init__(self):
        for name in ("num_perm", "bands", "rows", "shingle_words", "shingle_chars", "max_chars",
                     "chatty_prompts"):
            if getattr(self, name) < 1:
                raise KeyfarmConfigError(f"prompt.{name} must be at least 1")
        if self.bands * self.rows > self.num_perm:
            raise KeyfarmConfigError(f"prompt.bands × prompt.rows = {self.bands * self.rows} exceeds "
                                     f"prompt.num_perm = {self.num_perm}")
        if self.minhash not in MINHASH_METHODS:
            raise KeyfarmConfigError(f"prompt.minhash must be one of {', '.join(MINHASH_METHODS)}, "
                                     f"not {self.minhash!r}")
        if self.shingle not in ("word", "char"):
            raise KeyfarmConfigError(f"prompt.shingle must be 'word' or 'char', not {self.shingle!r}")
        # upper bounds: each setting sizes arrays (num_perm × distinct prompts signature values)
        for name, most in PROMPT_LIMITS.items():
            if getattr(self, name) > most:
                raise KeyfarmConfigError(f"setting prompt.{name} must be <= {most:,}, got {getattr(self, name)!r}")
        if not 0 <= self.seed < 2**63:
            raise KeyfarmConfigError(f"setting prompt.seed must be within 0..2**63-1, got {self.seed!r}")

    @property
    def shingle_size(self) -> int:
        return self.shingle_words if self.shingle == "word" else self.shingle_chars

    @property
    def threshold(self) -> float:
        """Jaccard similarity at which a pair becomes an LSH candidate with probability ≈ 1/2."""
        return (1.0 / self.bands) ** (1.0 / self.rows)


# ------------------------------------------------------------------ public functions

def normalize(text: str) -> str:
    """Normalised prompt: lower-case, digits → 0, non-word characters → one space, stripped.

    >>> normalize("Привет, КАК дела 2024?! 😀")
    'привет как дела 0000'
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize expects a str, not {type(text).__name__}")
    buf, offsets = _normalized_buffer([text], _NO_LIMIT)
    return buf.tobytes().decode("utf-8")


def shingles(text: str, kind: str = "char", size: int = 9) -> list[str]:
    """The shingles of a prompt as strings (what minhash_signatures hashes), in order.

    Word kind: word `size`-grams of the normalised text; char kind: code-point `size`-grams. A
    non-empty text shorter than one n-gram is one shingle (itself); an empty text has none.
    """
    _check_shingle(kind, size)
    norm = normalize(text)
    if not norm:
        return []
    units = norm.split(" ") if kind == "word" else list(norm)
    if len(units) < size:
        return [norm]
    sep = " " if kind == "word" else ""
    return [sep.join(units[i:i + size]) for i in range(len(units) - size + 1)]


def minhash_signatures(texts, num_perm: int = 128, seed: int = 1, *, shingle: str = "char", size: int = 9,
                       max_chars: int | None = None, parallel: bool | None = None,
                       method: str = "oph") -> np.ndarray:
    """MinHash signatures of texts' shingles: uint32 array (len(texts), num_perm).

    Parameters
    ----------
    texts : sequence of str (None counts as empty)
    num_perm : number of values per signature
    seed : hash seed; same texts, seed and settings → the same signatures on every machine
    shingle, size : shingles, by default PromptConfig's (character 9-grams)
    max_chars : texts are cut at this many code points first (None: no limit)
    parallel : spread documents over Numba threads (default: from 2,000 texts); same result
    method : "oph" (default): one-permutation hashing with optimal densification, one hash per
        shingle; "classic": num_perm hash functions per shingle, value p the least
        (a_p * x + b_p) mod (2**31 - 1) over the shingles, x the shingle's 64-bit hash >> 33.
        See keyfarm.signals.minhash for the fixed hashes of both.

    Returns
    -------
    uint32 array; values are below 2**31, except rows of texts without shingles (empty after
    normalisation): all 0xFFFFFFFF. Either method's rows agree in a column with probability the
    Jaccard similarity of the shingle sets (estimate_jaccard).

    References
    ----------
    Broder, "On the resemblance and containment of documents" (1997); Li, Owen & Zhang, "One
    permutation hashing" (NIPS 2012); Shrivastava, "Optimal densification for fast and accurate
    minwise hashing" (ICML 2017).

    >>> sig = minhash_signatures(["the quick brown fox", "The quick, brown fox!"], 64)
    >>> float(estimate_jaccard(sig[0], sig[1]))
    1.0
    """
    if num_perm < 1:
        raise ValueError("num_perm must be positive")
    if num_perm > PROMPT_LIMITS["num_perm"]:
        raise ValueError(f"num_perm must be at most {PROMPT_LIMITS['num_perm']:,}")
    if method not in MINHASH_METHODS:
        raise ValueError(f"method must be one of {', '.join(MINHASH_METHODS)}, not {method!r}")
    _check_shingle(shingle, size)
    texts = _as_text_list(texts)
    par = len(texts) >= PARALLEL_MIN_DOCS if parallel is None else parallel
    return _raw_signatures(texts, _NO_LIMIT if max_chars is None else int(max_chars), num_perm, seed, shingle,
                           size, par, method)


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float | np.ndarray:
    """Share of equal MinHash values: an unbiased estimate of the shingle sets' Jaccard similarity.

    Its standard error is sqrt(J(1-J)/num_perm). Works row-wise on 2-D arrays. Two empty texts
    (all 0xFFFFFFFF) compare as 1.0.
    """
    a, b = np.asarray(sig_a), np.asarray(sig_b)
    if a.shape != b.shape:
        raise ValueError(f"signatures must have the same shape ({a.shape} != {b.shape})")
    return (a == b).mean(axis=-1)


def lsh_buckets(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Band bucket hashes (n, bands) uint64 of signatures; requires bands × rows <= num_perm.

    The hash covers the band index, so equal values mean the same band and the same rows.
    """
    signatures = np.asarray(signatures)
    if signatures.ndim != 2 or signatures.dtype != np.uint32:
        raise ValueError("signatures must be a 2-D uint32 array from minhash_signatures")
    if bands < 1 or rows < 1 or bands * rows > signatures.shape[1]:
        raise ValueError(f"bands × rows = {bands * rows} must be in 1..num_perm = {signatures.shape[1]}")
    return band_hashes(np.ascontiguousarray(signatures), bands, rows)


def incidence(tables, config) -> pd.DataFrame:
    """Prompt incidence: keys × (`lsh:` band buckets, `pdup:` prompts) shared by two or more accounts.

    Reads tables.requests (key, ts, prompt) and tables.keys (account) and config.prompt (a
    PromptConfig); see the module docstring for the weights. Rows are sorted by (key, token), so
    the result does not depend on the order of the requests.
    """
    cfg: PromptConfig = config.prompt
    req = tables.requests
    if req is None or len(req) == 0 or "prompt" not in req:
        return make_incidence([], [], "prompt")
    has = req["prompt"].notna().to_numpy()
    if not has.any():
        return make_incidence([], [], "prompt")
    prompts = req["prompt"].to_numpy(dtype=object)[has]
    raw_codes, raw_uniques = pd.factorize(prompts)
    bad = np.flatnonzero([not isinstance(t, str) for t in raw_uniques])
    if bad.size:
        from keyfarm.errors import KeyfarmInputError
        row = int(np.flatnonzero(has)[np.flatnonzero(raw_codes == bad[0])[0]])
        raise KeyfarmInputError(f"prompt must be text, got {type(raw_uniques[bad[0]]).__name__}",
                                table="requests", column="prompt", row=row)

    norm_codes, text_hash, text_raw, usable = distinct_normalized(raw_uniques, cfg)

    # distinct (key, prompt) pairs: requests, first and last seen
    p = norm_codes[raw_codes]
    ok = usable[p]
    if not ok.any():
        return make_incidence([], [], "prompt")
    pairs = pair_stats(req["key"].to_numpy(np.int64)[has][ok], p[ok], ts_ns(req["ts"])[has][ok], names=("key", "p"))
    key = pairs["key"].to_numpy()
    p_of = pairs["p"].to_numpy()
    account = tables.keys["account"].to_numpy(np.int64)[key]
    n_distinct = np.bincount(key)[key]
    tie = np.minimum(1.0, cfg.chatty_prompts / n_distinct)

    # signatures and band buckets of the prompts in use, numbered 0..n_used-1
    used, local_of_pair = np.unique(p_of, return_inverse=True)
    bucket_id, bucket_hash = shared_bucket_ids(band_buckets(raw_uniques[text_raw[used]], cfg))
    solo = bucket_id < 0

    frames = [_pdup_rows(pairs, local_of_pair, account, tie, solo, text_hash[used], cfg.bands),
              _lsh_rows(pairs, local_of_pair, account, tie, solo, bucket_id.ravel(), bucket_hash, cfg.bands)]
    frame = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else None
    if frame is None:
        return make_incidence([], [], "prompt")
    frame = frame.sort_values(["key", "token"], kind="stable").reset_index(drop=True)
    return make_incidence(frame["key"], frame["token"].to_numpy(dtype=object), "prompt",
                          weight=frame["weight"].to_numpy(), count=frame["count"].to_numpy(),
                          first_seen=frame["first_seen"].to_numpy(np.int64),
                          last_seen=frame["last_seen"].to_numpy(np.int64))


# ------------------------------------------------------------------ helpers

PROMPT_CHUNK = 50_000   # distinct prompts encoded, normalised and signed at a time: bounds the scratch


def distinct_normalized(raw_uniques, cfg: PromptConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normalise the distinct raw prompts PROMPT_CHUNK at a time and de-duplicate the normalised
    texts by a 128-bit hash of their bytes, so that no Python string is made per prompt (at 1M
    keys those strings were most of the signal's memory). Returns (code of each raw prompt's text,
    the 64-bit hash naming each text (its `pdup:` token), the index of one raw prompt of each
    text, whether each text has at least min_chars code points). Texts are numbered in order of
    first appearance among raw_uniques."""
    n = len(raw_uniques)
    hashes = np.empty((n, 2), np.uint64)
    n_chars = np.empty(n, np.int64)
    cls, lower = char_tables()
    ascii_out = ascii_outputs()
    for lo in range(0, n, PROMPT_CHUNK):
        hi = min(n, lo + PROMPT_CHUNK)
        buf, offsets = encode_texts(list(raw_uniques[lo:hi]))
        kernel = text_hashes_parallel if hi - lo >= PARALLEL_MIN_DOCS else text_hashes_serial
        kernel(buf, offsets, cls, lower, ascii_out, np.int64(cfg.max_chars), hashes[lo:hi], n_chars[lo:hi])
    codes, first = _first_codes(hashes[:, 0])
    if (hashes[first[codes], 1] != hashes[:, 1]).any():   # two texts share the first hash: use both
        pair = np.ascontiguousarray(hashes).view(np.dtype((np.void, 16))).ravel()
        codes, first = _first_codes(np.unique(pair, return_inverse=True)[1].ravel())
    usable = n_chars[first] >= max(cfg.min_chars, 1)
    return codes.astype(np.int64), hashes[first, 0], first, usable


def _first_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code of each value in order of first appearance, index of each code's first value)."""
    codes, uniques = pd.factorize(values)
    first = np.empty(len(uniques), np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
    return codes, first


def _check_shingle(kind: str, size: int) -> None:
    if kind not in ("word", "char"):
        raise ValueError(f"shingle kind must be 'word' or 'char', not {kind!r}")
    if size < 1:
        raise ValueError("shingle size must be positive")


def _as_text_list(texts) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of str, not a single str")
    out = list(texts)
    for i, t in enumerate(out):
        if t is None:
            out[i] = ""
        elif not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__}, not str")
    return out


def encode_texts(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of all texts end to end and their offsets (lone surrogates pass through). UTF-8
    encodes code point by code point, so the joined text's bytes are the texts' bytes end to end;
    when there are as many bytes as code points (all ASCII) the offsets are the texts' lengths."""
    offsets = np.zeros(len(texts) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)), out=offsets[1:])
    joined = "".join(texts).encode("utf-8", "surrogatepass")
    if len(joined) == offsets[-1]:
        return (np.frombuffer(joined, np.uint8) if joined else np.zeros(0, np.uint8)), offsets
    del joined
    data = [t.encode("utf-8", "surrogatepass") for t in texts]
    offsets = np.zeros(len(data) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, data), np.int64, len(data)), out=offsets[1:])
    buf = np.frombuffer(b"".join(data), np.uint8) if offsets[-1] else np.zeros(0, np.uint8)
    return buf, offsets


def _normalized_buffer(texts: list[str], max_chars: int, parallel: bool = False):
    buf, offsets = encode_texts(texts)
    cls, lower = char_tables()
    kernel = normalize_parallel if parallel else normalize_serial
    return kernel(buf, offsets, cls, lower, ascii_outputs(), np.int64(max_chars))


def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the universal hash functions a*x + b mod (2**31 - 1), a >= 1."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, int(PRIME), size=num_perm, dtype=np.int64).astype(np.uint64)
    b = rng.integers(0, int(PRIME), size=num_perm, dtype=np.int64).astype(np.uint64)
    return a, b


def _oph_salts(seed: int) -> np.ndarray:
    """(shingle salt, probe salt) of one-permutation MinHash, drawn from np.random.default_rng(seed)."""
    return np.random.default_rng(seed).integers(0, 2**63, size=2, dtype=np.int64).astype(np.uint64)


def _raw_signatures(texts: list[str], max_chars, num_perm, seed, shingle, size, parallel, method) -> np.ndarray:
    """Signatures of raw texts: one-permutation MinHash of character n-grams normalises on the fly
    (no normalised copy, the default and fastest path); the others sign a normalised copy."""
    if method != "oph" or shingle != "char":
        buf, offsets = _normalized_buffer(texts, max_chars, parallel)
        return _signatures(buf, offsets, num_perm, seed, shingle, size, parallel, method)
    buf, offsets = encode_texts(texts)
    cls, lower = char_tables()
    kernel = oph_raw_parallel if parallel else oph_raw_serial
    return kernel(buf, offsets, cls, lower, ascii_outputs(), np.int64(max_chars), np.int64(size),
                  _oph_salts(seed), np.int64(num_perm), _blocks(offsets.size - 1, parallel))


def _blocks(n: int, parallel: bool) -> np.ndarray:
    """Bounds of the blocks of documents a kernel hands to its threads: several per thread, as
    prompts vary in length."""
    blocks = numba.get_num_threads() * 8 if parallel else 1
    return np.unique(np.linspace(0, n, blocks + 1).astype(np.int64))


def _signatures(buf, offsets, num_perm, seed, shingle, size, parallel, method="oph") -> np.ndarray:
    """Signatures of normalised texts (UTF-8 in buf, offsets)."""
    bounds = _blocks(offsets.size - 1, parallel)
    kind = WORDS if shingle == "word" else CHARS
    if method == "oph":
        kernel = oph_parallel if parallel else oph_serial
        return kernel(buf, offsets, kind, np.int64(size), _oph_salts(seed), np.int64(num_perm), bounds)
    a, b = _permutations(num_perm, seed)
    kernel = minhash_parallel if parallel else minhash_serial
    return kernel(buf, offsets, kind, np.int64(size), a, b, bounds)


def band_buckets(texts, cfg: PromptConfig) -> np.ndarray:
    """LSH band bucket hashes (n, bands) uint64 of raw prompts `texts` (a sequence of str), as the
    prompt signal computes them: normalised, signed and cut into bands PROMPT_CHUNK at a time, so
    that only one chunk's bytes and signatures are alive at once."""
    n = len(texts)
    out = np.empty((n, cfg.bands), np.uint64)
    for lo in range(0, n, PROMPT_CHUNK):
        hi = min(n, lo + PROMPT_CHUNK)
        sig = _raw_signatures(list(texts[lo:hi]), cfg.max_chars, cfg.num_perm, cfg.seed, cfg.shingle,
                              cfg.shingle_size, hi - lo >= PARALLEL_MIN_DOCS, cfg.minhash)
        out[lo:hi] = lsh_buckets(sig, cfg.bands, cfg.rows)
    return out


def shared_bucket_ids(buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bucket id of each entry of buckets (n, bands), -1 where no other prompt shares the bucket;
    the band and hash of each id). Only buckets of two or more prompts are numbered (the others
    become `pdup:` tokens), band by band in order of first appearance (a bucket hash covers its
    band: one small hash table per band, not one for all), and the ids overwrite `buckets` in
    place: the signal's largest arrays are these n × bands values, so they are held once."""
    n, bands = buckets.shape
    ids = buckets.view(np.int64)
    if n == 0 or bands == 0:
        return ids, np.zeros((0, 2), np.uint64)
    shared_hash, shared_band = _number_shared_buckets(buckets, ids)
    return ids, np.column_stack([shared_band.astype(np.uint64), shared_hash])


@numba.njit(cache=True, nogil=True)
def _number_shared_buckets(buckets, ids):
    """Kernel of shared_bucket_ids: per band, an open-addressing table of its bucket hashes gives
    each prompt its bucket's code (first appearance order) and each bucket its count; buckets of
    two or more prompts are then numbered in that order after the previous bands' and written to
    `ids` (a view of `buckets`: a band's column is read in full before it is overwritten).
    Returns (hash, band) of every numbered bucket."""
    n, bands = buckets.shape
    size = 1
    while size < 2 * n:
        size *= 2
    mask = np.uint64(size - 1)
    slot_code = np.empty(size, np.int64)
    slot_value = np.empty(size, np.uint64)   # beside the code: one cache line per probe
    code = np.empty(n, np.int64)
    uniq = np.empty(n, np.uint64)
    count = np.empty(n, np.int64)
    number = np.empty(n, np.int64)
    out_hash = np.empty(n, np.uint64)   # grown as needed: most buckets hold one prompt
    out_band = np.empty(n, np.int64)
    column = np.empty(n, np.uint64)
    total = 0
    for band in range(bands):
        slot_code[:] = -1
        for i in range(n):   # the band's column, contiguous
            column[i] = buckets[i, band]
        k = 0
        for i in range(n):
            v = column[i]
            z = v ^ (v >> np.uint64(31))
            z *= np.uint64(0x9E3779B97F4A7C15)
            h = (z ^ (z >> np.uint64(29))) & mask
            while True:
                c = slot_code[h]
                if c < 0:
                    slot_code[h] = k
                    slot_value[h] = v
                    uniq[k] = v
                    count[k] = 1
                    code[i] = k
                    k += 1
                    break
                if slot_value[h] == v:
                    count[c] += 1
                    code[i] = c
                    break
                h = (h + np.uint64(1)) & mask
        for c in range(k):
            if count[c] >= 2:
                if total == out_hash.size:
                    out_hash = np.concatenate((out_hash, np.empty(out_hash.size, np.uint64)))
                    out_band = np.concatenate((out_band, np.empty(out_band.size, np.int64)))
                number[c] = total
                out_hash[total] = uniq[c]
                out_band[total] = band
                total += 1
            else:
                number[c] = -1
        for i in range(n):
            ids[i, band] = number[code[i]]
    return out_hash[:total].copy(), out_band[:total].copy()


def _hex(values: np.ndarray) -> np.ndarray:
    return np.array([f"{v:016x}" for v in values.astype(np.uint64).tolist()], dtype=object)


def _pdup_rows(pairs, local_of_pair, account, tie, solo, ids, bands) -> pd.DataFrame:
    """One `pdup:` token per prompt on 2+ accounts standing for its bands that no other prompt reaches."""
    n_solo = solo.sum(axis=1)
    n_acc = pd.Series(account).groupby(local_of_pair).nunique().reindex(range(len(n_solo)), fill_value=0)
    keep = (n_solo > 0) & (n_acc.to_numpy() >= 2)
    sel = keep[local_of_pair]
    if not sel.any():
        return pd.DataFrame()
    loc = local_of_pair[sel]
    # one token string per prompt, shared by the rows of its keys
    prompts, inverse = np.unique(loc, return_inverse=True)
    text = np.array(["pdup:" + h for h in _hex(ids[prompts])], dtype=object)
    return pd.DataFrame({"key": pairs["key"].to_numpy()[sel],
                         "token": text[inverse.ravel()],
                         "weight": tie[sel] * n_solo[loc] / bands,
                         "count": pairs["count"].to_numpy()[sel],
                         "first_seen": pairs["first_seen"].to_numpy()[sel],
                         "last_seen": pairs["last_seen"].to_numpy()[sel]})


def _lsh_rows(pairs, local_of_pair, account, tie, solo, bucket_id, bucket_hash, bands) -> pd.DataFrame:
    """`lsh:` tokens: buckets holding 2+ distinct prompts and reached by 2+ accounts, one row per key.
    bucket_hash: (band, hash) of each shared bucket id (shared_bucket_ids)."""
    shared = ~solo.ravel()
    if not shared.any():
        return pd.DataFrame()
    # (prompt, band) entries in shared buckets, expanded to the pairs (keys) that sent the prompt
    entry = np.flatnonzero(shared)
    entry_prompt = entry // bands
    order = np.argsort(local_of_pair, kind="stable")
    starts = np.searchsorted(local_of_pair[order], np.arange(solo.shape[0] + 1))
    per = starts[entry_prompt + 1] - starts[entry_prompt]
    rep = np.repeat(np.arange(entry.size), per)
    within = np.arange(rep.size) - np.repeat(np.cumsum(per) - per, per)
    pair_row = order[starts[entry_prompt][rep] + within]
    bucket = bucket_id[entry][rep]
    # buckets reached by 2+ accounts: the distinct (bucket, account) pairs, counted per bucket
    order, starts = sorted_groups(bucket, account[pair_row])
    n_acc = np.bincount(bucket[order[starts]], minlength=int(bucket.max()) + 1)
    keep = n_acc[bucket] >= 2
    if not keep.any():
        return pd.DataFrame()
    pair_row, bucket = pair_row[keep], bucket[keep]
    # a key reaches a bucket once, whichever and however many of its prompts land there
    rows = pair_stats(bucket, pairs["key"].to_numpy()[pair_row], pairs["first_seen"].to_numpy()[pair_row],
                      pairs["last_seen"].to_numpy()[pair_row], names=("bucket", "key"),
                      count=pairs["count"].to_numpy()[pair_row], extra={"tie": tie[pair_row]})
    b = rows["bucket"].to_numpy()
    # one token string per bucket, shared by the rows of its keys
    buckets, inverse = np.unique(b, return_inverse=True)
    text = np.array([f"lsh:{band}:{h}" for band, h in zip(bucket_hash[buckets, 0].astype(np.int64).tolist(),
                                                          _hex(bucket_hash[buckets, 1]))], dtype=object)
    return pd.DataFrame({"key": rows["key"].to_numpy(),
                         "token": text[inverse.ravel()],
                         "weight": rows["tie"].to_numpy() / bands, "count": rows["count"].to_numpy(),
                         "first_seen": rows["first_seen"].to_numpy(), "last_seen": rows["last_seen"].to_numpy()})
