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


def _many_components(seed, n_graphs=60):
    """A forest of random small connected graphs (2–40 nodes) with shuffled node ids, one larger
    component, and isolated nodes: (src, dst, weight, n_nodes)."""
    rng = np.random.default_rng(seed)
    src, dst, offset = [], [], 0
    for size in list(rng.integers(2, 41, n_graphs)) + [300]:
        tree = np.c_[np.arange(1, size), rng.integers(0, np.arange(1, size))]   # connected
        extra = rng.integers(0, size, (int(size * rng.uniform(0, 2)), 2))
        e = np.r_[tree, extra] + offset
        src.append(e[:, 0])
        dst.append(e[:, 1])
        offset += size + int(rng.integers(0, 3))   # isolated nodes between components
    perm = rng.permutation(offset)
    src, dst = perm[np.concatenate(src)], perm[np.concatenate(dst)]
    return src, dst, rng.uniform(0.05, 1.0, src.size), offset


@pytest.mark.parametrize("objective, resolution, n_iterations, warm", [
    ("cpm", 0.2, 2, False), ("cpm", 0.45, None, False), ("cpm", 0.3, 2, True), ("modularity", 1.0, 2, False)])
def test_batched_small_components_get_the_labels_of_one_call_each(objective, resolution, n_iterations, warm):
    """The job's detect (pipeline.component_leiden) sends small components to leiden_many in one
    call; every node's label must be what one leiden() call per component gives."""
    from types import SimpleNamespace

    from keyfarm.community.bycomponent import communities_by_component
    from keyfarm.pipeline import component_leiden

    for seed in range(3):
        src, dst, w, n = _many_components(seed)
        cfg = SimpleNamespace(resolution=resolution, objective=objective, n_iterations=n_iterations)
        batched = component_leiden(cfg, seed)
        assert hasattr(batched, "batch")

        def one_by_one(s, d, ww, nn, initial=None):   # the same settings, no batch attribute
            return batched(s, d, ww, nn, initial)
        initial = np.random.default_rng(seed).integers(0, 5, n) if warm else None
        expected = communities_by_component(src, dst, w, n, one_by_one, initial)
        got = communities_by_component(src, dst, w, n, batched, initial)
        assert got.tolist() == expected.tolist()


def test_leiden_many_equals_leiden_on_each_graph_and_checks_its_input():
    from keyfarm.community import leiden
    from keyfarm.community.leiden import leiden_many

    rng = np.random.default_rng(5)
    sizes = [2, 7, 1, 30, 12]
    edges = [rng.integers(0, n, (3 * n, 2)) if n > 1 else np.zeros((0, 2), np.int64) for n in sizes]
    weights = [rng.uniform(0.1, 1, len(e)) for e in edges]
    node_ptr = np.r_[0, np.cumsum(sizes)]
    edge_ptr = np.r_[0, np.cumsum([len(e) for e in edges])]
    all_e = np.concatenate(edges)
    labels, k = leiden_many(node_ptr, edge_ptr, all_e[:, 0], all_e[:, 1], np.concatenate(weights),
                            objective="cpm", resolution=0.25, seed=3)
    for g, n in enumerate(sizes):
        alone = leiden(edges[g][:, 0], edges[g][:, 1], weights[g], n, objective="cpm", resolution=0.25, seed=3)
        assert labels[node_ptr[g]:node_ptr[g + 1]].tolist() == alone.tolist()
        assert k[g] == (alone.max() + 1 if n else 0)
    with pytest.raises(ValueError, match="outside its graph"):
        leiden_many([0, 2, 4], [0, 1, 2], [0, 0], [1, 2], None, objective="cpm")
    with pytest.raises(ValueError, match="edge_ptr ends"):
        leiden_many([0, 2], [0, 2], [0], [1], None, objective="cpm")
