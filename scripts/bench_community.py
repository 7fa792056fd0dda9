"""Benchmark of keyfarm's community detection against igraph, leidenalg and networkx.

Sections (all in one run, ratios against references measured in the same run):
  1. modularity on an LFR-like graph (default ~100k nodes / ~1M edges): keyfarm leiden and louvain
     vs igraph community_multilevel, igraph community_leiden, leidenalg; networkx louvain on a small
     graph only (it takes minutes on the large one);
  2. CPM (γ = 0.2) on a planted graph of many small dense groups (5–50 nodes, the shape of key
     farms) vs igraph community_leiden CPM, with mean best-match F1 to the planted groups;
  3. a key graph from a generated world (`keyfarm.synth` + `keyfarm.graph.build_graph`), CPM;
  4. the account graph `keyfarm link` runs Leiden on (`keyfarm.pipeline.account_graph`) of an existing
     world, e.g. the 1M-key one: built once with --build-account-graph WORLD (a full load, signals and
     graph: run it under the team's big-run lock) and cached as .npz (--account-graph PATH), then
     Leiden CPM γ=0.2 (the pipeline's objective) and modularity vs igraph community_leiden.

keyfarm's Leiden runs on all Numba threads (numba.get_num_threads(), NUMBA_NUM_THREADS); rows marked
"1 thread" run it on one, and "same membership" checks that the thread count changed nothing.
Ratios are against igraph measured in the same run, so a shared, loaded machine slows both alike
(mostly: keyfarm's threads need free cores; the load average is printed with each section).

Times are the median of --repeats runs after one warm-up run; keyfarm's first call (JIT compile or
cache load) is reported separately. Sections 1 and 4 run their methods round-robin (a round = one
call of each) and report each ratio as the median over rounds. keyfarm's time includes building its CSR from the edge arrays;
the references' times exclude building their graph objects.

The LFR-like graphs come from `lfr_like` below, not networkx.LFR_benchmark_graph (which takes far
too long at 100k nodes): power-law degrees (exponent 2.5) and community sizes (exponent 1.5),
each node's stubs split (1 − μ) inside its community / μ outside and paired at random
(configuration model), self-loops and duplicate pairs dropped.

    .venv/bin/python scripts/bench_community.py                 # full size
    .venv/bin/python scripts/bench_community.py --nodes 20000 --groups 1000   # quicker
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def _power_law(rng, size, exponent, low, high):
    """Integers in [low, high] with P(x) ∝ x^-exponent (inverse transform of the continuous law)."""
    u = rng.random(size)
    a = 1.0 - exponent
    x = (low ** a + u * (high ** a - low ** a)) ** (1.0 / a)
    return np.floor(x).astype(np.int64)


def _pair_stubs(rng, owner, group):
    """Pair stubs at random within each group (configuration model); returns (src, dst)."""
    order = np.lexsort((rng.random(owner.size), group))
    owner, group = owner[order], group[order]
    m = owner.size // 2 * 2
    a, b = owner[0:m:2], owner[1:m:2]
    ok = group[0:m:2] == group[1:m:2]
    return a[ok], b[ok]


def lfr_like(n, mu, seed, *, avg_degree=20, max_degree=None, min_comm=20, max_comm=1000,
             deg_exp=2.5, comm_exp=1.5):
    """LFR-like benchmark graph: (src, dst, planted membership), edges unique with src < dst."""
    rng = np.random.default_rng(seed)
    max_degree = max_degree or max(avg_degree * 10, 50)
    low = max(2, int(avg_degree * (deg_exp - 2) / (deg_exp - 1)))
    degree = _power_law(rng, n, deg_exp, low, max_degree)
    degree = np.maximum(2, np.round(degree * avg_degree / degree.mean()).astype(np.int64))
    sizes = []
    total = 0
    while total < n:
        s = int(_power_law(rng, 1, comm_exp, min_comm, max_comm)[0])
        sizes.append(s)
        total += s
    sizes[-1] -= total - n
    membership = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    internal = np.round(degree * (1 - mu)).astype(np.int64)
    external = degree - internal
    stub_in = np.repeat(np.arange(n), internal)
    a1, b1 = _pair_stubs(rng, stub_in, membership[stub_in])
    stub_out = np.repeat(np.arange(n), external)
    a2, b2 = _pair_stubs(rng, stub_out, np.zeros(stub_out.size, np.int64))
    a, b = np.concatenate([a1, a2]), np.concatenate([b1, b2])
    keep = a != b
    a, b = np.minimum(a, b)[keep], np.maximum(a, b)[keep]
    pairs = np.unique(a * n + b)
    return pairs // n, pairs % n, membership


def planted_groups(n_groups, seed, *, n_background=None, p_in=0.6, background_degree=3.0, noise=0.5):
    """Many small dense groups (5–50 nodes, internal density p_in) in a sparse random background,
    each group node with ~`noise` random edges outside: (src, dst, weight, planted membership with
    −1 for background nodes). Weights are ~1 (uniform 0.5–1.5)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 51, n_groups)
    n_group_nodes = int(sizes.sum())
    n_background = n_group_nodes * 4 if n_background is None else n_background
    n = n_group_nodes + n_background
    node = rng.permutation(n)
    membership = np.full(n, -1, np.int64)
    membership[node[:n_group_nodes]] = np.repeat(np.arange(n_groups), sizes)
    srcs, dsts = [], []
    start = 0
    for s in sizes:
        members = node[start:start + s]
        start += s
        i, j = np.triu_indices(s, 1)
        keep = rng.random(i.size) < p_in
        srcs.append(members[i[keep]])
        dsts.append(members[j[keep]])
    n_bg_edges = int(n * background_degree / 2 + n_group_nodes * noise)
    srcs.append(rng.integers(0, n, n_bg_edges))
    dsts.append(rng.integers(0, n, n_bg_edges))
    a, b = np.concatenate(srcs), np.concatenate(dsts)
    keep = a != b
    a, b = np.minimum(a, b)[keep], np.maximum(a, b)[keep]
    pairs = np.unique(a * n + b)
    a, b = pairs // n, pairs % n
    return a, b, rng.uniform(0.5, 1.5, a.size), membership


