"""Daily runs on two consecutive periods of a generated world (issue 16): stable ids, returning
farms, changes.parquet against the truth, and the time of the second run with --previous.

    python scripts/measure_history.py --keys 50000 --seed 5 --work /tmp/history50k

Generates period 1 (`keyfarm generate`) and period 2 (`--continue`), links period 1, then period 2
three ways: cold (no --previous), with --previous, and with --previous --banned (an audit log
holding the bans of the farms the generator banned); and period 1 again with --previous (nothing
changed: every cluster should be `unchanged`). Prints one JSON document of the figures: per
period-2 run the stability bar in its two readings (`stability`), where each returning farm's new
accounts landed (`returning`), and changes.parquet against the change the truth expects for each
period-1 cluster (`changes`). `--reuse` keeps run folders that exist, so figures of a new commit
need only the runs it changes (delete those folders first). scripts/history_lost.py explains the
clusters the bar misses. Never run by tests (minutes at 50k).

    python scripts/measure_history.py --dirs W1 O1 W2 O2 [O2COLD]

measures runs made elsewhere (a 1M world linked through /work/big.sh): the same figures of O2 (W2
linked with --previous O1) and, given O2COLD (W2 linked without), the partitions' agreement and
both runs' stage times (run.json).
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


def run(*args) -> float | None:
    """Run `python -m keyfarm ARGS` and return its wall time in seconds (None: --reuse kept the
    existing --out folder)."""
    if ARGS is not None and ARGS.reuse and "--out" in args and (Path(args[args.index("--out") + 1]) / "run.json").exists():
        return None
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


def group_of(truth: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    """account_id → farm_id, group_id, pattern of a period's truth (one row per account)."""
    return truth.merge(keys[["key_id", "account_id"]], on="key_id") \
        .drop_duplicates("account_id")[["account_id", "farm_id", "group_id", "pattern"]]


def truth_kind(groups: pd.DataFrame) -> pd.Series:
    """Per cluster (groups: cluster_id, farm_id, group_id per account) what the truth says it is:
    `farm` (one farm), `benign group` (one benign group), `mixed` (accounts of several groups, or
    of a group and none) or `chance` (no account in any group: a coincidence of strangers)."""
    g = groups.groupby("cluster_id")
    n_group = g["group_id"].nunique()
    all_grouped = g["group_id"].apply(lambda v: bool(v.notna().all()))
    any_grouped = g["group_id"].apply(lambda v: bool(v.notna().any()))
    is_farm = g["farm_id"].apply(lambda v: bool(v.notna().all()))
    kind = np.where(~any_grouped, "chance", np.where((n_group == 1) & all_grouped,
                                                      np.where(is_farm, "farm", "benign group"), "mixed"))
    return pd.Series(kind, index=n_group.index)


def eligible_clusters(acc1, truth1, keys1, truth2, keys2, active2=None) -> pd.DataFrame:
    """Period-1 clusters (2+ accounts) whose accounts are unchanged in the truth's reading: every
    account is in period 2 (and active there, when `active2` names the accounts with requests) and
    every true group (truth group_id) of its accounts has the same accounts in both periods (none
    banned, none new). One row per cluster: cluster_id, accounts (frozenset), truth (truth_kind)."""
    c1 = acc1.dropna(subset=["n_accounts"])[["account_id", "cluster_id"]]
    g1, g2 = group_of(truth1, keys1), group_of(truth2, keys2)
    present = set(keys2["account_id"]) if active2 is None else set(active2) & set(keys2["account_id"])
    sets1 = {gid: frozenset(a) for gid, a in g1.dropna(subset=["group_id"]).groupby("group_id")["account_id"]}
    sets2 = {gid: frozenset(a) for gid, a in g2.dropna(subset=["group_id"]).groupby("group_id")["account_id"]}
    changed_groups = {gid for gid, s in sets1.items() if sets2.get(gid) != s}
    c1 = c1.merge(g1, on="account_id", how="left")
    per = c1.groupby("cluster_id").agg(accounts=("account_id", frozenset),
                                       touched=("group_id", lambda g: bool(set(g.dropna()) & changed_groups)))
    ok = per["accounts"].apply(lambda s: s <= present) & ~per["touched"]
    out = per[ok].reset_index()[["cluster_id", "accounts"]]
    out["truth"] = truth_kind(c1[c1["cluster_id"].isin(out["cluster_id"])]).reindex(out["cluster_id"]).to_numpy()
    out["coverage"] = group_coverage(c1, g1).reindex(out["cluster_id"]).fillna(0.0).to_numpy()
    return out


