"""keyfarm.community.leiden against igraph on LFR benchmark graphs, classic and real networks."""
from __future__ import annotations

import random
from pathlib import Path

import igraph as ig
import networkx as nx
import numpy as np
import pytest

from keyfarm.community import CommunityInputError, connected_components, cpm, leiden, modularity

GRAPHS = Path(__file__).resolve().parent.parent / "datasets" / "graphs"


def lfr(n: int, mu: float, seed: int):
    """networkx LFR benchmark graph as (src, dst, planted membership)."""
    g = nx.LFR_benchmark_graph(n, 3, 1.5, mu, average_degree=10, max_degree=50, min_community=20,
                               max_community=100, seed=seed)
    planted = np.empty(n, np.int64)
    for i, c in enumerate(sorted({tuple(sorted(g.nodes[v]["community"])) for v in g})):
        planted[list(c)] = i
    e = np.array(sorted(g.edges()), dtype=np.int64)
    return e[:, 0], e[:, 1], planted


def _rows(path: Path):
    """Whitespace-separated rows of a text file whose lines end in LF, CRLF or CR."""
    text = path.read_bytes().decode().replace("\r", "\n")
    return [line.split() for line in text.split("\n") if line.strip()]


def real_network(name: str):
    """(src, dst, n_nodes, labels) of a network in datasets/graphs: undirected, no duplicates or self-loops."""
    folder = GRAPHS / name
    if name == "lfr-500":
        edges = np.array(_rows(folder / "network.dat"), dtype=np.int64) - 1
        labels = {int(r[0]) - 1: r[1] for r in _rows(folder / "community.dat")}
    else:
        edge_file = folder / ("edges.txt" if name == "email-eu-core" else "edges.tsv")
        label_file = folder / ("labels.txt" if name == "email-eu-core" else "labels.tsv")
        edges = np.array([r[:2] for r in _rows(edge_file)], dtype=np.int64)
        labels = {int(r[0]): " ".join(r[1:]) for r in _rows(label_file)}
    a, b = np.minimum(edges[:, 0], edges[:, 1]), np.maximum(edges[:, 0], edges[:, 1])
    pairs = np.unique(np.column_stack([a, b])[a != b], axis=0)
    n = int(max(pairs.max(), max(labels))) + 1
    truth = np.unique([labels[i] for i in range(n)], return_inverse=True)[1]
    return pairs[:, 0], pairs[:, 1], n, truth


def igraph_multilevel(src, dst, n, seed=0):
    random.seed(seed)            # python-igraph draws from Python's random module
    g = ig.Graph(n=n, edges=np.column_stack([src, dst]).tolist())
    return np.array(g.community_multilevel().membership)


def nmi(a, b) -> float:
    return ig.compare_communities(list(a), list(b), method="nmi")


def communities_are_connected(src, dst, membership) -> bool:
    inside = membership[src] == membership[dst]
    pieces = connected_components(src[inside], dst[inside], membership.size)
    # each community is one piece iff (community, piece) pairs are as many as communities
    return np.unique(membership * membership.size + pieces).size == membership.max() + 1


@pytest.mark.parametrize("n, mu, seed", [(500, 0.1, 1), (1000, 0.2, 2), (500, 0.3, 3), (1000, 0.3, 1),
                                         (500, 0.4, 2), (1000, 0.4, 3)])
def test_leiden_matches_or_beats_igraph_multilevel_on_lfr(n, mu, seed):
    src, dst, planted = lfr(n, mu, seed)
    ref = igraph_multilevel(src, dst, n)
    found = leiden(src, dst, None, n, seed=0, n_iterations=None)
    assert modularity(src, dst, None, found) >= modularity(src, dst, None, ref) - 0.002
    assert nmi(found, planted) >= nmi(ref, planted) - 0.01
    assert communities_are_connected(src, dst, found)


def test_karate_reaches_the_known_maximum_modularity():
    g = ig.Graph.Famous("Zachary")
    e = np.array(g.get_edgelist())
    found = leiden(e[:, 0], e[:, 1], None, 34, n_iterations=None)
    assert modularity(e[:, 0], e[:, 1], None, found) == pytest.approx(0.4197896, abs=1e-6)
    assert found.max() + 1 == 4


