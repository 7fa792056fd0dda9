"""Leiden on the whole account graph against Leiden per connected component (community.bycomponent),
on one world: component sizes, whether the partitions agree, CPM quality and time of each.

    .venv/bin/python scripts/measure_component_leiden.py /work/q13/world-50000-s4-d3 --repeat 3
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd


def main() -> None:
    from keyfarm.community import connected_components, cpm, leiden
    from keyfarm.community.bycomponent import communities_by_component
    from keyfarm.config import Config
    from keyfarm.graph import build_graph
    from keyfarm.io import load_tables
    from keyfarm.pipeline import account_graph, component_leiden
    from keyfarm.signals import registry

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("world")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    config = Config.default()
    c = config.community
    tables = load_tables(args.world)
    graph, _, _ = build_graph(tables, config, {n: f(tables, config) for n, f in registry().items()})
    linked, src, dst, w = account_graph(graph.src, graph.dst, graph.w, graph.account, c.min_edge_weight)
    n = linked.size
    whole_s, per_s = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        whole = leiden(src, dst, w, n, resolution=c.resolution, objective=c.objective, seed=args.seed,
                       n_iterations=c.n_iterations)
        t1 = time.perf_counter()
        comp = connected_components(src, dst, n)
        per = communities_by_component(src, dst, w, n, component_leiden(c, args.seed), component=comp)
        whole_s.append(t1 - t0)
        per_s.append(time.perf_counter() - t1)
    sizes = np.bincount(comp)
    differ = [k for k in range(sizes.size)
              if not np.array_equal(pd.factorize(whole[comp == k])[0], pd.factorize(per[comp == k])[0])]
    print(f"{n:,} linked accounts, {src.size:,} links, {sizes.size:,} components, giant {sizes.max():,}")
    print(f"components whose partition differs: {len(differ)} (sizes {sorted(sizes[differ].tolist())[-5:]})")
    print(f"CPM whole graph {cpm(src, dst, w, whole, resolution=c.resolution):.5f}, "
          f"per component {cpm(src, dst, w, per, resolution=c.resolution):.5f}; "
          f"communities {int(whole.max()) + 1:,} / {int(per.max()) + 1:,}")
    print(f"time: whole graph median {statistics.median(whole_s):.3f} s, per component (components "
          f"included) median {statistics.median(per_s):.3f} s over {args.repeat} runs")


if __name__ == "__main__":
    main()
