"""Example prompts behind prompt links (evidence for analysts, after the signals stage).

For a key and a prompt token (`pdup:`, `lsh:<band>:`) that its prompts reach, one of those prompts.
The report shows, beside an edge linked by prompts, one such prompt of each key: the near-duplicates
an analyst can read side by side. Tokens are computed exactly as keyfarm.signals.prompt computes
them, per key, so a distributed engine runs this per group of keys. Of several prompts of a key
reaching a token the one with the smallest 64-bit hash of its text is shown: a choice that does
not depend on the order of the logs.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from keyfarm.arrays import sorted_unique
from keyfarm.signals.prompt import band_buckets, distinct_normalized

EXAMPLE_CHARS = 500   # an example is cut here: enough to compare, small enough for edges.parquet


def token_examples(pairs: pd.DataFrame, needed: pd.DataFrame, config) -> pd.DataFrame:
    """(key, token, prompt) for the rows of `needed` (columns key, token) that the key's prompts in
    `pairs` (columns key, prompt) reach, sorted by key and token; prompts cut at EXAMPLE_CHARS."""
    cfg = config.prompt
    out = pd.DataFrame({"key": np.zeros(0, np.int64), "token": np.zeros(0, object), "prompt": np.zeros(0, object)})
    pairs = pairs.loc[pairs["prompt"].notna() & pairs["key"].isin(needed["key"]), ["key", "prompt"]]
    if len(pairs) == 0 or len(needed) == 0:
        return out
    raw_codes, raw = pd.factorize(pairs["prompt"].to_numpy(dtype=object))
    norm_codes, text_hash, text_raw, usable = distinct_normalized(raw, cfg)
    # column 0: the pdup hash of the text; column 1 + b: its bucket in band b
    values = np.empty((len(text_hash), cfg.bands + 1), np.uint64)
    values[:, 0] = text_hash
    values[:, 1:] = band_buckets(np.asarray(raw, dtype=object)[text_raw], cfg)

    text_of_pair = norm_codes[raw_codes]
    keep = usable[text_of_pair]
    cand = pd.DataFrame({"key": pairs["key"].to_numpy(np.int64)[keep], "raw": raw_codes[keep],
                         "rank": pd.util.hash_array(np.asarray(raw, dtype=object), categorize=False)[raw_codes[keep]]})
    text_of_cand = text_of_pair[keep]
    want = _parse_tokens(needed.drop_duplicates(["key", "token"]), cfg.bands)
    if not len(want):
        return out
    # each candidate prompt of a key, once per column (pdup, band) that key wants a token of: its
    # value there, matched to the wanted (key, column, value) rows in one join
    width = np.int64(cfg.bands + 1)
    wanted_cols = sorted_unique(want["key"].to_numpy(np.int64) * width + want["column"].to_numpy(np.int64))
    cand_key = cand["key"].to_numpy(np.int64)
    lo = np.searchsorted(wanted_cols, cand_key * width)
    hi = np.searchsorted(wanted_cols, cand_key * width + width)
    per = hi - lo
    row = np.repeat(np.arange(len(cand)), per)
    slot = wanted_cols[np.repeat(lo, per) + (np.arange(row.size) - np.repeat(np.cumsum(per) - per, per))]
    column = slot % width
    expanded = pd.DataFrame({"slot": slot, "value": values[text_of_cand[row], column],
                             "rank": cand["rank"].to_numpy()[row], "raw": cand["raw"].to_numpy()[row]})
    rows = pd.DataFrame({"slot": want["key"].to_numpy(np.int64) * width + want["column"].to_numpy(np.int64),
                         "value": want["value"].to_numpy(), "key": want["key"].to_numpy(np.int64),
                         "token": want["token"].to_numpy(dtype=object)})
    hit = rows.merge(expanded, on=["slot", "value"], how="inner")
    if not len(hit):
        return out
    # of several prompts of a key reaching a token, the smallest hash (ties: identical rows)
    rows = hit.sort_values(["key", "token", "rank"], kind="stable") \
        .drop_duplicates(["key", "token"], keep="first").reset_index(drop=True)
    prompt = pd.Series(np.asarray(raw, dtype=object)[rows["raw"].to_numpy()], dtype=object).str.slice(0, EXAMPLE_CHARS)
    return pd.DataFrame({"key": rows["key"].to_numpy(np.int64), "token": rows["token"].to_numpy(dtype=object),
                         "prompt": prompt.to_numpy(dtype=object)})


def _parse_tokens(needed: pd.DataFrame, bands: int) -> pd.DataFrame:
    """(key, token, column, value) of prompt tokens: pdup:<hex> → column 0, lsh:<b>:<hex> → 1 + b."""
    token = needed["token"].astype(str)
    code, distinct = pd.factorize(token.to_numpy(dtype=object))   # each distinct token parsed once
    parts = pd.Series(np.asarray(distinct, dtype=object), dtype=object).str.split(":", expand=False)
    kind = parts.str[0].to_numpy(dtype=object)
    is_lsh = kind == "lsh"
    column = np.where(is_lsh, pd.to_numeric(parts.str[1].where(is_lsh, "-1")).to_numpy(np.int64) + 1, 0)[code]
    value = np.array([int(h, 16) for h in parts.str[-1]], dtype=np.uint64)[code]
    kind, is_lsh = kind[code], is_lsh[code]
    ok = ((kind == "pdup") | is_lsh) & (column <= bands)
    return pd.DataFrame({"key": needed["key"].to_numpy(np.int64)[ok], "token": token.to_numpy(dtype=object)[ok],
                         "column": column[ok], "value": value[ok]})



def hub_example_keys(incidence: pd.DataFrame, hub_tokens) -> pd.DataFrame:
    """(key, token): for each prompt hub token in `hub_tokens`, the smallest key reaching it
    (`incidence`: the prompt signal's key, token rows), whose prompts its example is drawn from."""
    if not len(incidence):
        return pd.DataFrame({"key": np.zeros(0, np.int64), "token": np.zeros(0, object)})
    wanted = incidence[incidence["token"].isin(pd.Index(hub_tokens))]
    needed = wanted.sort_values(["token", "key"], kind="stable").drop_duplicates("token")
    return pd.DataFrame({"key": needed["key"].to_numpy(np.int64), "token": needed["token"].to_numpy(dtype=object)})


def hubs_with_examples(hubs: pd.DataFrame, pairs: pd.DataFrame, needed: pd.DataFrame, config) -> pd.DataFrame:
    """`hubs` with `example`: one prompt behind each prompt hub token (a `pdup:` hash says nothing
    to an analyst; the text does), null for other hubs. `needed` is hub_example_keys' (key, token)
    rows, `pairs` the (key, prompt) rows of those keys' requests (any order, any other keys): the
    prompt is chosen as token_examples does. Both engines build hubs.parquet with it."""
    found = token_examples(pairs, needed.reset_index(drop=True), config) if len(needed) and len(pairs) \
        else pd.DataFrame({"token": np.zeros(0, object), "prompt": np.zeros(0, object)})
    found = found[["token", "prompt"]].sort_values("token", kind="stable")
    return hubs.assign(example=found.set_index("token")["prompt"].reindex(hubs["token"]).to_numpy(dtype=object))


def hub_examples(requests: pd.DataFrame, incidence: pd.DataFrame, hubs: pd.DataFrame, config) -> pd.DataFrame:
    """hubs_with_examples of the prompt hubs of `hubs` from the logs `requests` (key, prompt) and
    the prompt signal's incidence (key, token)."""
    needed = hub_example_keys(incidence, hubs.loc[hubs["signal"] == "prompt", "token"])
    if "prompt" not in requests or not len(needed):
        pairs = pd.DataFrame({"key": np.zeros(0, np.int64), "prompt": np.zeros(0, object)})
    else:
        mask = np.isin(requests["key"].to_numpy(np.int64), needed["key"].to_numpy(np.int64))
        pairs = pd.DataFrame({"key": requests["key"].to_numpy(np.int64)[mask],
                              "prompt": requests["prompt"].to_numpy(dtype=object)[mask]})
    return hubs_with_examples(hubs, pairs, needed, config)
