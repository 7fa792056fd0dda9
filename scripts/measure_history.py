"""Daily runs on two consecutive periods of a generated world (issue 16): stable ids, returning
farms, changes.parquet against the truth, and the time of the second run with --previous.

    python scripts/measure_history.py --keys 50000 --seed 5 --work /tmp/history50k

Generates period 1 (`keyfarm generate`) and period 2 (`--continue`), links period 1, then period 2
three ways: cold (no --previous), with --previous, and with --previous --banned (an audit log
holding the bans of the farms the generator banned); and period 1 again with --previous (nothing
changed: every cluster should be `unchanged`). Prints one JSON document of the figures.
Never run by tests (minutes at 50k).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def run(*args) -> float:
    """Run `python -m keyfarm ARGS` and return its wall time in seconds."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "keyfarm", *map(str, args)], check=True, stdout=sys.stderr)
    return time.perf_counter() - t


def audit_of_bans(banned: pd.DataFrame, members1: pd.DataFrame, path: Path) -> None:
    """An enforcement audit log in which the generator's banned accounts were banned (done)."""
    from keyfarm.enforce.audit import Audit

    path.unlink(missing_ok=True)
    cid = members1.drop_duplicates("account_id").set_index("account_id")["cluster_id"]
    rows = [{"cluster_id": int(cid.get(a, -1)), "account_id": a, "action": "suspend_account",
             "idempotency_key": f"ban-{a}", "status": "done"} for a in banned["account_id"]]
    with Audit(path) as audit:
        audit.begin_run("measure-bans", kind="apply", operator="measure", reason="generator bans",
                        n_actions=len(rows))
        audit.record("measure-bans", rows, operator="measure", reason="generator bans")


def account_clusters(out: Path) -> pd.DataFrame:
    """account_id → cluster_id of a run, with the cluster's size and verdict (null: alone)."""
    m = pd.read_parquet(out / "members.parquet", columns=["account_id", "cluster_id"]).drop_duplicates("account_id")
    c = pd.read_parquet(out / "clusters.parquet")
    keep = [x for x in ("cluster_id", "n_accounts", "verdict", "returning", "status") if x in c]
    return m.merge(c[keep], on="cluster_id", how="left")


def stability(acc1: pd.DataFrame, acc2: pd.DataFrame, truth1: pd.DataFrame, truth2: pd.DataFrame,
              keys2: pd.DataFrame) -> dict:
    """Clusters of period 1 whose accounts are all present in period 2 and whose true group got no
    new accounts ('unchanged in truth'): how many keep their id, and with the same accounts."""
    c1 = acc1.dropna(subset=["n_accounts"])
    present = set(keys2["account_id"])
    grp = truth2.merge(keys2[["key_id", "account_id"]], on="key_id")
    new_groups = set(grp.loc[grp["period"] > 1, "group_id"].dropna())
    grp1 = truth1.merge(pd.read_parquet(ARGS.work / "w1" / "keys.parquet", columns=["key_id", "account_id"]),
                        on="key_id")[["account_id", "group_id"]].drop_duplicates("account_id")
    c1 = c1.merge(grp1, on="account_id", how="left")
    sets1 = c1.groupby("cluster_id")["account_id"].apply(frozenset)
    touched = c1.groupby("cluster_id")["group_id"].apply(lambda g: bool(set(g.dropna()) & new_groups))
    all_present = sets1.apply(lambda s: s <= present)
    eligible = sets1[all_present & ~touched]
    c2 = acc2.dropna(subset=["n_accounts"])
    sets2 = c2.groupby("cluster_id")["account_id"].apply(frozenset)
    same_set = {s for s in sets2}
    exact = [cid for cid, s in eligible.items() if s in same_set]
    kept_exact = [cid for cid in exact if cid in sets2.index and sets2[cid] == eligible[cid]]
    kept_id = [cid for cid in eligible.index if cid in sets2.index]
    return {"clusters_period1": int(len(sets1)), "unchanged_in_truth": int(len(eligible)),
            "found_again_with_same_accounts": int(len(exact)),
            "of_those_same_id": int(len(kept_exact)),
            "share_same_accounts_keep_id": round(len(kept_exact) / max(len(exact), 1), 4),
            "share_unchanged_in_truth_same_accounts_and_id": round(len(kept_exact) / max(len(eligible), 1), 4),
            "share_unchanged_in_truth_id_still_used": round(len(kept_id) / max(len(eligible), 1), 4)}


