"""KeyGraph: the graph stage's output as networkx and igraph see it, and as community detection takes it."""
from __future__ import annotations

import numpy as np
import pytest

from keyfarm.community import connected_components, leiden, modularity
from keyfarm.config import Config
from keyfarm.graph import SIGNALS, build_graph
from keyfarm.io import tables_from_frames


@pytest.fixture(scope="module")
def graph(small_world):
    tables = tables_from_frames(**{k: v for k, v in small_world.items() if k != "truth"})
    return build_graph(tables, Config.default())[0]


def test_to_networkx_has_every_node_edge_and_weight(graph):
    g = graph.to_networkx()
    assert g.number_of_nodes() == graph.n_nodes and g.number_of_edges() == graph.n_edges
    for i in (0, graph.n_edges // 2, graph.n_edges - 1):
        a, b = int(graph.src[i]), int(graph.dst[i])
        data = g.edges[a, b]
        assert data["weight"] == graph.weight[i]
        assert all(data[f"w_{s}"] == graph.w[s][i] for s in SIGNALS)
        assert g.nodes[a]["key_id"] == graph.key_id[a] and g.nodes[b]["account_id"] == graph.account_id[b]
    assert sum(d for _, _, d in g.edges(data="weight")) == pytest.approx(graph.weight.sum())


def test_to_igraph_keeps_vertex_order_and_edge_attributes(graph):
    g = graph.to_igraph()
    assert g.vcount() == graph.n_nodes and g.ecount() == graph.n_edges and not g.is_directed()
    assert g.vs["key_id"] == list(graph.key_id) and g.vs["account_id"] == list(graph.account_id)
    ends = np.array(g.get_edgelist())
    assert (ends[:, 0] == graph.src).all() and (ends[:, 1] == graph.dst).all()
    assert np.array_equal(g.es["weight"], graph.weight)
    assert all(np.array_equal(g.es[f"w_{s}"], graph.w[s]) for s in SIGNALS)


def test_community_detection_takes_a_keygraph_directly(graph):
    from_graph = leiden(graph, objective="cpm", resolution=0.2, seed=4)
    from_arrays = leiden(graph.src, graph.dst, graph.weight, graph.n_nodes, objective="cpm",
                         resolution=0.2, seed=4)
    assert np.array_equal(from_graph, from_arrays)
    ig_components = graph.to_igraph().connected_components().membership
    ours = connected_components(graph)
    # the same partition, whatever the labels
    assert len(set(zip(ours, ig_components))) == len(set(ours)) == len(set(ig_components))
    assert modularity(graph, from_graph) == pytest.approx(
        graph.to_igraph().modularity(from_graph, weights="weight"), abs=1e-9)
