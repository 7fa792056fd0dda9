"""Louvain, connected components and label propagation against igraph, networkx and scipy."""
from __future__ import annotations

import random

import igraph as ig
import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components as scipy_components

from keyfarm.community import connected_components, label_propagation, louvain, modularity


def _lfr(n, mu, seed):
    g = nx.LFR_benchmark_graph(n, 3, 1.5, mu, average_degree=10, max_degree=50, min_community=20,
                               max_community=100, seed=seed)
    e = np.array(sorted(g.edges()), dtype=np.int64)
    return e[:, 0], e[:, 1]


@pytest.mark.parametrize("n, mu, seed", [(500, 0.1, 1), (1000, 0.3, 2), (500, 0.4, 3)])
def test_louvain_is_as_good_as_igraph_multilevel_over_seeds(n, mu, seed):
    """Median modularity over five seeds, against igraph's median over five (single runs vary)."""
    src, dst = _lfr(n, mu, seed)
    g = ig.Graph(n=n, edges=np.column_stack([src, dst]).tolist())
    ours, theirs = [], []
    for s in range(5):
        ours.append(modularity(src, dst, None, louvain(src, dst, None, n, seed=s)))
        random.seed(s)
        theirs.append(g.modularity(g.community_multilevel().membership))
    assert np.median(ours) >= np.median(theirs) - 0.005


def test_louvain_finds_karates_best_partition():
    g = ig.Graph.Famous("Zachary")
    e = np.array(g.get_edgelist())
    assert modularity(e[:, 0], e[:, 1], None, louvain(e[:, 0], e[:, 1], None, 34)) >= 0.41


def test_louvain_is_deterministic_and_ignores_edge_order():
    src, dst = _lfr(500, 0.3, 2)
    order = np.random.default_rng(0).permutation(src.size)
    assert np.array_equal(louvain(src, dst, None, 500, seed=5), louvain(dst[order], src[order], None, 500, seed=5))


@pytest.mark.parametrize("seed", range(4))
def test_components_match_scipy(seed):
    rng = np.random.default_rng(seed)
    n = 300
    src, dst = rng.integers(0, n, 200), rng.integers(0, n, 200)
    found = connected_components(src, dst, n)
    k, ref = scipy_components(sp.coo_matrix((np.ones(200), (src, dst)), shape=(n, n)), directed=False)
    assert found.max() + 1 == k
    # same partition: label pairs are in one-to-one correspondence
    assert np.unique(found * n + ref).size == k
    assert np.all(np.diff(np.unique(found, return_index=True)[1]) > 0)


def test_components_of_empty_and_object_inputs():
    assert connected_components([], [], 3).tolist() == [0, 1, 2]
    assert connected_components([], [], 0).size == 0

    class Graph:
        src, dst, n_nodes, weight = np.array([0, 2]), np.array([1, 3]), 5, np.array([0.0, 1.0])
    assert connected_components(Graph()).tolist() == [0, 0, 1, 1, 2]


def test_label_propagation_recovers_loosely_joined_cliques():
    g = nx.ring_of_cliques(20, 8)
    src, dst = (np.array(x) for x in zip(*g.edges()))
    found = label_propagation(src, dst, None, 160, seed=1)
    assert ig.compare_communities(found.tolist(), np.repeat(np.arange(20), 8).tolist(), method="nmi") > 0.95


def test_label_propagation_matches_networkx_on_disjoint_cliques():
    g = nx.disjoint_union_all([nx.complete_graph(k) for k in (3, 5, 7)])
    src, dst = (np.array(x) for x in zip(*g.edges()))
    ref = np.empty(15, np.int64)
    for i, c in enumerate(nx.community.asyn_lpa_communities(g, seed=1)):
        ref[list(c)] = i
    found = label_propagation(src, dst, None, 15, seed=1)
    assert np.unique(found * 15 + ref).size == found.max() + 1 == ref.max() + 1


def test_label_propagation_is_deterministic_and_ignores_edge_order():
    src, dst = _lfr(500, 0.2, 1)
    w = np.random.default_rng(3).uniform(0.5, 1.5, src.size)
    order = np.random.default_rng(4).permutation(src.size)
    first = label_propagation(src, dst, w, 500, seed=9)
    assert np.array_equal(first, label_propagation(dst[order], src[order], w[order], 500, seed=9))


def test_label_propagation_rejects_bad_sweep_limits():
    with pytest.raises(ValueError):
        label_propagation([0], [1], None, 2, max_sweeps=0)


def test_communities_by_component_depend_on_each_component_alone():
    """Adding a second graph beside a first leaves the first's communities as they were, and each
    component's labels are those of Leiden run on that component alone."""
    from keyfarm.community import leiden
    import pandas as pd

    from keyfarm.community.bycomponent import communities_by_component

    def detect(s, d, w, n, initial=None):
        return leiden(s, d, w, n, objective="cpm", resolution=0.3, seed=7, n_iterations=2,
                      initial_membership=initial)

    rng = np.random.default_rng(2)
    path = [np.c_[np.arange(n - 1), np.arange(1, n)] for n in (40, 25)]   # each group connected
    groups = [np.r_[rng.integers(0, 40, (51, 2)), path[0]], np.r_[rng.integers(0, 25, (26, 2)), path[1]] + 40]
    src = np.concatenate([g[:, 0] for g in groups])
    dst = np.concatenate([g[:, 1] for g in groups])
    w = rng.uniform(0.1, 1.0, src.size)
    alone = communities_by_component(src[:90], dst[:90], w[:90], 40, detect)
    both = communities_by_component(src, dst, w, 65, detect)
    assert pd.factorize(both[:40])[0].tolist() == pd.factorize(alone)[0].tolist()
    second = detect(src[90:] - 40, dst[90:] - 40, w[90:], 25)
    assert pd.factorize(both[40:])[0].tolist() == pd.factorize(second)[0].tolist()
    assert set(both[:40]).isdisjoint(both[40:])