def returning(acc1, acc2, truth2, keys2, params2, truth1, keys1) -> list[dict]:
    """Per farm the generator brought back: its period-1 cluster, and where its new accounts landed."""
    out = []
    t1 = truth1.merge(keys1[["key_id", "account_id"]], on="key_id").drop_duplicates("account_id")
    t2 = truth2.merge(keys2[["key_id", "account_id"]], on="key_id").drop_duplicates("account_id")
    for farm in params2["continue"]["returning_farms"]:
        old = acc1[acc1["account_id"].isin(t1.loc[t1["farm_id"] == farm, "account_id"])]
        in_cluster = old.dropna(subset=["n_accounts"])
        old_id = int(in_cluster["cluster_id"].mode().min()) if len(in_cluster) else None
        old_verdict = None if old_id is None else in_cluster.loc[in_cluster["cluster_id"] == old_id, "verdict"].iloc[0]
        new = acc2[acc2["account_id"].isin(t2.loc[(t2["farm_id"] == farm) & t2["returning"], "account_id"])]
        old_ids = set(in_cluster["cluster_id"].astype(np.int64))
        out.append({"farm": farm, "pattern": t1.loc[t1["farm_id"] == farm, "pattern"].iloc[0],
                    "kept": ",".join(params2["continue"]["kept_evidence"][farm]),
                    "old_cluster": old_id, "old_verdict": old_verdict, "n_new_accounts": int(len(new)),
                    "n_old_clusters": len(old_ids),
                    "under_main_old_id": round(float((new["cluster_id"] == old_id).mean()), 3) if len(new) else 0.0,
                    "under_an_old_id": round(float(new["cluster_id"].isin(old_ids).mean()), 3) if len(new) else 0.0,
                    "returning_true": round(float(new["returning"].astype("boolean").fillna(False).astype(bool).mean()), 3),
                    "new_verdict": new["verdict"].mode().iloc[0] if new["verdict"].notna().any() else None})
    return out


def changes_vs_truth(out2: Path, acc1, acc2, truth1, keys1, truth2, keys2, params2) -> dict:
    """Each changes.parquet row checked against what the generator did."""
    ch = pd.read_parquet(out2 / "changes.parquet")
    t1 = truth1.merge(keys1[["key_id", "account_id"]], on="key_id").drop_duplicates("account_id")
    t2 = truth2.merge(keys2[["key_id", "account_id"]], on="key_id").drop_duplicates("account_id")
    banned = set(t1.loc[t1["farm_id"].isin(params2["continue"]["banned_farms"]), "account_id"])
    new_accounts = set(t2.loc[t2["period"] > 1, "account_id"])
    res = {}
    for status, rows in ch.groupby("status"):
        explained = 0
        for cid in rows["cluster_id"]:
            before = set(acc1.loc[acc1["cluster_id"] == cid, "account_id"])
            after = set(acc2.loc[acc2["cluster_id"] == cid, "account_id"])
            if status == "disappeared":
                ok = bool(before) and len(before & banned) * 2 >= len(before)
            elif status == "new":
                ok = bool(after & new_accounts)
            elif status == "grown":
                ok = bool(after & new_accounts)
            elif status == "shrunk":
                ok = bool(before & banned)
            else:   # merged / split on accounts the generator left alone: clustering churn
                ok = bool((before | after) & (banned | new_accounts))
            explained += ok
        res[status] = {"rows": int(len(rows)), "explained_by_truth": int(explained)}
    # banned farms that did not come back: their period-1 cluster should be `disappeared`
    gone_farms = [f for f in params2["continue"]["banned_farms"] if f not in params2["continue"]["returning_farms"]]
    expected, found = 0, 0
    for farm in gone_farms:
        old = acc1[acc1["account_id"].isin(t1.loc[t1["farm_id"] == farm, "account_id"])].dropna(subset=["n_accounts"])
        if not len(old):
            continue
        cid = int(old["cluster_id"].mode().min())
        if len(old[old["cluster_id"] == cid]) * 2 >= (acc1["cluster_id"] == cid).sum():
            expected += 1
            found += bool(((ch["cluster_id"] == cid) & (ch["status"] == "disappeared")).any())
    res["banned_not_returning_farm_clusters"] = {"expected_disappeared": expected, "listed_disappeared": found}
    return res


