"""Quality functions (keyfarm.community.quality) against igraph, networkx and closed-form values."""
from __future__ import annotations

import random

import igraph as ig
import networkx as nx
import numpy as np
import pytest

from keyfarm.community import CommunityInputError, cpm, leiden, modularity
from keyfarm.errors import KeyfarmInputError


def _edges(g: nx.Graph):
    e = np.array(g.edges(), dtype=np.int64).reshape(-1, 2)
    return e[:, 0], e[:, 1]


def _random_multigraph(seed: int, n: int = 40, m: int = 150):
    """Weighted edges with duplicates, self-loops and zero weights; membership of 5 labels."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n, m)
    dst = rng.integers(0, n, m)
    dst[:5] = src[:5]
    weight = rng.uniform(0, 3, m)
    weight[5:8] = 0.0
    src[10:15], dst[10:15] = src[20:25], dst[20:25]
    return src, dst, weight, rng.integers(0, 5, n)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("resolution", [0.5, 1.0, 2.0])
def test_modularity_matches_igraph_on_multigraph_with_self_loops(seed, resolution):
    src, dst, weight, membership = _random_multigraph(seed)
    g = ig.Graph(n=membership.size, edges=np.column_stack([src, dst]).tolist())
    expected = g.modularity(membership.tolist(), weights=weight.tolist(), resolution=resolution)
    assert modularity(src, dst, weight, membership, resolution=resolution) == pytest.approx(expected, abs=1e-9)


def test_modularity_matches_networkx_on_weighted_karate():
    g = nx.karate_club_graph()
    src, dst = _edges(g)
    weight = np.array([g.edges[u, v]["weight"] for u, v in zip(src, dst)], float)
    parts = nx.community.louvain_communities(g, seed=3)
    membership = np.empty(34, np.int64)
    for i, c in enumerate(parts):
        membership[list(c)] = i
    expected = nx.community.modularity(g, parts, weight="weight", resolution=1.3)
    assert modularity(src, dst, weight, membership, resolution=1.3) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("resolution", [0.05, 0.2, 0.5])
def test_cpm_equals_the_quality_igraph_reports(resolution):
    g = ig.Graph.Famous("Zachary")
    e = np.array(g.get_edgelist())
    random.seed(1)
    found = g.community_leiden(objective_function="CPM", resolution=resolution, n_iterations=-1)
    assert cpm(e[:, 0], e[:, 1], None, np.array(found.membership), resolution=resolution) == \
        pytest.approx(found.quality, abs=1e-9)


def test_cpm_ranks_partitions_like_leidenalg_scaling():
    """igraph's (1/2m)Σ[2L − γn²] and leidenalg's Σ[L − γ C(n,2)] differ by an affine map."""
    src, dst, weight, membership = _random_multigraph(7)
    other = (membership + np.arange(membership.size)) % 3
    def leidenalg_cpm(memb):
        inside = memb[src] == memb[dst]
        sizes = np.bincount(memb).astype(float)
        return weight[inside].sum() - 0.3 * (sizes * (sizes - 1) / 2).sum()
    m = weight.sum()
    for memb in (membership, other):
        assert cpm(src, dst, weight, memb, resolution=0.3) == pytest.approx(
            (leidenalg_cpm(memb) - 0.3 * memb.size / 2) / m, abs=1e-12)


def test_disjoint_equal_cliques_have_modularity_one_minus_one_over_k():
    k = 6
    g = nx.disjoint_union_all([nx.complete_graph(5)] * k)
    src, dst = _edges(g)
    assert modularity(src, dst, None, np.repeat(np.arange(k), 5)) == pytest.approx(1 - 1 / k, abs=1e-12)


def test_barbell_partitions_have_the_closed_form_modularity():
    src, dst = _edges(nx.barbell_graph(3, 0))
    assert modularity(src, dst, None, [0, 0, 0, 1, 1, 1]) == pytest.approx(70 / 196, abs=1e-12)
    assert modularity(src, dst, None, [0, 0, 1, 1, 0, 1]) == pytest.approx(-16 / 196, abs=1e-12)


def test_two_joined_cliques_reach_the_best_modularity():
    g = nx.barbell_graph(5, 0)
    src, dst = _edges(g)
    membership = leiden(src, dst, None, 10)
    assert modularity(src, dst, None, membership) == pytest.approx(0.45238, abs=1e-5)


def test_ring_of_cliques_shows_the_resolution_limit():
    g = nx.ring_of_cliques(30, 5)
    src, dst = _edges(g)
    alone = np.repeat(np.arange(30), 5)
    assert modularity(src, dst, None, alone) == pytest.approx(0.875758, abs=1e-6)
    assert modularity(src, dst, None, alone // 2) == pytest.approx(0.887879, abs=1e-6)
    found = leiden(src, dst, None, 150)
    # Merging wins: fewer than 30 communities, above the cliques-alone value and near the pairs' one
    # (local optima with a few triples sit at 0.8846-0.8871, for igraph as for keyfarm).
    assert found.max() + 1 < 30
    assert 0.8846 < modularity(src, dst, None, found) <= 0.887879 + 1e-6


def test_modularity_falls_linearly_in_resolution():
    src, dst, weight, membership = _random_multigraph(3)
    q = [modularity(src, dst, weight, membership, resolution=r) for r in (0.0, 1.0, 2.0, 3.0)]
    assert np.allclose(np.diff(q), q[1] - q[0], atol=1e-12) and q[1] < q[0]


def test_quality_accepts_a_graph_object():
    src, dst, weight, membership = _random_multigraph(1)
    class Graph:
        pass
    graph = Graph()
    graph.src, graph.dst, graph.weight, graph.n_nodes = src, dst, weight, membership.size
    assert modularity(graph, membership) == modularity(src, dst, weight, membership)
    assert cpm(graph, membership, resolution=0.1) == cpm(src, dst, weight, membership, resolution=0.1)


def test_quality_of_a_graph_without_weight_is_nan():
    assert np.isnan(modularity([0], [1], [0.0], [0, 1]))
    assert np.isnan(cpm([], [], None, [0, 1, 2]))


@pytest.mark.parametrize("args, column", [
    (([0, 1], [1, 2], [1.0, -1.0], [0, 0, 1]), "weight"),
    (([0, 1], [1, 2], [1.0, np.nan], [0, 0, 1]), "weight"),
    (([0, 1], [1, 5], None, [0, 0, 1]), "membership"),
    (([0, 1], [1, 2], None, [0, 0]), "membership"),
    (([0, 1], [1, 2], None, [0, -1, 1]), "membership"),
    (([0, 1], [1], None, [0, 0, 1]), "dst"),
    (([0.5, 1], [1, 2], None, [0, 0, 1]), "src"),
])
def test_bad_input_raises_a_value_error_naming_the_column(args, column):
    with pytest.raises(ValueError) as info:
        modularity(*args)
    assert isinstance(info.value, KeyfarmInputError) and isinstance(info.value, CommunityInputError)
    assert info.value.column == column
