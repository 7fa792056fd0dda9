"""Louvain community detection (community stage): the Leiden optimiser without refinement."""
from __future__ import annotations

import numpy as np

from keyfarm.community.leiden import run_optimiser


def louvain(src, dst=None, weight=None, n_nodes=None, *, resolution: float = 1.0,
            objective: str = "modularity", seed: int | None = 0, n_iterations: int | None = None) -> np.ndarray:
    """Communities by the Louvain method: local moving and aggregation, no refinement.

    Same parameters and return value as `keyfarm.community.leiden`, except that `n_iterations`
    defaults to None (iterate until nothing changes: Louvain is cheap and, as igraph's
    `community_multilevel`, runs to a local optimum). Unlike Leiden, a community may
    end up internally disconnected (Traag et al. 2019 show how); it is offered as a reference and
    because it is the method most users know. Node moves use Leiden's queue, which visits only nodes
    whose neighbourhood changed instead of sweeping all nodes again.

    References
    ----------
    V. D. Blondel, J.-L. Guillaume, R. Lambiotte, E. Lefebvre, "Fast unfolding of communities in large
    networks", J. Stat. Mech. P10008 (2008).
    """
    return run_optimiser(src, dst, weight, n_nodes, resolution=resolution, objective=objective, seed=seed,
                         n_iterations=n_iterations, use_refinement=False)