def group_coverage(members: pd.DataFrame, groups: pd.DataFrame) -> pd.Series:
    """Per cluster (members: cluster_id, group_id per account) the share of its commonest true
    group it holds: 1 for a whole group, ~0.03 for one of the thirty pieces community detection
    cuts a 300-account cloud region into."""
    size = groups.groupby("group_id").size()
    top = members.dropna(subset=["group_id"]).groupby(["cluster_id", "group_id"]).size().rename("n").reset_index() \
        .sort_values(["cluster_id", "n"], ascending=[True, False], kind="stable").drop_duplicates("cluster_id")
    return pd.Series((top["n"] / size.reindex(top["group_id"]).to_numpy()).to_numpy(), index=top["cluster_id"].to_numpy())


NEAR = 0.9   # the literal reading's "≥ 90%": shares of both clusters' accounts


def literal_stability(acc1: pd.DataFrame, acc2: pd.DataFrame, near: float = NEAR) -> dict:
    """The bar read literally, on the outputs alone: period-1 clusters (2+ accounts) whose account
    set reappears in period 2, exactly or at `near` (the period-2 cluster holding most of its
    accounts holds at least `near` of them, and at least `near` of that cluster's accounts are
    its), and the share of those that keep their id."""
    c1 = acc1.dropna(subset=["n_accounts"])[["account_id", "cluster_id"]]
    c2 = acc2.dropna(subset=["n_accounts"])[["account_id", "cluster_id"]]
    n1, n2 = c1.groupby("cluster_id").size(), c2.groupby("cluster_id").size()
    pairs = c1.merge(c2, on="account_id", suffixes=("_1", "_2")).groupby(["cluster_id_1", "cluster_id_2"]) \
        .size().rename("o").reset_index()
    best = pairs.sort_values(["cluster_id_1", "o", "cluster_id_2"], ascending=[True, False, True], kind="stable") \
        .drop_duplicates("cluster_id_1")
    share1 = best["o"].to_numpy() / n1.reindex(best["cluster_id_1"]).to_numpy()
    share2 = best["o"].to_numpy() / n2.reindex(best["cluster_id_2"]).to_numpy()
    same = (best["cluster_id_1"] == best["cluster_id_2"]).to_numpy()

    def part(mask):
        return {"clusters": int(mask.sum()), "same_id": int((mask & same).sum()),
                "share": round(float((mask & same).sum() / mask.sum()), 4) if mask.any() else None}
    return {"clusters_period1": int(len(n1)), "exact": part((share1 == 1) & (share2 == 1)),
            f"at_least_{round(near * 100)}pct": part((share1 >= near) & (share2 >= near))}


WHOLE_GROUP = 0.5   # a cluster holding at least this share of its true group is that group, not a piece of it


def stability(acc1: pd.DataFrame, acc2: pd.DataFrame, truth1: pd.DataFrame, truth2: pd.DataFrame,
              keys1: pd.DataFrame, keys2: pd.DataFrame, active2=None) -> dict:
    """Issue 16's bar, "≥ 99% of clusters whose accounts are unchanged keep their id", in its two
    readings:

    * `true_group_unchanged`: period-1 clusters whose accounts are all active in period 2 and whose
      true groups kept the same accounts (eligible_clusters): how many come back as a cluster of
      exactly the same accounts under the same id, overall and per truth kind (a `chance` pair is
      two strangers a coincidence linked: losing it when the coincidence does not recur is right),
      and apart for clusters that are a whole true group (hold at least WHOLE_GROUP of it) and
      clusters that are pieces of a larger one (a crowd cut by community detection);
    * `same_cluster_accounts`: period-1 clusters whose exact accounts form a cluster of period 2:
      how many of those keep their id (the id rule alone)."""
    elig = eligible_clusters(acc1, truth1, keys1, truth2, keys2, active2)
    c2 = acc2.dropna(subset=["n_accounts"])
    sets2 = c2.groupby("cluster_id")["account_id"].apply(frozenset)
    set_to_id = {s: cid for cid, s in sets2.items()}
    sets1 = acc1.dropna(subset=["n_accounts"]).groupby("cluster_id")["account_id"].apply(frozenset)
    back = {cid: set_to_id[s] for cid, s in sets1.items() if s in set_to_id}
    elig = elig.assign(same_accounts=elig["accounts"].isin(set_to_id),
                       same_id=[back.get(cid) == cid for cid in elig["cluster_id"]],
                       id_used=elig["cluster_id"].isin(sets2.index))
    per_kind = {k: {"clusters": int(len(g)), "same_accounts_and_id": int(g["same_id"].sum()),
                    "share": round(float(g["same_id"].mean()), 4)} for k, g in elig.groupby("truth")}
    true_groups = elig[elig["truth"].isin(["farm", "benign group"])]
    whole = true_groups[true_groups["coverage"] >= WHOLE_GROUP]
    pieces = true_groups[true_groups["coverage"] < WHOLE_GROUP]
    return {"clusters_period1": int(len(sets1)),
            "true_group_unchanged": {
                "clusters": int(len(elig)), "same_accounts_and_id": int(elig["same_id"].sum()),
                "share": round(float(elig["same_id"].mean()), 4),
                "share_id_still_used": round(float(elig["id_used"].mean()), 4),
                "true_groups_only_share": round(float(true_groups["same_id"].mean()), 4) if len(true_groups) else None,
                "by_truth": per_kind,
                "whole_true_groups": {"clusters": int(len(whole)), "same_accounts_and_id": int(whole["same_id"].sum()),
                                      "share": round(float(whole["same_id"].mean()), 4) if len(whole) else None},
                "pieces_of_true_groups": {"clusters": int(len(pieces)), "same_accounts_and_id": int(pieces["same_id"].sum()),
                                          "share": round(float(pieces["same_id"].mean()), 4) if len(pieces) else None}},
            "same_cluster_accounts": {
                "clusters": int(len(back)), "same_id": int(sum(a == b for a, b in back.items())),
                "share": round(sum(a == b for a, b in back.items()) / max(len(back), 1), 4)}}


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