@pytest.mark.parametrize("name", ["karate", "football", "polbooks", "email-eu-core", "lfr-500"])
def test_leiden_matches_igraph_on_real_networks_with_ground_truth(name):
    """Modularity of every seed, and NMI to the ground truth as a mean over four seeds (a single
    seed's NMI varies by ±0.03 on polbooks and email-eu-core)."""
    src, dst, n, truth = real_network(name)
    ref = igraph_multilevel(src, dst, n)
    scores = []
    for seed in range(4):
        found = leiden(src, dst, None, n, seed=seed, n_iterations=None)
        assert modularity(src, dst, None, found) >= modularity(src, dst, None, ref) - 0.002
        assert communities_are_connected(src, dst, found)
        scores.append(nmi(found, truth))
    assert np.mean(scores) >= nmi(ref, truth) - 0.02


def test_real_network_files_have_the_documented_sizes():
    """Nodes, undirected edges (self-loops dropped) and ground-truth groups as in SOURCE.md."""
    sizes = {}
    for name in ["karate", "football", "polbooks", "email-eu-core", "lfr-500"]:
        src, _, n, truth = real_network(name)
        sizes[name] = (n, src.size, truth.max() + 1)
    assert sizes == {"karate": (34, 78, 2), "football": (115, 613, 12), "polbooks": (105, 441, 3),
                     "email-eu-core": (1005, 16064, 42), "lfr-500": (500, 1371, 5)}


@pytest.mark.parametrize("resolution", [0.05, 0.1, 0.2, 0.5])
def test_cpm_is_as_good_as_igraph_community_leiden(resolution):
    """Mean CPM over four seeds within 1% of igraph's mean (single runs vary by about ±1%)."""
    src, dst, _ = lfr(500, 0.2, 1)
    g = ig.Graph(n=500, edges=np.column_stack([src, dst]).tolist())
    ours, theirs, our_k, their_k = [], [], [], []
    for seed in range(4):
        random.seed(seed)
        ref = g.community_leiden(objective_function="CPM", resolution=resolution, n_iterations=-1)
        found = leiden(src, dst, None, 500, objective="cpm", resolution=resolution, seed=seed, n_iterations=None)
        ours.append(cpm(src, dst, None, found, resolution=resolution))
        theirs.append(ref.quality)
        our_k.append(found.max() + 1)
        their_k.append(len(ref))
        assert communities_are_connected(src, dst, found)
    assert np.mean(ours) >= np.mean(theirs) - 0.01 * abs(np.mean(theirs))
    assert abs(np.mean(our_k) - np.mean(their_k)) <= 0.15 * np.mean(their_k)


@pytest.mark.parametrize("resolution", [0.5, 2.0])
def test_modularity_at_other_resolutions_is_as_good_as_igraph_community_leiden(resolution):
    """Generalised modularity Q_γ: mean over four seeds ≥ igraph's mean − 0.002, both measured by
    igraph's own modularity(resolution=γ)."""
    src, dst, _ = lfr(1000, 0.3, 2)
    g = ig.Graph(n=1000, edges=np.column_stack([src, dst]).tolist())
    ours, theirs = [], []
    for seed in range(4):
        random.seed(seed)
        ref = g.community_leiden(objective_function="modularity", resolution=resolution, n_iterations=-1)
        found = leiden(src, dst, None, 1000, resolution=resolution, seed=seed, n_iterations=None)
        ours.append(g.modularity(list(found), resolution=resolution))
        theirs.append(g.modularity(ref.membership, resolution=resolution))
        assert modularity(src, dst, None, found, resolution=resolution) == pytest.approx(ours[-1], abs=1e-9)
    assert np.mean(ours) >= np.mean(theirs) - 0.002


