"""Warm start of community detection (history stage): the previous run's partition as Leiden's
initial membership, for the accounts seen before.

Leiden's fixed point depends on its random refinement, so started from yesterday's partition it
can move on even when nothing changed, while a cold start on an unchanged graph gives yesterday's
partition exactly. A daily run therefore runs cold first, then from yesterday's partition on the
connected components where the cold partition is not yesterday's (`reproduces_previous`), and on
each component keeps the partition that agrees more with yesterday's (`component_agreement`,
`closer_by_component`); ties keep the cold one. Both are optima of the same objective; the choice
only prefers the stable one. A component the cold run already gives as yesterday's cannot gain,
so the warm run skips it (`warm_where_changed`): a day with little new traffic costs about one run.

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


def component_agreement(previous: np.ndarray, membership: np.ndarray, component: np.ndarray) -> np.ndarray:
    """Per connected component, how much `membership` keeps the previous partition over its nodes
    seen before: for each community, its members in its commonest previous community, plus for
    each previous community (cut at the component's border), its members in its commonest
    community now (so neither merging nor splitting is free). Component by component, as the
    Spark engine sees them; counts over integer codes of (community, previous community)."""
    component = np.asarray(component, np.int64)
    n_comp = int(component.max()) + 1 if component.size else 0
    out = np.zeros(n_comp, np.int64)
    seen = np.flatnonzero(np.asarray(previous) >= 0)
    if not seen.size:
        return out
    comp = component[seen]
    now = np.unique(np.asarray(membership, np.int64)[seen], return_inverse=True)[1].astype(np.int64)
    prev = np.unique(np.asarray(previous, np.int64)[seen], return_inverse=True)[1].astype(np.int64)
    cut = np.unique(comp * np.int64(prev.max() + 1) + prev, return_inverse=True)[1].astype(np.int64)
    pair, first, count = np.unique(now * np.int64(cut.max() + 1) + cut, return_index=True, return_counts=True)
    best_now = np.zeros(int(now.max()) + 1, np.int64)
    np.maximum.at(best_now, now[first], count)
    best_cut = np.zeros(int(cut.max()) + 1, np.int64)
    np.maximum.at(best_cut, cut[first], count)
    now_comp = np.zeros(best_now.size, np.int64)
    now_comp[now] = comp
    cut_comp = np.zeros(best_cut.size, np.int64)
    cut_comp[cut] = comp
    return np.bincount(now_comp, best_now, n_comp).astype(np.int64) + \
        np.bincount(cut_comp, best_cut, n_comp).astype(np.int64)


def reproduces_previous(previous: np.ndarray, membership: np.ndarray, component: np.ndarray) -> np.ndarray:
    """Per component: does `membership` group its previously seen nodes exactly as `previous` does
    (component_agreement at its maximum)? True for a component of new nodes only."""
    component = np.asarray(component, np.int64)
    n_comp = int(component.max()) + 1 if component.size else 0
    n_seen = np.bincount(component[np.asarray(previous) >= 0], minlength=n_comp)
    return component_agreement(previous, membership, component) == 2 * n_seen


def closer_by_component(previous: np.ndarray, cold: np.ndarray, warm: np.ndarray, component: np.ndarray
                        ) -> np.ndarray:
    """Per node: its `warm` community (renumbered after cold's) where on its component `warm`
    agrees strictly more with `previous` than `cold`, else its `cold` one."""
    cold = np.asarray(cold, np.int64)
    take = component_agreement(previous, warm, component) > component_agreement(previous, cold, component)
    pick = take[np.asarray(component, np.int64)]
    return np.where(pick, np.asarray(warm, np.int64) + (int(cold.max()) + 1 if cold.size else 0), cold)


def warm_where_changed(src, dst, weight, n_nodes: int, previous: np.ndarray, component: np.ndarray,
                       cold: np.ndarray, memory: float, run, settle) -> np.ndarray:
    """The daily run's partition: `cold` (settled) on the components it gives as yesterday's, and on
    the others the closer of cold and the warm run (`warm_partition` on their links alone, each
    component's partition being its own: community.bycomponent), settled by `settle(src, dst,
    weight, labels)`. `run(src, dst, weight, start, component)` is community detection by
    component."""
    from keyfarm.community import connected_components

    src, dst, weight = np.asarray(src, np.int64), np.asarray(dst, np.int64), np.asarray(weight, np.float64)
    changed = ~reproduces_previous(previous, cold, component)
    inside = changed[np.asarray(component, np.int64)[src]]
    if not inside.any():
        return np.asarray(cold, np.int64)
    s, d, w = src[inside], dst[inside], weight[inside]
    part = connected_components(s, d, n_nodes)     # the changed components; other nodes alone
    warm = settle(s, d, w, warm_partition(s, d, w, n_nodes, previous, part, memory,
                                          lambda s2, d2, w2, start: run(s2, d2, w2, start, part)))
    return closer_by_component(previous, cold, warm, component)