def expected_changes(acc1, truth1, keys1, truth2, keys2, params2, active2=None) -> pd.DataFrame:
    """What the truth says happened to each period-1 cluster (2+ accounts), if period 2 were
    clustered as period 1 plus the generator's events: its accounts minus those banned (or not
    active) plus the new accounts of its farm that came back. One row per cluster: cluster_id,
    expected (unchanged / grown / shrunk / disappeared / returning: every account gone and the farm
    back with new ones), coverage and truth (as eligible_clusters reads them)."""
    c1 = acc1.dropna(subset=["n_accounts"])[["account_id", "cluster_id"]]
    g1, g2 = group_of(truth1, keys1), group_of(truth2, keys2)
    present = set(keys2["account_id"]) if active2 is None else set(active2) & set(keys2["account_id"])
    new_of_farm = g2[g2["account_id"].isin(set(g2["account_id"]) - set(g1["account_id"]))].dropna(subset=["farm_id"]) \
        .groupby("farm_id").size()
    back = set(params2["continue"]["returning_farms"])
    c1 = c1.merge(g1, on="account_id", how="left")
    kind = truth_kind(c1)
    # per cluster: accounts staying, and new accounts of the returning farms among its farms (one
    # pass over the accounts, not one isin per cluster: a 1M run has 2·10⁴ clusters)
    c1["stays"] = c1["account_id"].isin(present)
    gain = new_of_farm[new_of_farm.index.isin(back)]
    farms = c1.dropna(subset=["farm_id"]).drop_duplicates(["cluster_id", "farm_id"])
    gained = pd.Series(gain.reindex(farms["farm_id"]).fillna(0).to_numpy(), index=farms["cluster_id"].to_numpy()) \
        .groupby(level=0).sum()
    per = c1.groupby("cluster_id").agg(n=("account_id", "size"), stay=("stays", "sum"))
    per["gained"] = gained.reindex(per.index).fillna(0).astype(int)
    after = per["stay"] + per["gained"]
    expected = np.select([(per["stay"] == per["n"]) & (per["gained"] == 0), (per["stay"] == 0) & (per["gained"] > 0),
                          after == 0, after > per["n"]], ["unchanged", "returning", "disappeared", "grown"], "shrunk")
    rows = [{"cluster_id": int(cid), "expected": e, "truth": kind[cid]} for cid, e in zip(per.index, expected)]
    out = pd.DataFrame(rows)
    out["coverage"] = group_coverage(c1, g1).reindex(out["cluster_id"]).fillna(0.0).to_numpy()
    return out