def test_cpm_with_weights_finds_dense_groups_that_modularity_merges():
    """Many small cliques in a ring: modularity merges them (resolution limit), CPM does not."""
    g = nx.ring_of_cliques(60, 6)
    src, dst = (np.array(x) for x in zip(*g.edges()))
    cliques = np.repeat(np.arange(60), 6)
    by_cpm = leiden(src, dst, None, 360, objective="cpm", resolution=0.2)
    assert nmi(by_cpm, cliques) == pytest.approx(1.0)
    assert leiden(src, dst, None, 360).max() + 1 < 60


def test_cpm_at_resolution_above_every_weight_leaves_singletons_like_igraph():
    src, dst, _ = lfr(300, 0.2, 2)
    g = ig.Graph(n=300, edges=np.column_stack([src, dst]).tolist())
    random.seed(0)
    ref = g.community_leiden(objective_function="CPM", resolution=1.0)
    assert leiden(src, dst, None, 300, objective="cpm", resolution=1.0).max() + 1 == len(ref) == 300


def test_more_communities_as_resolution_rises():
    src, dst, _ = lfr(500, 0.3, 2)
    counts = [leiden(src, dst, None, 500, resolution=r).max() + 1 for r in (0.25, 0.5, 1.0, 2.0, 4.0)]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    counts = [leiden(src, dst, None, 500, objective="cpm", resolution=r).max() + 1 for r in (0.01, 0.05, 0.2, 0.6)]
    assert counts == sorted(counts) and counts[0] < counts[-1]


def test_same_seed_gives_the_same_membership_whatever_the_edge_order():
    src, dst, _ = lfr(500, 0.3, 1)
    weight = np.random.default_rng(0).uniform(0.5, 2, src.size)
    first = leiden(src, dst, weight, 500, seed=7)
    order = np.random.default_rng(1).permutation(src.size)
    flipped = np.random.default_rng(2).random(src.size) < 0.5
    s, d = np.where(flipped, dst, src)[order], np.where(flipped, src, dst)[order]
    assert np.array_equal(leiden(s, d, weight[order], 500, seed=7), first)
    for objective in ("modularity", "cpm"):
        runs = {leiden(src, dst, weight, 500, objective=objective, resolution=0.3, seed=3).tobytes()
                for _ in range(2)}
        assert len(runs) == 1


@pytest.mark.parametrize("objective, resolution", [("modularity", 1.0), ("cpm", 0.2)])
def test_same_seed_gives_the_same_membership_with_one_and_two_threads(monkeypatch, objective, resolution):
    """The size thresholds lowered so this small graph takes every threaded path (colour-parallel
    local moving, parallel refinement and aggregation) at every level."""
    import numba

    from keyfarm.community import _optimiser

    src, dst, _ = lfr(1000, 0.3, 1)
    weight = np.random.default_rng(0).uniform(0.5, 2, src.size)
    monkeypatch.setattr(_optimiser, "PARALLEL_MIN_NODES", 0)
    monkeypatch.setattr(_optimiser, "PARALLEL_MIN_EDGES", 0)
    monkeypatch.setattr(_optimiser, "MIN_PARALLEL_WORK", 0)
    before = numba.get_num_threads()
    runs = []
    try:
        for threads in (1, 2, 1, 2):
            numba.set_num_threads(threads)
            runs.append(leiden(src, dst, weight, 1000, objective=objective, resolution=resolution, seed=5,
                               n_iterations=None))
    finally:
        numba.set_num_threads(before)
    assert all(np.array_equal(r, runs[0]) for r in runs)
    assert communities_are_connected(src, dst, runs[0])
    serial = leiden(src, dst, weight, 1000, objective=objective, resolution=resolution, seed=5, n_iterations=None)
    quality = modularity if objective == "modularity" else cpm
    assert quality(src, dst, weight, runs[0], resolution=resolution) >= \
        quality(src, dst, weight, serial, resolution=resolution) - 0.01 * abs(quality(src, dst, weight, serial,
                                                                                        resolution=resolution))


def test_labels_are_numbered_by_first_appearance():
    src, dst, _ = lfr(300, 0.2, 3)
    found = leiden(src, dst, None, 300, seed=4)
    first = np.unique(found, return_index=True)[1]
    assert np.all(np.diff(first) > 0) and found.dtype == np.int64 and found[0] == 0


