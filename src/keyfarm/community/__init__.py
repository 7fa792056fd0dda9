"""Community stage: the membership of each key in the key graph.

Leiden (modularity or CPM) is the default; Louvain, connected components and label propagation are
offered too. Every function takes (src, dst, weight, n_nodes) arrays or a KeyGraph-like object and
returns int64 labels 0..k−1, independent of edge order and deterministic for a given seed.
"""
from keyfarm.community._graph import CommunityInputError
from keyfarm.community.components import connected_components
from keyfarm.community.labelprop import label_propagation
from keyfarm.community.leiden import leiden
from keyfarm.community.louvain import louvain
from keyfarm.community.quality import cpm, modularity

__all__ = ["CommunityInputError", "connected_components", "cpm", "label_propagation", "leiden", "louvain",
           "modularity"]