def observed_changes(out2: Path, acc1) -> pd.DataFrame:
    """What the period-2 run says happened to each period-1 cluster: the status of the cluster
    that carries its id, `disappeared` when changes.parquet lists it so, `merged away` when it is a
    previous_cluster_id of a merged cluster under another id."""
    c2 = pd.read_parquet(out2 / "clusters.parquet", columns=["cluster_id", "status", "previous_cluster_ids", "returning"])
    ch = pd.read_parquet(out2 / "changes.parquet")
    ids1 = acc1.dropna(subset=["n_accounts"])["cluster_id"].astype(np.int64).unique()
    carried = c2.set_index("cluster_id")
    gone = set(ch.loc[ch["status"] == "disappeared", "cluster_id"])
    merged_into = {int(p) for text in c2.loc[c2["status"] == "merged", "previous_cluster_ids"] for p in str(text).split(",") if p}
    ids1 = np.sort(ids1)
    status = carried["status"].reindex(ids1).to_numpy(dtype=object)
    back = carried["returning"].astype(bool).reindex(ids1, fill_value=False).to_numpy(bool)
    obs = np.where(pd.isna(status), np.where(np.isin(ids1, list(gone)), "disappeared",
                                             np.where(np.isin(ids1, list(merged_into)), "merged away", "absent")),
                   np.where((status == "new") & back, "returning", status))
    return pd.DataFrame({"cluster_id": ids1.astype(np.int64), "observed": obs.astype(object)})


def changes_vs_truth(out2: Path, acc1, acc2, truth1, keys1, truth2, keys2, params2, active2=None) -> dict:
    """changes.parquet against the truth of what changed: per period-1 cluster the status the truth
    expects (expected_changes) against the one the run gives (observed_changes), as a table
    expected → observed → clusters, overall, for clusters that are whole true groups (where the
    clustering of period 1 was right), and the share that agree; and the period-2 clusters with no
    predecessor (`new`) by whether the truth made any of their accounts new."""
    exp = expected_changes(acc1, truth1, keys1, truth2, keys2, params2, active2)
    both = exp.merge(observed_changes(out2, acc1), on="cluster_id")
    both["agree"] = both["expected"] == both["observed"]

    def table(frame):
        t = frame.groupby(["expected", "observed"]).size()
        return {"agree": int(frame["agree"].sum()), "clusters": int(len(frame)),
                "share": round(float(frame["agree"].mean()), 4) if len(frame) else None,
                "table": {e: {o: int(n) for (e2, o), n in t.items() if e2 == e} for e in sorted(set(frame["expected"]))}}

    whole = both[both["truth"].isin(["farm", "benign group"]) & (both["coverage"] >= WHOLE_GROUP)]
    c2 = pd.read_parquet(out2 / "clusters.parquet", columns=["cluster_id", "status", "returning"])
    g1, g2 = group_of(truth1, keys1), group_of(truth2, keys2)
    new_accounts = set(g2["account_id"]) - set(g1["account_id"])
    fresh = c2[(c2["status"] == "new") & ~c2["cluster_id"].isin(both["cluster_id"])]
    holds_new = acc2[acc2["cluster_id"].isin(fresh["cluster_id"])].groupby("cluster_id")["account_id"] \
        .apply(lambda a: bool(set(a) & new_accounts))
    ch = pd.read_parquet(out2 / "changes.parquet")
    return {"period1_clusters": table(both), "period1_whole_true_groups": table(whole),
            "period2_new_clusters": {"clusters": int(len(fresh)), "holding_new_accounts": int(holds_new.sum()),
                                     "only_accounts_of_period1": int((~holds_new).sum())},
            "changes_rows": {str(k): int(v) for k, v in ch["status"].value_counts().sort_index().items()}}


def active_accounts(world: Path, keys: pd.DataFrame) -> set:
    """Accounts with at least one request in the world's requests table."""
    used = pd.read_parquet(world / "requests.parquet", columns=["key_id"])["key_id"].unique()
    return set(keys.loc[keys["key_id"].isin(used), "account_id"])


def figures(w1: Path, o1: Path, w2: Path, o2: Path) -> dict:
    """The figures of one period-2 run O2 (W2 linked with --previous O1, W1 linked into O1): the
    bar in its readings, the returning farms, changes.parquet against the truth."""
    keys1, keys2 = (pd.read_parquet(w / "keys.parquet") for w in (w1, w2))
    truth1, truth2 = (pd.read_parquet(w / "truth.parquet") for w in (w1, w2))
    params2 = json.loads((w2 / "params.json").read_text())
    acc1, acc2 = account_clusters(o1), account_clusters(o2)
    active2 = active_accounts(w2, keys2)
    return {"stability": stability(acc1, acc2, truth1, truth2, keys1, keys2, active2),
            "literal": literal_stability(acc1, acc2),
            "returning": returning(acc1, acc2, truth2, keys2, params2, truth1, keys1),
            "changes": changes_vs_truth(o2, acc1, acc2, truth1, keys1, truth2, keys2, params2, active2)}