def test_duplicate_edges_count_as_their_summed_weight():
    src, dst, _ = lfr(300, 0.3, 1)
    w = np.random.default_rng(5).uniform(0.5, 2.0, src.size)
    half = w / 2
    doubled = leiden(np.concatenate([src, dst]), np.concatenate([dst, src]), np.concatenate([half, half]), 300)
    assert modularity(src, dst, w, doubled) == pytest.approx(modularity(src, dst, w, leiden(src, dst, w, 300)),
                                                             abs=1e-9)


def test_isolated_nodes_self_loops_and_zero_weights_are_handled():
    # two triangles, with self-loops on 0 and 1; node 6 isolated; a zero-weight edge between them
    src = [0, 1, 0, 3, 4, 3, 2, 0, 1]
    dst = [1, 2, 2, 4, 5, 5, 3, 0, 1]
    weight = [1, 1, 1, 1, 1, 1, 0, 0.5, 0.25]
    g = ig.Graph(n=7, edges=list(zip(src, dst)))
    for objective, resolution in (("modularity", 1.0), ("cpm", 0.5)):
        found = leiden(src, dst, weight, 7, objective=objective, resolution=resolution, n_iterations=None)
        assert found.tolist() == [0, 0, 0, 1, 1, 1, 2]
        random.seed(0)
        ref = g.community_leiden(objective_function=objective if objective == "modularity" else "CPM",
                                 weights=weight, resolution=resolution, n_iterations=-1)
        assert nmi(ref.membership, found) == pytest.approx(1.0)


def test_empty_and_edgeless_graphs_give_singletons():
    assert leiden([], [], None, 0).size == 0
    assert leiden([], [], None, 4).tolist() == [0, 1, 2, 3]
    assert leiden([0], [1], [0.0], 3).tolist() == [0, 1, 2]
    assert leiden([], [], None, 3, objective="cpm").tolist() == [0, 1, 2]


def test_a_graph_object_can_be_passed_instead_of_arrays():
    src, dst, _ = lfr(300, 0.2, 1)
    class KeyGraphLike:
        pass
    graph = KeyGraphLike()
    graph.src, graph.dst, graph.n_nodes = src, dst, 300
    graph.weight = np.ones(src.size)
    assert np.array_equal(leiden(graph, objective="cpm", resolution=0.2),
                          leiden(src, dst, None, 300, objective="cpm", resolution=0.2))


def test_fixed_iteration_counts_never_lower_quality():
    src, dst, _ = lfr(1000, 0.4, 2)
    q = [modularity(src, dst, None, leiden(src, dst, None, 1000, n_iterations=k, seed=1)) for k in (1, 2, None)]
    assert q[0] <= q[1] + 1e-12 <= q[2] + 2e-12
    assert leiden(src, dst, None, 1000, n_iterations=0).tolist() == list(range(1000))


def test_default_is_two_iterations_as_igraph_and_minus_one_means_until_stable():
    src, dst, _ = lfr(1000, 0.4, 2)
    assert np.array_equal(leiden(src, dst, None, 1000, seed=1), leiden(src, dst, None, 1000, seed=1, n_iterations=2))
    assert np.array_equal(leiden(src, dst, None, 1000, seed=1, n_iterations=-1),
                          leiden(src, dst, None, 1000, seed=1, n_iterations=None))


@pytest.mark.parametrize("kwargs", [{"objective": "potts"}, {"resolution": -1.0}, {"resolution": float("nan")},
                                    {"n_iterations": -2}, {"n_iterations": 1.5}, {"seed": "x"}])
def test_bad_parameters_raise_value_errors(kwargs):
    with pytest.raises(ValueError):
        leiden([0, 1], [1, 2], None, 3, **kwargs)


def test_endpoints_outside_the_node_range_raise_with_the_row():
    with pytest.raises(CommunityInputError) as info:
        leiden([0, 1, 2], [1, 2, 9], None, 4)
    assert (info.value.column, info.value.row) == ("dst", 2)