def mean_best_f1(planted, found):
    """Mean over planted groups (label >= 0) of the best F1 against any found community."""
    groups = planted >= 0
    p, f = planted[groups], found[groups]
    sizes_p = np.bincount(p)
    sizes_f = np.bincount(found)
    pair = p * (int(found.max()) + 1) + f
    keys, counts = np.unique(pair, return_counts=True)
    gp, gf = keys // (int(found.max()) + 1), keys % (int(found.max()) + 1)
    f1 = 2 * counts / (sizes_p[gp] + sizes_f[gf])
    best = np.zeros(sizes_p.size)
    np.maximum.at(best, gp, f1)
    return float(best[sizes_p > 0].mean())


def timed(fn, repeats):
    """(first call seconds, median of `repeats` later calls, last result)."""
    t0 = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times), result


def interleaved(runs, repeats):
    """Time several functions round-robin: one warm-up call each, then `repeats` rounds of one call
    each, so a load that drifts during the run (a shared machine) falls on all of them alike.
    Returns {name: (first call seconds, [seconds per round], last result)}."""
    out = {}
    for name, fn in runs:
        t0 = time.perf_counter()
        result = fn()
        out[name] = (time.perf_counter() - t0, [], result)
    for _ in range(repeats):
        for name, fn in runs:
            t0 = time.perf_counter()
            result = fn()
            first, times, _ = out[name]
            times.append(time.perf_counter() - t0)
            out[name] = (first, times, result)
    return out


def ratio_line(label, times, ref_times, delta):
    """Median time ratio over rounds (each round's two calls ran back to back) and the medians'."""
    per_round = statistics.median(t / r for t, r in zip(times, ref_times))
    print(f"  ratio {label} time {per_round:5.2f}x (median per round; medians {statistics.median(times):.3f} / "
          f"{statistics.median(ref_times):.3f} s)   {delta}")


