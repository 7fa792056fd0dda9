"""Warm start of community detection (history stage): the previous run's partition as Leiden's
initial membership, for the accounts seen before.

Leiden's fixed point depends on its random refinement, so started from yesterday's partition it
can move on even when nothing changed, while a cold start on an unchanged graph gives yesterday's
partition exactly. A daily run therefore runs both (community detection is a small share of a
run) and keeps the partition that agrees more with yesterday's (`agreement`); ties keep the cold
one. Both are optima of the same objective; the choice only prefers the stable one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def warm_start(previous: np.ndarray) -> np.ndarray:
    """Initial labels 0..k−1 of the optimiser's nodes from their previous cluster ids (−1: not seen
    before, starts alone). Labels follow the nodes' order, so the start is deterministic."""
    previous = np.asarray(previous, np.int64)
    out = np.empty(previous.size, np.int64)
    seen = previous >= 0
    codes = pd.factorize(previous[seen], sort=True)[0].astype(np.int64)
    out[seen] = codes
    n = int(codes.max()) + 1 if codes.size else 0
    out[~seen] = n + np.arange(int((~seen).sum()))
    return out


def agreement(previous: np.ndarray, membership: np.ndarray) -> int:
    """How much `membership` keeps the previous partition, over nodes seen before: for each
    community, its members in its commonest previous community, plus for each previous community,
    its members in its commonest community now (so neither merging nor splitting is free)."""
    seen = np.asarray(previous) >= 0
    pairs = pd.DataFrame({"now": np.asarray(membership)[seen], "prev": np.asarray(previous)[seen]})
    counts = pairs.groupby(["now", "prev"]).size()
    return int(counts.groupby(level=0).max().sum() + counts.groupby(level=1).max().sum())


def closer_to_previous(previous: np.ndarray, cold: np.ndarray, warm: np.ndarray) -> np.ndarray:
    """`warm` if it agrees strictly more with `previous` than `cold`, else `cold`."""
    return warm if agreement(previous, warm) > agreement(previous, cold) else cold
