"""Warm start of community detection (history stage): the previous run's partition as Leiden's
initial membership, for the accounts seen before.

Leiden's fixed point depends on its random refinement, so started from yesterday's partition it
can move on even when nothing changed, while a cold start on an unchanged graph gives yesterday's
partition exactly. A daily run therefore runs both (community detection is a small share of a
run) and keeps the partition that agrees more with yesterday's (`agreement`); ties keep the cold
one. Both are optima of the same objective; the choice only prefers the stable one.

A crowd whose accounts link at random (a 300-account cloud region, cut by CPM into pieces of about
ten) is re-drawn by each day's coincidences: at 50k, a fifth of the account links of period 1 are
not seen in period 2, and half the crowd pieces that are cut anew are no longer connected. With
`community.hysteresis` = h > 0 the run from yesterday's partition also links every two accounts of
one previous community with weight h × resolution (`memory_links`), so a community stays while its
density is at least (1 − h) × resolution, and is then cut into the parts today's links join
(`warm_partition`). Default 0: the warm run sees today's links only.
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


def memory_links(previous: np.ndarray, component: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(src, dst, weight) linking every two nodes of one previous community (previous >= 0) that
    are in one component of today's graph, each with `weight` (none when weight <= 0).

    Added to today's graph in the run from yesterday's partition, they make staying together worth
    `weight` per pair: with weight = h × resolution, CPM keeps a previous community while its
    density is at least (1 − h) × resolution, while a new one still needs the full resolution
    (hysteresis). A crowd whose accounts link at random (a cloud region) is then not cut anew
    each day by the coincidences of the day. They never join components."""
    previous = np.asarray(previous, np.int64)
    seen = np.flatnonzero(previous >= 0)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    if weight <= 0 or seen.size < 2:
        return empty
    comp = np.asarray(component, np.int64)
    order = seen[np.lexsort((seen, comp[seen], previous[seen]))]
    new_group = np.r_[True, (previous[order][1:] != previous[order][:-1]) | (comp[order][1:] != comp[order][:-1])]
    start = np.flatnonzero(new_group)
    size = np.diff(np.r_[start, order.size])
    rank = np.arange(order.size) - np.repeat(start, size)          # position within its group
    later = np.repeat(size, size) - 1 - rank                         # partners after it in the group
    src_pos = np.repeat(np.arange(order.size), later)
    within = np.arange(src_pos.size) - np.repeat(np.cumsum(later) - later, later)
    dst_pos = src_pos + 1 + within
    return order[src_pos], order[dst_pos], np.full(src_pos.size, float(weight))


def warm_partition(src, dst, weight, n_nodes: int, previous: np.ndarray, component, memory: float,
                   run) -> np.ndarray:
    """The partition from yesterday's: `run(src, dst, weight, start)` (community detection by
    component, from warm_start's labels) on today's links plus memory_links of weight `memory`,
    each community then cut into the parts today's links join (a memory link alone never makes a
    cluster)."""
    from keyfarm.community import connected_components

    start = warm_start(previous)
    m_src, m_dst, m_w = memory_links(previous, component, memory)
    if not m_src.size:
        return run(src, dst, weight, start)
    labels = run(np.concatenate([src, m_src]), np.concatenate([dst, m_dst]), np.concatenate([weight, m_w]), start)
    inside = labels[src] == labels[dst]
    return connected_components(np.asarray(src)[inside], np.asarray(dst)[inside], n_nodes)


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