def on_threads(n_threads, fn):
    """fn run with Numba limited to n_threads threads (restored afterwards)."""
    import numba

    def run():
        before = numba.get_num_threads()
        numba.set_num_threads(n_threads)
        try:
            return fn()
        finally:
            numba.set_num_threads(before)
    return run


def _load():
    import os

    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def _row(name, first, median, quality, extra=""):
    print(f"  {name:34s} first {first:7.2f} s   median {median:7.3f} s   {quality}{extra}", flush=True)


def bench_modularity(n, seed, repeats, mu, with_leidenalg=True):
    import igraph as ig
    import leidenalg

    from keyfarm.community import leiden, louvain, modularity

    t0 = time.perf_counter()
    src, dst, planted = lfr_like(n, mu, seed)
    print(f"\n[1] modularity, LFR-like n={n:,} m={src.size:,} mu={mu} (generated in "
          f"{time.perf_counter() - t0:.1f} s; {_load()})")
    g = ig.Graph(n=n, edges=np.column_stack([src, dst]), directed=False)
    runs = [
        ("keyfarm leiden", lambda: leiden(src, dst, None, n, seed=seed, n_iterations=None)),
        ("keyfarm leiden n_iterations=2", lambda: leiden(src, dst, None, n, seed=seed, n_iterations=2)),
        ("keyfarm leiden n_it=2, 1 thread", on_threads(1, lambda: leiden(src, dst, None, n, seed=seed,
                                                                           n_iterations=2))),
        ("keyfarm louvain", lambda: louvain(src, dst, None, n, seed=seed)),
        ("igraph community_multilevel", lambda: np.array(g.community_multilevel().membership)),
        ("igraph community_leiden (n_it=2)", lambda: np.array(
            g.community_leiden(objective_function="modularity", n_iterations=2).membership)),
        ("igraph community_leiden (n_it=-1)", lambda: np.array(
            g.community_leiden(objective_function="modularity", n_iterations=-1).membership)),
    ]
    if with_leidenalg:
        runs.append(("leidenalg ModularityVertexPartition", lambda: np.array(leidenalg.find_partition(
            g, leidenalg.ModularityVertexPartition, seed=seed).membership)))
    timing = interleaved(runs, repeats)
    q = {}
    for name, (first, times, memb) in timing.items():
        q[name] = modularity(src, dst, None, memb)
        _row(name, first, statistics.median(times), f"Q {q[name]:.5f}", f"   k {memb.max() + 1}")
    print(f"  same membership on 1 thread and on all: {np.array_equal(timing['keyfarm leiden n_iterations=2'][2], timing['keyfarm leiden n_it=2, 1 thread'][2])}")
    # like against like: until-stable vs until-stable, two iterations vs two, Louvain vs multilevel
    for ours, theirs in [("keyfarm leiden", "igraph community_leiden (n_it=-1)"),
                         ("keyfarm leiden n_iterations=2", "igraph community_leiden (n_it=2)"),
                         ("keyfarm leiden n_it=2, 1 thread", "igraph community_leiden (n_it=2)"),
                         ("keyfarm louvain", "igraph community_multilevel")]:
        ratio_line(f"{ours:32s} / {theirs:34s}", timing[ours][1], timing[theirs][1], f"ΔQ {q[ours] - q[theirs]:+.5f}")
    small_n = min(n, 5000)
    s_src, s_dst, _ = lfr_like(small_n, mu, seed)
    import networkx as nx

    nxg = nx.Graph()
    nxg.add_nodes_from(range(small_n))
    nxg.add_edges_from(zip(s_src.tolist(), s_dst.tolist()))
    print(f"  small graph n={small_n:,} m={s_src.size:,}:")
    sg = ig.Graph(n=small_n, edges=np.column_stack([s_src, s_dst]), directed=False)
    small = {}
    for name, fn in [
        ("keyfarm leiden", lambda: leiden(s_src, s_dst, None, small_n, seed=seed, n_iterations=None)),
        ("igraph community_multilevel", lambda: np.array(sg.community_multilevel().membership)),
        ("networkx louvain_communities", lambda: _nx_membership(
            nx.community.louvain_communities(nxg, seed=seed), small_n)),
    ]:
        first, med, memb = timed(fn, repeats)
        q = modularity(s_src, s_dst, None, memb)
        small[name] = med
        _row(name, first, med, f"Q {q:.5f}")
    print(f"  ratio keyfarm leiden / networkx louvain {small['keyfarm leiden'] / small['networkx louvain_communities']:.3f}x")


