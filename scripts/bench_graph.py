"""Benchmark: build the key graph of a generated world; stage times, peak memory, and the Numba
projection against scipy's sparse product B·Bᵀ on the same weighted incidence, in the same run.

    .venv/bin/python scripts/bench_graph.py --keys 1000000 --repeat 3
    .venv/bin/python scripts/bench_graph.py --world /path/to/world --repeat 3
scipy computes the full symmetric key×key product for one weight column at a time; keyfarm's
projection computes the upper triangle for all signals at once, with min(tie_a, tie_b) weighting,
quantisation and strongest-token evidence. The scipy side is timed per signal and summed.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from scipy import sparse


def main() -> None:
    from keyfarm.config import Config
    from keyfarm.graph import SIGNALS, project
    from keyfarm.graph.build import build_graph, token_degrees
    from keyfarm.graph.weighting import weigh_tokens
    from keyfarm.io import load_tables
    from keyfarm.progress import peak_rss_gib
    from keyfarm.signals import registry
    from keyfarm.synth import generate_world, write_world

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--world")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    world = args.world
    if world is None:
        world = tempfile.mkdtemp(prefix="bench-graph-")
        write_world(generate_world(args.keys, args.seed), world)
    config = Config.default()
    stages = {}
    t = time.perf_counter(); tables = load_tables(world); stages["load"] = time.perf_counter() - t
    t = time.perf_counter()
    incidences = {name: fn(tables, config) for name, fn in registry().items()}
    stages["signals"] = time.perf_counter() - t
    t = time.perf_counter(); graph, hubs, _ = build_graph(tables, config, incidences)
    stages["graph (first, with JIT)"] = time.perf_counter() - t

    # the same projected incidence for both sides
    account = tables.keys["account"].to_numpy()
    inc = pd.concat([f[["key", "token", "weight"]] for f in incidences.values()], ignore_index=True)
    inc = inc.groupby(["token", "key"], sort=True)["weight"].max().reset_index()
    tokens = weigh_tokens(token_degrees(inc, account), int(account.max()) + 1, config)
    projected = tokens[tokens["projected"]].reset_index(drop=True)
    tid = pd.Index(projected["token"])
    sel = inc[inc["token"].isin(tid)]
    t_of = tid.get_indexer(sel["token"])
    order = np.lexsort((sel["key"].to_numpy(), t_of))
    t_sorted, keys = t_of[order], sel["key"].to_numpy(np.int64)[order]
    ties = sel["weight"].to_numpy()[order]
    indptr = np.zeros(len(projected) + 1, np.int64)
    np.cumsum(np.bincount(t_sorted, minlength=len(projected)), out=indptr[1:])
    signal = pd.Index(SIGNALS).get_indexer(projected["signal"])
    tw = projected["weight"].to_numpy()
    n = len(tables.keys)

    kf_times, serial_times, sp_times = [], [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        src, dst, w, _ = project(indptr, keys, ties, tw, signal, n, len(SIGNALS))   # as the job picks
        kf_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        project(indptr, keys, ties, tw, signal, n, len(SIGNALS), parallel=False)
        serial_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        nnz = 0
        for s in range(len(SIGNALS)):
            cols = np.flatnonzero(signal[t_sorted] == s)
            # B[k, t] = sqrt(token weight) × tie, so (B·Bᵀ)[a, b] = Σ_t w_t tie_a tie_b
            b = sparse.csr_matrix((np.sqrt(tw[t_sorted[cols]]) * ties[cols], (keys[cols], t_sorted[cols])),
                                  shape=(n, len(projected)))
            product = sparse.triu(b @ b.T, k=1)
            nnz += product.nnz
        sp_times.append(time.perf_counter() - t)
    print(f"world {world}: {n:,} keys, {len(tables.requests):,} requests; "
          f"{len(projected):,} projected tokens, {len(hubs):,} hubs, {len(src):,} key pairs")
    for name, secs in stages.items():
        print(f"  {name:<26}{secs:8.1f} s")
    kf, sp = statistics.median(kf_times), statistics.median(sp_times)
    print(f"projection  keyfarm (Numba, all signals, evidence) median {kf:.2f} s over {args.repeat} "
          f"(serial kernel {statistics.median(serial_times):.2f} s)")
    print(f"            scipy B·Bᵀ (one product per signal)    median {sp:.2f} s")
    print(f"            ratio keyfarm/scipy {kf / sp:.2f}  (scipy pairs summed over signals: {nnz:,})")
    print(f"peak RSS {peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    sys.exit(main())
