"""Why period-1 clusters of unchanged true groups do not come back with the same accounts (issue 16):
per lost cluster, what tied it in period 1, whether that evidence is in period 2's input, how much
it weighs there, whether it is a true group or a chance pair, and where its accounts went.

    python scripts/history_lost.py --work /tmp/history50k [--out o2] [--csv lost.csv]

Reads a folder written by scripts/measure_history.py (w1, w2, o1 and the period-2 run OUT). Runs the
signals of both periods (about a minute at 50k). Never run by tests.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure_history import account_clusters, eligible_clusters  # noqa: E402


def account_evidence(world: Path) -> pd.DataFrame:
    """(account_id, token, signal, weight, n_accounts, projected) of every projected or hub token of
    a period: its evidence as the graph stage weighs it."""
    from keyfarm.config import Config
    from keyfarm.graph import build_graph
    from keyfarm.io import load_tables
    from keyfarm.signals import registry

    config = Config.default()
    tables = load_tables(world)
    inc = {name: fn(tables, config) for name, fn in registry().items()}
    _, _, tokens = build_graph(tables, config, inc)
    acc_id = tables.keys["account_id"].to_numpy(dtype=object)
    rows = pd.concat([f[["key", "token"]] for n, f in inc.items() if n != "account" and len(f)], ignore_index=True)
    rows = pd.DataFrame({"account_id": acc_id[rows["key"].to_numpy(np.int64)],
                         "token": rows["token"].to_numpy(dtype=object)}).drop_duplicates()
    tok = tokens[tokens["kind"] != "acct"].set_index("token")[["signal", "kind", "weight", "n_accounts", "projected", "is_hub"]]
    return rows.merge(tok, left_on="token", right_index=True, how="inner")


def shared_inside(evidence: pd.DataFrame, groups: pd.DataFrame) -> pd.DataFrame:
    """Tokens held by two or more accounts of one group (groups: account_id, cluster_id):
    cluster_id, token, kind, weight, n_accounts (population degree), holders (inside the group)."""
    ev = evidence.merge(groups, on="account_id")
    per = ev.groupby(["cluster_id", "token"]).agg(holders=("account_id", "nunique"), kind=("kind", "first"),
                                                  weight=("weight", "first"), n_accounts=("n_accounts", "first"),
                                                  projected=("projected", "first")).reset_index()
    return per[per["holders"] >= 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", default="o2", help="the period-2 run folder under --work")
    ap.add_argument("--csv", type=Path, help="write one row per lost cluster here")
    args = ap.parse_args()
    w = args.work
    keys1, keys2 = (pd.read_parquet(w / d / "keys.parquet", columns=["key_id", "account_id"]) for d in ("w1", "w2"))
    truth1, truth2 = (pd.read_parquet(w / d / "truth.parquet") for d in ("w1", "w2"))
    acc1, acc2 = account_clusters(w / "o1"), account_clusters(w / args.out)
    elig = eligible_clusters(acc1, truth1, keys1, truth2, keys2)
    sets2 = acc2.dropna(subset=["n_accounts"]).groupby("cluster_id")["account_id"].apply(frozenset)
    found = set(sets2)
    lost = elig[~elig["accounts"].isin(found)]
    coverage = lost.set_index("cluster_id")["coverage"]
    grp1 = truth1.merge(keys1, on="key_id").drop_duplicates("account_id").set_index("account_id")
    where2 = acc2.set_index("account_id")
    members = lost.explode("accounts").rename(columns={"accounts": "account_id"})[["cluster_id", "account_id"]]
    members = members.reset_index(drop=True)
    print("signals of both periods …", file=sys.stderr)
    ev1, ev2 = account_evidence(w / "w1"), account_evidence(w / "w2")
    s1 = shared_inside(ev1[ev1["projected"]], members)
    s2 = shared_inside(ev2, members)
    rows = []
    for cid, m in members.groupby("cluster_id"):
        accs = m["account_id"].tolist()
        t1 = s1[s1["cluster_id"] == cid]
        t2 = s2[s2["cluster_id"] == cid].set_index("token")
        same = t1[t1["token"].isin(t2.index)]
        gone = t1[~t1["token"].isin(t2.index)]
        now = t2.reindex(same["token"])
        pat = grp1.reindex(accs)
        groups = set(pat["group_id"].dropna())
        farms = set(pat["farm_id"].dropna())
        kind = ("farm" if len(farms) == 1 and pat["farm_id"].notna().all() else
                "benign group" if len(groups) == 1 and pat["group_id"].notna().all() else
                "mixed groups" if pat["group_id"].notna().any() else "no group (chance)")
        c2 = where2.reindex(accs)
        in2 = c2["cluster_id"][c2["n_accounts"].notna()]
        if not len(in2):
            went = "all alone"
        elif in2.nunique() == 1 and len(in2) == len(accs):
            went = "together in a larger cluster"
        elif in2.nunique() == 1:
            went = "some alone, rest in one cluster"
        else:
            went = "spread over clusters"
        # accounts that share no token with another of the cluster's accounts in period 2
        holders2 = ev2[ev2["account_id"].isin(accs) & ev2["projected"]]
        holders2 = holders2[holders2["token"].isin(t2.index[t2["projected"]])]
        bare = len(set(accs) - set(holders2["account_id"]))
        rows.append({"cluster_id": int(cid), "n_accounts": len(accs), "truth": kind,
                     "coverage": round(float(coverage.get(cid, 0.0)), 3), "accounts_without_tie_p2": bare,
                     "pattern": ",".join(sorted(set(pat["pattern"].dropna()))),
                     "tie_kinds_p1": ",".join(sorted(set(t1["kind"]))),
                     "tie_weight_p1": round(float(t1["weight"].sum()), 3),
                     "tie_tokens_p1": int(len(t1)), "tie_tokens_still_shared_p2": int(len(same)),
                     "kinds_gone_p2": ",".join(sorted(set(gone["kind"]))),
                     "weight_still_shared_p1": round(float(same["weight"].sum()), 3),
                     "weight_still_shared_p2": round(float(now["weight"].where(now["projected"], 0).sum()), 3),
                     "still_shared_now_hub": int(now["is_hub"].fillna(False).sum()) if "is_hub" in now else 0,
                     "new_shared_tokens_p2": int(len(t2) - len(same)),
                     "went": went,
                     "p2_cluster_sizes": ",".join(str(int(x)) for x in sorted(c2["n_accounts"].dropna().unique()))})
    table = pd.DataFrame(rows)
    evidence = np.select([table["tie_tokens_still_shared_p2"] == 0,
                          table["weight_still_shared_p2"] < table["weight_still_shared_p1"] - 1e-9],
                         ["period-1 tie absent from period 2", "tie present, lighter in period 2"],
                         "tie present, same weight")
    table["evidence"] = evidence
    # the same value's weight in both periods (it depends on how many accounts hold it, against a
    # fixed reference population): per kind, over values projected in both
    w1 = ev1.drop_duplicates("token").set_index("token")
    w2 = ev2.drop_duplicates("token").set_index("token")
    common = w1.index.intersection(w2.index)
    both = pd.DataFrame({"kind": w1.loc[common, "kind"], "w1": w1.loc[common, "weight"], "w2": w2.loc[common, "weight"],
                         "proj": w1.loc[common, "projected"].astype(bool) & w2.loc[common, "projected"].astype(bool)})
    both = both[both["proj"]]
    ratio = both["w2"] / both["w1"]
    weights = {k: {"values": int(len(g)), "median_ratio_p2_p1": round(float(ratio[g.index].median()), 4),
                   "share_moved_over_5pct": round(float((abs(ratio[g.index] - 1) > 0.05).mean()), 4)}
               for k, g in both.groupby("kind") if k in ("pay", "dev", "ua", "ip4", "ip4/24", "ip6/64", "pdup", "lsh")}
    if args.csv:
        table.to_csv(args.csv, index=False)
    summary = {"eligible": int(len(elig)), "lost": int(len(lost)), "weights_of_the_same_value": weights,
               "by_size": table["n_accounts"].clip(upper=5).value_counts().sort_index().to_dict(),
               "by_truth": table["truth"].value_counts().to_dict(),
               "whole_groups_lost": table[(table["coverage"] >= 0.5) & table["truth"].isin(["farm", "benign group"])]
               .drop(columns=["kinds_gone_p2"]).to_dict("records"),
               "by_evidence": table["evidence"].value_counts().to_dict(),
               "by_went": table["went"].value_counts().to_dict(),
               "evidence_x_truth": pd.crosstab(table["evidence"], table["truth"]).to_dict(),
               "went_x_evidence": pd.crosstab(table["went"], table["evidence"]).to_dict(),
               "tie_kinds_p1": table["tie_kinds_p1"].value_counts().head(15).to_dict(),
               "kinds_gone_p2": table["kinds_gone_p2"].value_counts().head(15).to_dict()}
    print(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