def agreement_ari(o2: Path, o2cold: Path) -> float:
    """Adjusted Rand index of the two period-2 partitions (accounts of the cold run)."""
    from sklearn.metrics import adjusted_rand_score

    cold = account_clusters(o2cold).set_index("account_id")["cluster_id"]
    warm = account_clusters(o2).set_index("account_id")["cluster_id"].reindex(cold.index)
    return round(float(adjusted_rand_score(cold, warm)), 4)


def stage_times(out: Path) -> dict:
    """run.json's stage times of a run (seconds) and their sum."""
    run_json = json.loads((out / "run.json").read_text())
    stages = {k: round(float(v), 1) for k, v in run_json.get("timings", run_json.get("stages", {})).items()
              if isinstance(v, (int, float))}
    return {**stages, "sum": round(sum(stages.values()), 1)}


def measure_dirs(paths: list[Path]) -> dict:
    """--dirs W1 O1 W2 O2 [O2COLD]: figures of runs made elsewhere."""
    w1, o1, w2, o2, *cold = paths
    report = {"o2": figures(w1, o1, w2, o2), "seconds": {"period2_previous": stage_times(o2)}}
    if cold:
        report["seconds"]["period2_cold"] = stage_times(cold[0])
        report["partition_agreement_o2_vs_o2cold_ari"] = agreement_ari(o2, cold[0])
    return report


def main() -> None:
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=50000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path("/tmp/history50k"))
    ap.add_argument("--reuse", action="store_true",
                    help="keep run folders that exist (o1, o2, …) instead of linking again (times: null)")
    ap.add_argument("--dirs", type=Path, nargs="+", metavar="DIR",
                    help="W1 O1 W2 O2 [O2COLD]: measure these runs instead of making them")
    ARGS = args = ap.parse_args()
    if args.dirs:
        if len(args.dirs) not in (4, 5):
            ap.error("--dirs takes W1 O1 W2 O2 [O2COLD]")
        print(json.dumps(measure_dirs(args.dirs), indent=1, default=str))
        return
    w = args.work
    w.mkdir(parents=True, exist_ok=True)
    if not (w / "w1" / "truth.parquet").exists():
        run("generate", w / "w1", "--keys", args.keys, "--seed", args.seed, "-q")
    if not (w / "w2" / "truth.parquet").exists():
        run("generate", w / "w2", "--continue", w / "w1", "-q")
    times = {"period1": run("link", w / "w1", "--out", w / "o1", "--no-report", "-q"),
             "period2_cold": run("link", w / "w2", "--out", w / "o2cold", "--no-report", "-q"),
             "period2_previous": run("link", w / "w2", "--out", w / "o2", "--previous", w / "o1", "--no-report", "-q")}
    params2 = json.loads((w / "w2" / "params.json").read_text())
    audit_of_bans(pd.read_parquet(w / "w2" / "banned.parquet"), pd.read_parquet(w / "o1" / "members.parquet"),
                  w / "audit.db")
    times["period2_previous_banned"] = run("link", w / "w2", "--out", w / "o2b", "--previous", w / "o1",
                                           "--banned", w / "audit.db", "--no-report", "-q")
    times["period1_again_previous"] = run("link", w / "w1", "--out", w / "o1again", "--previous", w / "o1",
                                          "--no-report", "-q")
    report = {"world": {"keys": args.keys, "seed": args.seed,
                        "period2_keys": len(pd.read_parquet(w / "w2" / "keys.parquet", columns=["key_id"])),
                        "banned_farms": len(params2["continue"]["banned_farms"]),
                        "returning_farms": len(params2["continue"]["returning_farms"])},
              "seconds": {k: None if v is None else round(v, 1) for k, v in times.items()}}
    for name in ("o2", "o2b"):
        report[name] = figures(w / "w1", w / "o1", w / "w2", w / name)
    again = pd.read_parquet(w / "o1again" / "clusters.parquet")
    report["period1_again"] = {"clusters": int(len(again)),
                               "unchanged_same_id": int((again["status"] == "unchanged").sum()),
                               "changes_rows": int(len(pd.read_parquet(w / "o1again" / "changes.parquet")))}
    report["partition_agreement_o2_vs_o2cold_ari"] = agreement_ari(w / "o2", w / "o2cold")
    print(json.dumps(report, indent=1, default=str))


ARGS = None

if __name__ == "__main__":
    main()