def _nx_membership(communities, n):
    out = np.empty(n, np.int64)
    for i, c in enumerate(communities):
        out[list(c)] = i
    return out


def bench_cpm(n_groups, seed, repeats, resolution=0.2, until_stable=False):
    import igraph as ig

    from keyfarm.community import cpm, leiden

    src, dst, weight, planted = planted_groups(n_groups, seed)
    n = planted.size
    print(f"\n[2] CPM γ={resolution}, planted groups: {n_groups:,} groups of 5–50 in n={n:,} nodes, "
          f"m={src.size:,}")
    g = ig.Graph(n=n, edges=np.column_stack([src, dst]), directed=False)
    g.es["weight"] = weight
    runs = [
        ("keyfarm leiden cpm n_iterations=2", lambda: leiden(
            src, dst, weight, n, objective="cpm", resolution=resolution, seed=seed, n_iterations=2)),
        ("igraph community_leiden cpm (n_it=2)", lambda: np.array(g.community_leiden(
            objective_function="CPM", resolution=resolution, weights="weight", n_iterations=2).membership)),
    ]
    if until_stable:
        # Until-stable runs have a long tail of iterations that each move a few nodes (for igraph
        # as for keyfarm): minutes at this size, so one timed run each after the warm-up.
        runs += [
            ("keyfarm leiden cpm (until stable)", lambda: leiden(
                src, dst, weight, n, objective="cpm", resolution=resolution, seed=seed)),
            ("igraph community_leiden cpm (n_it=-1)", lambda: np.array(g.community_leiden(
                objective_function="CPM", resolution=resolution, weights="weight", n_iterations=-1).membership)),
        ]
    res = {}
    for name, fn in runs:
        first, med, memb = timed(fn, 1 if "stable" in name or "n_it=-1" in name else repeats)
        q = cpm(src, dst, weight, memb, resolution=resolution)
        res[name] = (med, q)
        _row(name, first, med, f"CPM {q:.5f}", f"   F1 {mean_best_f1(planted, memb):.3f}   k {memb.max() + 1}")
    pairs = [("keyfarm leiden cpm n_iterations=2", "igraph community_leiden cpm (n_it=2)")]
    if until_stable:
        pairs.append(("keyfarm leiden cpm (until stable)", "igraph community_leiden cpm (n_it=-1)"))
    for ours, theirs in pairs:
        print(f"  ratio {ours:34s} time/{theirs} {res[ours][0] / res[theirs][0]:5.2f}x   "
              f"ΔCPM {res[ours][1] - res[theirs][1]:+.5f}")


