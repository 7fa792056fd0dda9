"""Graph stage: incidence → weighted key graph (weighting, hubs, Numba projection, KeyGraph)."""
from keyfarm.graph.build import build_graph, token_degrees
from keyfarm.graph.keygraph import KeyGraph
from keyfarm.graph.projection import project
from keyfarm.graph.weighting import SIGNALS, weigh_tokens

__all__ = ["KeyGraph", "SIGNALS", "build_graph", "project", "token_degrees", "weigh_tokens"]
