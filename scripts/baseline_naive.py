"""Naive baseline linker: union keys that share a payment card or an exact IP; flag >= 3 accounts.

What a first attempt at farm detection looks like, kept to show what keyfarm's weighting,
hub handling and scoring buy. Writes members.parquet and clusters.parquet so `keyfarm evaluate`
scores it exactly like a keyfarm run:

    .venv/bin/python scripts/baseline_naive.py WORLD_DIR --out OUT_DIR
    .venv/bin/keyfarm evaluate OUT_DIR --truth WORLD_DIR/truth.parquet
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from keyfarm.io import load_tables


def naive_membership(tables) -> np.ndarray:
    """Connected components of the key–(card | exact IP | account) bipartite graph."""
    keys = tables.keys
    n = len(keys)
    acc_of_key = keys["account"].to_numpy()
    acc_index = pd.Index(keys.groupby("account")["account_id"].first().to_numpy())
    pay = tables.payments
    pay_acc = acc_index.get_indexer(pay["account_id"])
    first_key = pd.Series(np.arange(n)).groupby(acc_of_key).first().to_numpy()
    ok = pay_acc >= 0
    pay_key = first_key[pay_acc[ok]]
    pay_tok = pd.factorize(pay["payment_fingerprint"][ok])[0]
    req = tables.requests[["key", "ip"]].drop_duplicates()
    ip_tok = pd.factorize(req["ip"])[0]
    n_acc = int(acc_of_key.max()) + 1
    # token ids: accounts, then cards, then IPs
    rows = np.concatenate([np.arange(n), pay_key, req["key"].to_numpy()])
    cols = np.concatenate([acc_of_key, n_acc + pay_tok,
                           n_acc + (pay_tok.max() + 1 if len(pay_tok) else 0) + ip_tok])
    total = int(cols.max()) + 1
    graph = coo_matrix((np.ones(len(rows)), (rows, n + cols)), shape=(n + total, n + total))
    _, labels = connected_components(graph, directed=False)
    return labels[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input_dir")
    parser.add_argument("--out", required=True)
    parser.add_argument("--min-accounts", type=int, default=3)
    args = parser.parse_args()
    tables = load_tables(args.input_dir)
    labels = naive_membership(tables)
    members = pd.DataFrame({"key_id": tables.keys["key_id"], "account_id": tables.keys["account_id"],
                            "cluster_id": pd.factorize(labels)[0].astype(np.int64)})
    n_acc = members.groupby("cluster_id")["account_id"].nunique()
    clusters = pd.DataFrame({"cluster_id": n_acc.index.to_numpy(), "n_accounts": n_acc.to_numpy()})
    clusters = clusters[clusters["n_accounts"] >= 2]
    clusters["flagged"] = clusters["n_accounts"] >= args.min_accounts
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    members.to_parquet(out / "members.parquet", index=False)
    clusters.to_parquet(out / "clusters.parquet", index=False)
    print(f"{len(clusters):,} clusters, {int(clusters['flagged'].sum()):,} flagged")


if __name__ == "__main__":
    main()