def bench_key_graph(n_keys, seed, repeats):
    """Key graph from a generated world (needs keyfarm.synth and keyfarm.graph.build_graph)."""
    try:
        from keyfarm.config import Config
        from keyfarm.graph import build_graph
        from keyfarm.io import tables_from_frames
        from keyfarm.synth import generate_world
    except ImportError as exc:
        print(f"\n[3] key graph from a generated world: skipped ({exc})")
        return
    import igraph as ig
    import pandas as pd

    from keyfarm.community import cpm, leiden

    print(f"\n[3] key graph from a generated world of {n_keys:,} keys (CPM γ=0.2)")
    t0 = time.perf_counter()
    world = generate_world(n_keys, seed=seed)
    tables = tables_from_frames(**{k: world[k] for k in ("keys", "accounts", "payments", "requests")})
    graph = build_graph(tables, Config.default())
    graph = graph[0] if isinstance(graph, tuple) else graph      # (KeyGraph, hubs, tokens)
    farm = world["truth"].set_index("key_id")["farm_id"].reindex(tables.keys["key_id"]).to_numpy()
    planted = np.where(pd.isna(farm), -1, pd.factorize(farm)[0])
    print(f"  world + graph built in {time.perf_counter() - t0:.1f} s: n={graph.n_nodes:,} m={graph.n_edges:,}")
    w = graph.weight / graph.weight.mean() if graph.n_edges else graph.weight
    src, dst, n = graph.src, graph.dst, graph.n_nodes
    g = ig.Graph(n=n, edges=np.column_stack([src, dst]), directed=False)
    g.es["weight"] = w
    res = {}
    for name, fn in [
        ("keyfarm leiden cpm", lambda: leiden(src, dst, w, n, objective="cpm", resolution=0.2, seed=seed,
                                              n_iterations=None)),
        ("keyfarm leiden cpm n_iterations=2", lambda: leiden(src, dst, w, n, objective="cpm", resolution=0.2,
                                                             seed=seed, n_iterations=2)),
        ("igraph community_leiden cpm (n_it=2)", lambda: np.array(g.community_leiden(
            objective_function="CPM", resolution=0.2, weights="weight", n_iterations=2).membership)),
        ("igraph community_leiden cpm (n_it=-1)", lambda: np.array(g.community_leiden(
            objective_function="CPM", resolution=0.2, weights="weight", n_iterations=-1).membership)),
    ]:
        first, med, memb = timed(fn, repeats)
        res[name] = med
        _row(name, first, med, f"CPM {cpm(src, dst, w, memb, resolution=0.2):.5f}",
             f"   farm F1 {mean_best_f1(planted, memb):.3f}   k {memb.max() + 1}")
    print(f"  ratio keyfarm(n_iterations=2)/igraph(n_it=2) "
          f"{res['keyfarm leiden cpm n_iterations=2'] / res['igraph community_leiden cpm (n_it=2)']:.2f}x   "
          f"keyfarm(until stable)/igraph(n_it=-1) "
          f"{res['keyfarm leiden cpm'] / res['igraph community_leiden cpm (n_it=-1)']:.2f}x")
    bench_key_graph_modularity(src, dst, w, n, g, planted, seed, repeats)


def bench_key_graph_modularity(src, dst, w, n, g, planted, seed, repeats):
    """The same key graph under weighted modularity (γ=1): every library's optimiser, like against like."""
    import leidenalg

    from keyfarm.community import leiden, louvain, modularity

    print("  weighted modularity (γ=1) on the same graph:")
    res = {}
    for name, fn in [
        ("keyfarm leiden", lambda: leiden(src, dst, w, n, seed=seed, n_iterations=None)),
        ("keyfarm louvain", lambda: louvain(src, dst, w, n, seed=seed)),
        ("igraph community_multilevel", lambda: np.array(g.community_multilevel(weights="weight").membership)),
        ("igraph community_leiden (n_it=-1)", lambda: np.array(g.community_leiden(
            objective_function="modularity", weights="weight", n_iterations=-1).membership)),
        ("leidenalg ModularityVertexPartition", lambda: np.array(leidenalg.find_partition(
            g, leidenalg.ModularityVertexPartition, weights="weight", seed=seed).membership)),
    ]:
        first, med, memb = timed(fn, repeats)
        q = modularity(src, dst, w, memb)
        res[name] = (med, q)
        _row(name, first, med, f"Q {q:.5f}", f"   farm F1 {mean_best_f1(planted, memb):.3f}   k {memb.max() + 1}")
    for ours, theirs in [("keyfarm leiden", "igraph community_leiden (n_it=-1)"),
                         ("keyfarm louvain", "igraph community_multilevel")]:
        (med, q), (ref_med, ref_q) = res[ours], res[theirs]
        print(f"  ratio {ours} / {theirs}: time {med / ref_med:.2f}x   ΔQ {q - ref_q:+.5f}")


