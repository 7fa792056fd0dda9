"""Graph stage: incidence → weighted key graph (weighting, hubs, Numba projection, KeyGraph)."""
from keyfarm.graph.build import TokenIncidence, build_graph, hub_table, merge_incidences, project_tokens, token_degrees
from keyfarm.graph.keygraph import KeyGraph
from keyfarm.graph.projection import project
from keyfarm.graph.weighting import KINDS, SIGNALS, TOKEN_KINDS, kind_codes, weigh_tokens

__all__ = ["KINDS", "KeyGraph", "SIGNALS", "TOKEN_KINDS", "TokenIncidence", "build_graph", "hub_table",
           "kind_codes", "merge_incidences", "project", "project_tokens", "token_degrees", "weigh_tokens"]
