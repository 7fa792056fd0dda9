"""Example prompts behind prompt links (evidence for analysts, after the signals stage).

For a key and each prompt token (`pdup:`, `lsh:<band>:`) its prompts reach, the first of its prompts
(in text order) that reaches it. The report shows, beside an edge linked by prompts, one such prompt
of each key: the near-duplicates an analyst can read side by side. Tokens are computed exactly as
keyfarm.signals.prompt computes them, per key, so a distributed engine runs this per group of keys.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from keyfarm.signals.prompt import (PARALLEL_MIN_DOCS, _encode, _hex, _normalized_buffer, _signatures,
                                    lsh_buckets)

EXAMPLE_CHARS = 500   # an example is cut here: enough to compare, small enough for edges.parquet


def token_examples(pairs: pd.DataFrame, config) -> pd.DataFrame:
    """(key, token, prompt) for the keys of `pairs` (columns key, prompt), one row per key and token
    of its prompts, sorted by key and token; prompts cut at EXAMPLE_CHARS characters."""
    cfg = config.prompt
    empty = pd.DataFrame({"key": np.zeros(0, np.int64), "token": np.zeros(0, object),
                          "prompt": np.zeros(0, object)})
    pairs = pairs.loc[pairs["prompt"].notna(), ["key", "prompt"]]
    if len(pairs) == 0:
        return empty
    raw_codes, raw = pd.factorize(pairs["prompt"].to_numpy(dtype=object))
    buf, off = _normalized_buffer(list(raw), cfg.max_chars, len(raw) >= PARALLEL_MIN_DOCS)
    norm = np.array([buf[off[i]:off[i + 1]].tobytes().decode("utf-8") for i in range(len(raw))], dtype=object)
    norm_codes, texts = pd.factorize(norm)
    texts = np.asarray(texts, dtype=object)
    usable = np.fromiter((len(t) >= max(cfg.min_chars, 1) for t in texts), bool, len(texts))
    ubuf, uoff = _encode(list(texts))
    sig = _signatures(ubuf, uoff, cfg.num_perm, cfg.seed, cfg.shingle, cfg.shingle_size,
                      len(texts) >= PARALLEL_MIN_DOCS)
    buckets = lsh_buckets(sig, cfg.bands, cfg.rows)                       # (texts, bands)
    tokens = np.empty((len(texts), cfg.bands + 1), dtype=object)
    tokens[:, 0] = "pdup:" + _hex(pd.util.hash_array(texts, categorize=False))
    for band in range(cfg.bands):
        tokens[:, band + 1] = f"lsh:{band}:" + _hex(buckets[:, band])

    text_of_pair = norm_codes[raw_codes]
    keep = usable[text_of_pair]
    if not keep.any():
        return empty
    width = cfg.bands + 1
    key = np.repeat(pairs["key"].to_numpy(np.int64)[keep], width)
    prompt = np.repeat(pairs["prompt"].to_numpy(dtype=object)[keep], width)
    token = tokens[text_of_pair[keep]].ravel()
    rows = pd.DataFrame({"key": key, "token": token, "prompt": prompt}) \
        .sort_values(["key", "token", "prompt"], kind="stable") \
        .drop_duplicates(["key", "token"], keep="first").reset_index(drop=True)
    rows["prompt"] = rows["prompt"].str.slice(0, EXAMPLE_CHARS).to_numpy(dtype=object)
    return rows