def build_account_graph(world, path):
    """Load a world, run the signal and graph stages and save the account graph Leiden runs on."""
    from keyfarm.config import Config
    from keyfarm.graph import build_graph
    from keyfarm.io import load_tables
    from keyfarm.pipeline import account_graph
    from keyfarm.signals import registry

    t0 = time.perf_counter()
    config = Config.default()
    tables = load_tables(world)
    incidences = {name: fn(tables, config) for name, fn in registry().items()}
    graph = build_graph(tables, config, incidences)[0]
    linked, src, dst, weight = account_graph(graph.src, graph.dst, graph.w, graph.account,
                                             config.community.min_edge_weight)
    np.savez(path, src=src, dst=dst, weight=weight, n=linked.size)
    print(f"account graph of {world}: n={linked.size:,} m={src.size:,} in {time.perf_counter() - t0:.0f} s -> {path}")


def account_graph_from_out(out_dir, path):
    """The same account graph rebuilt from a finished run's OUT_DIR (edges.parquet holds every key
    pair of the graph with its per-signal weights, members.parquet each key's account), through
    `keyfarm.pipeline.account_graph`: no world is loaded."""
    from types import SimpleNamespace

    import pandas as pd
    import pyarrow.parquet as pq

    from keyfarm.config import Config
    from keyfarm.pipeline import account_graph

    t0 = time.perf_counter()
    members = pd.read_parquet(f"{out_dir}/members.parquet", columns=["key_id", "account_id"])
    signals = [c for c in pq.ParquetFile(f"{out_dir}/edges.parquet").schema_arrow.names if c.startswith("w_")]
    edges = pd.read_parquet(f"{out_dir}/edges.parquet", columns=["key_a", "key_b", *signals])
    keys = pd.Index(members["key_id"])
    graph = SimpleNamespace(account=pd.factorize(members["account_id"], sort=True)[0],
                            src=keys.get_indexer(edges["key_a"]), dst=keys.get_indexer(edges["key_b"]),
                            w={c[2:]: edges[c].to_numpy() for c in signals})
    linked, src, dst, weight = account_graph(graph.src, graph.dst, graph.w, graph.account,
                                             Config.default().community.min_edge_weight)
    np.savez(path, src=src, dst=dst, weight=weight, n=linked.size)
    print(f"account graph of {out_dir}: n={linked.size:,} m={src.size:,} in {time.perf_counter() - t0:.0f} s -> {path}")


