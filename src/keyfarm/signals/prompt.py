"""Prompt signal: near-duplicate prompts across accounts, by MinHash + LSH in Numba.

Prompts are normalised (case, digits → 0, punctuation → space, whitespace collapsed; cut at
`max_chars` characters first), de-duplicated (logs repeat), shingled into word 3-grams (prompts of
fewer words: character 5-grams), MinHashed with `num_perm` seeded hash functions and cut into
`bands` bands of `rows` values. Two prompts share a band bucket with probability J**rows for
Jaccard J, so the banding's threshold is about (1/bands)**(1/rows): 0.42 for 32 × 4.

Tokens: a prompt used verbatim (after normalisation) by several accounts is one `pdup:` token of
weight 1; a band bucket holding two or more *different* prompts is an `lsh:<band>:<hash>` token of
weight 1/bands, so two near-duplicates sharing m of the bands add m/bands (≈ their similarity).
A key ties to a token once however often it sent the prompt, and a key with more than
`chatty_prompts` distinct prompts has its ties scaled down by chatty_prompts/n, so one very chatty key
does not dominate. Popular prompts ("hello") are tokens on thousands of accounts: hubs for the
graph builder, capped and reported like any other.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from keyfarm.signals import make_incidence, ts_ns
from keyfarm.signals.minhash import band_hashes, minhash_parallel, minhash_serial, shingle_hashes


@dataclass(frozen=True)
class PromptConfig:
    """Prompt hashing settings (defaults measured on generated worlds; see module docstring)."""

    num_perm: int = 128
    bands: int = 32
    rows: int = 4
    shingle_words: int = 3
    shingle_chars: int = 5
    max_chars: int = 4000       # prompts are cut here before normalising (100 kB prompts are fine)
    min_chars: int = 1          # normalised prompts shorter than this are ignored
    chatty_prompts: int = 100   # keys with more distinct prompts than this have their ties scaled down
    seed: int = 1


def normalize(texts) -> pd.Series:
    """Lower-case, digits to 0, punctuation to space, whitespace collapsed (vectorised)."""
    s = pd.Series(texts, dtype=object).fillna("").astype(str)
    s = s.str.lower().str.replace(r"\d", "0", regex=True)
    s = s.str.replace(r"[^\w\s]|_", " ", regex=True).str.replace(r"\s+", " ", regex=True).str.strip()
    return s


def _encode(texts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    data = [t.encode("utf-8") for t in texts]
    lengths = np.fromiter((len(b) for b in data), np.int64, len(data))
    offsets = np.zeros(len(data) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    buf = np.frombuffer(b"".join(data), np.uint8) if data else np.zeros(0, np.uint8)
    return buf, offsets


def _seeds(num_perm: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**63, size=num_perm, dtype=np.int64).astype(np.uint64)


def minhash_signatures(texts, num_perm: int = 128, seed: int = 1, *, normalized: bool = False,
                       shingle_words: int = 3, shingle_chars: int = 5,
                       parallel: bool | None = None) -> np.ndarray:
    """MinHash signatures (n, num_perm) uint32 of texts' shingles; same seed, same signatures.

    Empty texts get all-0xFFFFFFFF rows (no shingles). `parallel` (default: when n > 2,000) uses
    Numba's prange over documents.
    """
    if num_perm < 1:
        raise ValueError("num_perm must be positive")
    texts = pd.Series(texts, dtype=object) if normalized else normalize(texts)
    buf, offsets = _encode(texts)
    indptr, hashes = shingle_hashes(buf, offsets, shingle_words, shingle_chars)
    kernel = minhash_parallel if (parallel if parallel is not None else len(texts) > 2000) else minhash_serial
    return kernel(indptr, hashes, _seeds(num_perm, seed))


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float | np.ndarray:
    """Share of equal MinHash values: an unbiased estimate of the shingle sets' Jaccard similarity."""
    a, b = np.asarray(sig_a), np.asarray(sig_b)
    if a.shape != b.shape:
        raise ValueError("signatures must have the same shape")
    return (a == b).mean(axis=-1)


