"""Warm start of community detection (history stage): the previous run's partition as Leiden's
initial membership, for the accounts seen before."""
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