def bench_account_graph(path, seed, repeats, until_stable_repeats, objectives=("cpm", "modularity")):
    """Leiden on a cached account graph: CPM γ=0.2 as the pipeline runs it, and modularity (γ=1)."""
    import igraph as ig

    from keyfarm.community import cpm, leiden, modularity

    z = np.load(path)
    src, dst, w, n = z["src"], z["dst"], z["weight"], int(z["n"])
    print(f"\n[4] account graph {path}: n={n:,} m={src.size:,} ({_load()})")
    g = ig.Graph(n=n, edges=np.column_stack([src, dst]), directed=False)
    g.es["weight"] = w
    for objective, resolution, quality in (("cpm", 0.2, cpm), ("modularity", 1.0, modularity)):
        if objective not in objectives:
            continue
        ig_objective = "CPM" if objective == "cpm" else "modularity"
        runs = [
            ("keyfarm leiden n_iterations=2", lambda: leiden(src, dst, w, n, objective=objective, resolution=resolution,
                                                             seed=seed, n_iterations=2)),
            ("keyfarm leiden n_it=2, 1 thread", on_threads(1, lambda: leiden(
                src, dst, w, n, objective=objective, resolution=resolution, seed=seed, n_iterations=2))),
            ("igraph community_leiden (n_it=2)", lambda: np.array(g.community_leiden(
                objective_function=ig_objective, resolution=resolution, weights="weight", n_iterations=2).membership)),
        ]
        stable_runs = [
            ("keyfarm leiden (until stable)", lambda: leiden(src, dst, w, n, objective=objective, resolution=resolution,
                                                             seed=seed, n_iterations=None)),
            ("igraph community_leiden (n_it=-1)", lambda: np.array(g.community_leiden(
                objective_function=ig_objective, resolution=resolution, weights="weight", n_iterations=-1).membership)),
        ]
        timing = interleaved(runs, repeats)
        if until_stable_repeats > 0:       # 0: skip the until-stable runs (minutes each at 1M accounts)
            timing.update(interleaved(stable_runs, until_stable_repeats))
        q = {}
        for name, (first, times, memb) in timing.items():
            q[name] = quality(src, dst, w, memb, resolution=resolution)
            _row(f"{objective} {name}", first, statistics.median(times), f"{objective} {q[name]:.6f}",
                 f"   k {memb.max() + 1}   rounds {', '.join(f'{t:.2f}' for t in times)}")
        print(f"  same membership on 1 thread and on all: {np.array_equal(timing['keyfarm leiden n_iterations=2'][2], timing['keyfarm leiden n_it=2, 1 thread'][2])}")
        for ours, theirs in [("keyfarm leiden n_iterations=2", "igraph community_leiden (n_it=2)"),
                             ("keyfarm leiden n_it=2, 1 thread", "igraph community_leiden (n_it=2)"),
                             ("keyfarm leiden (until stable)", "igraph community_leiden (n_it=-1)")]:
            if ours not in timing:
                continue
            ratio_line(f"{objective} {ours:32s} / {theirs:34s}", timing[ours][1], timing[theirs][1],
                       f"Δ{objective} {q[ours] - q[theirs]:+.6f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100_000, help="nodes of the LFR-like graph")
    parser.add_argument("--mu", type=float, default=0.3, help="mixing parameter of the LFR-like graph")
    parser.add_argument("--groups", type=int, default=7_000, help="planted groups in the CPM section")
    parser.add_argument("--world-keys", type=int, default=50_000, help="keys of the generated world")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=["modularity", "cpm", "world", "account"], default=None)
    parser.add_argument("--account-graph", default=None,
                        help="cached account graph (.npz) for section 4 (written by --build-account-graph)")
    parser.add_argument("--build-account-graph", metavar="WORLD", default=None,
                        help="build the account graph of this world into --account-graph and exit")
    parser.add_argument("--account-graph-from-out", metavar="OUT_DIR", default=None,
                        help="rebuild the account graph from a finished run's OUT_DIR into --account-graph and exit")
    parser.add_argument("--no-leidenalg", action="store_true", help="leave leidenalg out of section 1 (slow)")
    parser.add_argument("--objectives", nargs="+", default=["cpm", "modularity"], choices=["cpm", "modularity"],
                        help="objectives of section 4")
    parser.add_argument("--until-stable-repeats", type=int, default=None,
                        help="repeats of the until-stable runs in section 4 (default: --repeats)")
    parser.add_argument("--until-stable", action="store_true",
                        help="also time n_iterations=-1 in the CPM section (minutes at full size)")
    args = parser.parse_args(argv)
    if args.build_account_graph:
        if not args.account_graph:
            parser.error("--build-account-graph needs --account-graph PATH")
        build_account_graph(args.build_account_graph, args.account_graph)
        return
    if args.account_graph_from_out:
        if not args.account_graph:
            parser.error("--account-graph-from-out needs --account-graph PATH")
        account_graph_from_out(args.account_graph_from_out, args.account_graph)
        return
    import igraph
    import numba

    import keyfarm  # noqa: F401  (first, so its OMP_WAIT_POLICY default is set before Numba starts threads)

    print(f"python {sys.version.split()[0]}, igraph {igraph.__version__}, keyfarm on {numba.get_num_threads()} "
          f"Numba threads; median of {args.repeats} after warm-up")
    if args.only in (None, "modularity"):
        bench_modularity(args.nodes, args.seed, args.repeats, args.mu, with_leidenalg=not args.no_leidenalg)
    if args.only in (None, "cpm"):
        bench_cpm(args.groups, args.seed, args.repeats, until_stable=args.until_stable)
    if args.only in (None, "world"):
        bench_key_graph(args.world_keys, args.seed, args.repeats)
    if args.account_graph and args.only in (None, "account"):
        bench_account_graph(args.account_graph, args.seed, args.repeats,
                            args.repeats if args.until_stable_repeats is None else args.until_stable_repeats,
                            args.objectives)


if __name__ == "__main__":
    main()