def lsh_buckets(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Band bucket hashes (n, bands) uint64; requires bands × rows <= num_perm."""
    if bands * rows > signatures.shape[1]:
        raise ValueError(f"bands × rows = {bands * rows} exceeds num_perm = {signatures.shape[1]}")
    return band_hashes(np.ascontiguousarray(signatures), bands, rows)


def incidence(tables, config) -> pd.DataFrame:
    cfg: PromptConfig = config.prompt
    req = tables.requests
    has = req["prompt"].notna().to_numpy()
    if not has.any():
        return make_incidence([], [], "prompt")
    raw = req.loc[has, "prompt"].astype(str).str.slice(0, cfg.max_chars)
    raw_codes, raw_uniques = pd.factorize(raw)
    norm = normalize(raw_uniques)
    norm_codes, texts = pd.factorize(norm)
    prompt_of_row = norm_codes[raw_codes]
    texts = pd.Series(texts, dtype=object)
    usable = (texts.str.len() >= cfg.min_chars).to_numpy()

    keys = req.loc[has, "key"].to_numpy()
    pairs = pd.DataFrame({"key": keys, "p": prompt_of_row, "ts": ts_ns(req.loc[has, "ts"])})
    pairs = pairs[usable[pairs["p"].to_numpy()]]
    pairs = pairs.groupby(["key", "p"], sort=True).agg(count=("ts", "size"), first_seen=("ts", "min"),
                                                       last_seen=("ts", "max")).reset_index()
    if len(pairs) == 0:
        return make_incidence([], [], "prompt")
    account = tables.keys["account"].to_numpy()
    pairs["acc"] = account[pairs["key"].to_numpy()]
    n_distinct = pairs.groupby("key")["p"].transform("size").to_numpy()
    pairs["tie"] = np.minimum(1.0, cfg.chatty_prompts / n_distinct)

    # exact duplicates across accounts: one token per prompt
    acc_per_prompt = pairs.groupby("p")["acc"].nunique()
    dup_prompts = acc_per_prompt.index[acc_per_prompt.to_numpy() >= 2].to_numpy()
    parts = []
    dup = pairs[pairs["p"].isin(dup_prompts)]
    if len(dup):
        sig_id = pd.util.hash_array(texts.to_numpy()[dup["p"].to_numpy()].astype(object))
        parts.append(pd.DataFrame({"key": dup["key"].to_numpy(),
                                   "token": "pdup:" + pd.Series(sig_id).map("{:016x}".format).to_numpy(),
                                   "weight": dup["tie"].to_numpy(), "count": dup["count"].to_numpy(),
                                   "first_seen": dup["first_seen"].to_numpy(),
                                   "last_seen": dup["last_seen"].to_numpy()}))

    # near duplicates: band buckets that hold two or more different prompts
    used = np.unique(pairs["p"].to_numpy())
    sig = minhash_signatures(texts.to_numpy()[used], cfg.num_perm, cfg.seed, normalized=True,
                             shingle_words=cfg.shingle_words, shingle_chars=cfg.shingle_chars)
    buckets = lsh_buckets(sig, cfg.bands, cfg.rows)  # (len(used), bands)
    local = np.full(len(texts), -1, np.int64)
    local[used] = np.arange(len(used))
    for j in range(cfg.bands):
        h = buckets[:, j]
        _, inverse, counts = np.unique(h, return_inverse=True, return_counts=True)
        shared = counts[inverse] >= 2
        if not shared.any():
            continue
        prompt_ids = used[shared]
        sel = pairs[np.isin(pairs["p"].to_numpy(), prompt_ids)]
        bh = h[local[sel["p"].to_numpy()]]
        parts.append(pd.DataFrame({"key": sel["key"].to_numpy(), "bucket": bh, "band": j,
                                   "weight": sel["tie"].to_numpy() / cfg.bands,
                                   "count": sel["count"].to_numpy(),
                                   "first_seen": sel["first_seen"].to_numpy(),
                                   "last_seen": sel["last_seen"].to_numpy()}))
    if not parts:
        return make_incidence([], [], "prompt")
    frame = pd.concat(parts, ignore_index=True)
    if "bucket" in frame:
        is_band = frame["bucket"].notna().to_numpy()
        band_part = frame[is_band]
        # one row per (key, bucket): a key reaches a bucket once, with its strongest tie
        band_part = band_part.groupby(["band", "bucket", "key"], sort=True).agg(
            weight=("weight", "max"), count=("count", "sum"), first_seen=("first_seen", "min"),
            last_seen=("last_seen", "max")).reset_index()
        band_part["token"] = ("lsh:" + band_part["band"].astype(str) + ":"
                              + pd.Series(band_part["bucket"].astype(np.uint64)).map("{:016x}".format))
        frame = pd.concat([frame[~is_band], band_part], ignore_index=True)
    frame = frame.sort_values(["key", "token"], kind="stable").reset_index(drop=True)
    return make_incidence(frame["key"], frame["token"].to_numpy(dtype=object), "prompt",
                          weight=frame["weight"].to_numpy(), count=frame["count"].to_numpy(),
                          first_seen=frame["first_seen"].to_numpy(np.int64),
                          last_seen=frame["last_seen"].to_numpy(np.int64))