def main() -> None:
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=50000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path("/tmp/history50k"))
    ARGS = args = ap.parse_args()
    w = args.work
    w.mkdir(parents=True, exist_ok=True)
    if not (w / "w1" / "truth.parquet").exists():
        run("generate", w / "w1", "--keys", args.keys, "--seed", args.seed, "-q")
    if not (w / "w2" / "truth.parquet").exists():
        run("generate", w / "w2", "--continue", w / "w1", "-q")
    times = {"period1": run("link", w / "w1", "--out", w / "o1", "--no-report", "-q"),
             "period2_cold": run("link", w / "w2", "--out", w / "o2cold", "--no-report", "-q"),
             "period2_previous": run("link", w / "w2", "--out", w / "o2", "--previous", w / "o1", "--no-report", "-q")}
    keys1, keys2 = (pd.read_parquet(w / d / "keys.parquet") for d in ("w1", "w2"))
    truth1, truth2 = (pd.read_parquet(w / d / "truth.parquet") for d in ("w1", "w2"))
    params2 = json.loads((w / "w2" / "params.json").read_text())
    audit_of_bans(pd.read_parquet(w / "w2" / "banned.parquet"), pd.read_parquet(w / "o1" / "members.parquet"),
                  w / "audit.db")
    times["period2_previous_banned"] = run("link", w / "w2", "--out", w / "o2b", "--previous", w / "o1",
                                           "--banned", w / "audit.db", "--no-report", "-q")
    times["period1_again_previous"] = run("link", w / "w1", "--out", w / "o1again", "--previous", w / "o1",
                                          "--no-report", "-q")
    acc1 = account_clusters(w / "o1")
    report = {"world": {"keys": args.keys, "seed": args.seed, "period2_keys": len(keys2),
                        "banned_farms": len(params2["continue"]["banned_farms"]),
                        "returning_farms": len(params2["continue"]["returning_farms"])},
              "seconds": {k: round(v, 1) for k, v in times.items()}}
    for name in ("o2", "o2b"):
        acc2 = account_clusters(w / name)
        report[name] = {"stability": stability(acc1, acc2, truth1, truth2, keys2),
                        "returning": returning(acc1, acc2, truth2, keys2, params2, truth1, keys1),
                        "changes": changes_vs_truth(w / name, acc1, acc2, truth1, keys1, truth2, keys2, params2)}
    again = pd.read_parquet(w / "o1again" / "clusters.parquet")
    report["period1_again"] = {"clusters": int(len(again)),
                               "unchanged_same_id": int((again["status"] == "unchanged").sum()),
                               "changes_rows": int(len(pd.read_parquet(w / "o1again" / "changes.parquet")))}
    from sklearn.metrics import adjusted_rand_score

    cold = account_clusters(w / "o2cold").set_index("account_id")["cluster_id"]
    warm = account_clusters(w / "o2").set_index("account_id")["cluster_id"].reindex(cold.index)
    report["partition_agreement_o2_vs_o2cold_ari"] = round(float(adjusted_rand_score(cold, warm)), 4)
    print(json.dumps(report, indent=1, default=str))


ARGS = None

if __name__ == "__main__":
    main()
