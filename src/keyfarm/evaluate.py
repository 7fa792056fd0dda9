"""Detection quality against ground truth: key-level precision/recall, B-cubed, per tactic and pattern.

Reads an OUT_DIR (members, clusters) and a truth table (key_id, farm_id, pattern). A key is
*flagged* when its cluster is flagged (verdict `farm`); keys under `review` are counted apart. B-cubed is computed on the verdict: predicted groups are the
flagged clusters (every unflagged key alone), true groups are the farms (every benign key alone);
precision is averaged over flagged keys, recall over farm keys (Bagga & Baldwin 1998).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm.errors import KeyfarmInputError
from keyfarm.outputs import out_dir_path, read_output, read_table


def flagged_keys(members: pd.DataFrame, clusters: pd.DataFrame) -> pd.Series:
    """Boolean per member row: is the key's cluster flagged."""
    flagged_ids = clusters.loc[clusters["flagged"].astype(bool), "cluster_id"]
    return members["cluster_id"].isin(flagged_ids)


def review_keys(members: pd.DataFrame, clusters: pd.DataFrame) -> pd.Series:
    """Boolean per member row: is the key's cluster's verdict `review` (False without verdicts)."""
    if "verdict" not in clusters:
        return pd.Series(False, index=members.index)
    ids = clusters.loc[clusters["verdict"].astype(str) == "review", "cluster_id"]
    return members["cluster_id"].isin(ids)


def evaluate_frames(members: pd.DataFrame, clusters: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Metrics of a verdict (members + clusters) against truth; see the module docstring."""
    frame = truth[["key_id", "farm_id", "pattern"]].merge(
        members[["key_id", "cluster_id"]], on="key_id", how="left", validate="one_to_one")
    if frame["cluster_id"].isna().any():
        missing = frame.loc[frame["cluster_id"].isna(), "key_id"].iloc[0]
        raise KeyfarmInputError(f"members: truth key {missing!r} has no cluster", table="members",
                                column="key_id")
    frame["flagged"] = flagged_keys(frame, clusters).to_numpy()
    frame["review"] = review_keys(frame, clusters).to_numpy()
    is_farm = frame["farm_id"].notna().to_numpy()
    flagged = frame["flagged"].to_numpy()
    tp = int((flagged & is_farm).sum())
    fp = int((flagged & ~is_farm).sum())
    fn = int((~flagged & is_farm).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    # B-cubed on the verdict
    pred = np.where(flagged, frame["cluster_id"].astype(np.int64).to_numpy(), -1 - np.arange(len(frame)))
    true = np.where(is_farm, frame["farm_id"].astype(str).to_numpy(), "benign#" + frame["key_id"].astype(str).to_numpy())
    pair = pd.DataFrame({"pred": pred, "true": true})
    overlap = pair.groupby(["pred", "true"])["pred"].transform("size").to_numpy()
    pred_size = pair.groupby("pred")["pred"].transform("size").to_numpy()
    true_size = pair.groupby("true")["true"].transform("size").to_numpy()
    b3_precision = float((overlap / pred_size)[flagged].mean()) if flagged.any() else 1.0
    b3_recall = float((overlap / true_size)[is_farm].mean()) if is_farm.any() else 1.0

    by_tactic = frame[is_farm].groupby("pattern")["flagged"].agg(["size", "sum", "mean"])
    by_pattern = frame[~is_farm].groupby("pattern")["flagged"].agg(["size", "sum", "mean"])
    review_by = frame.groupby("pattern")["review"].agg(["sum", "mean"])
    farms = frame[is_farm].groupby("farm_id")["flagged"].mean()
    return {
        "keys": int(len(frame)), "farm_keys": int(is_farm.sum()), "flagged_keys": int(flagged.sum()),
        "precision": precision, "recall": recall, "f1": f1,
        "bcubed_precision": b3_precision, "bcubed_recall": b3_recall,
        "farms": int(len(farms)), "farms_found": int((farms >= 0.5).sum()),
        "recall_by_tactic": {str(k): {"keys": int(r["size"]), "flagged": int(r["sum"]), "recall": float(r["mean"])}
                             for k, r in by_tactic.iterrows()},
        "false_positives_by_pattern": {str(k): {"keys": int(r["size"]), "flagged": int(r["sum"]),
                                                "rate": float(r["mean"]),
                                                "review": int(review_by.loc[k, "sum"]),
                                                "review_rate": float(review_by.loc[k, "mean"])}
                                       for k, r in by_pattern.iterrows()},
        "review_keys": int(frame["review"].sum()),
    }


def run_tables(run, member_columns=("key_id", "cluster_id")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(members, clusters) of a `keyfarm.link` result (a LinkResult) or of an OUT_DIR on disk,
    members with at least `member_columns`."""
    if hasattr(run, "members") and hasattr(run, "clusters"):
        return run.members, run.clusters
    out = out_dir_path(run)
    return (read_output(out, "members", list(member_columns)),
            read_output(out, "clusters", ["cluster_id", "flagged"]))


def evaluate(run, truth) -> dict:
    """Metrics of a run against ground truth. `run` is a LinkResult (what `keyfarm.link` returns)
    or an OUT_DIR; `truth` a truth table (key_id, farm_id, pattern) or the path of one."""
    members, clusters = run_tables(run)
    truth_frame = truth if isinstance(truth, pd.DataFrame) else \
        read_table(Path(truth), "truth", ["key_id", "farm_id", "pattern"])
    return evaluate_frames(members, clusters, truth_frame)


def format_report(metrics: dict) -> str:
    """The metrics as a plain-text table for the terminal."""
    lines = [
        f"keys {metrics['keys']:,}  farm keys {metrics['farm_keys']:,}  flagged {metrics['flagged_keys']:,}",
        f"key-level   precision {metrics['precision']:.4f}  recall {metrics['recall']:.4f}  F1 {metrics['f1']:.4f}",
        f"B-cubed     precision {metrics['bcubed_precision']:.4f}  recall {metrics['bcubed_recall']:.4f}",
        f"farms found {metrics['farms_found']} of {metrics['farms']} (at least half of a farm's keys flagged)",
        "", f"{'farm tactic':<18}{'keys':>8}{'flagged':>9}{'recall':>9}",
    ]
    for name, row in metrics["recall_by_tactic"].items():
        lines.append(f"{name:<18}{row['keys']:>8}{row['flagged']:>9}{row['recall']:>9.3f}")
    lines += ["", f"{'benign pattern':<18}{'keys':>8}{'farm':>9}{'FP rate':>9}{'review':>9}{'rate':>9}"]
    for name, row in metrics["false_positives_by_pattern"].items():
        lines.append(f"{name:<18}{row['keys']:>8}{row['flagged']:>9}{row['rate']:>9.4f}"
                     f"{row['review']:>9}{row['review_rate']:>9.4f}")
    return "\n".join(lines)


def evaluate_labels(members: pd.DataFrame, clusters: pd.DataFrame, labels: pd.DataFrame) -> dict:
    """How the run's verdicts agree with analysts' labels (SCHEMA.md's labels table).

    The latest label of each cluster and of each account is one judgement; a cluster label is
    compared with that cluster's verdict, an account label with the verdict of the account's
    cluster (`alone` for an account in no cluster of 2+ accounts). Labels of ids this run does not
    have are counted as `unmatched`, never dropped silently. Precision is the farm share of labelled
    judgements under `farm`, recall the share of farm labels under `farm`; either is None when
    nothing was labelled to measure it. Labels are what analysts chose to look at, not a sample:
    the figures describe agreement on those, not the whole run.
    """
    from keyfarm.labels import latest_labels

    labels = labels.copy()
    for column in ("account_id", "cluster_id"):
        if column not in labels:
            labels[column] = None
    if "ts" not in labels:
        labels["ts"] = pd.NaT
    labels["cluster_id"] = pd.to_numeric(labels["cluster_id"], errors="coerce").astype("Int64")
    labels["account_id"] = labels["account_id"].where(labels["account_id"].notna(), None)
    by_cluster, by_account = latest_labels(labels)
    by_account = by_account[by_account["cluster_id"].isna()]   # a row naming both is a cluster label
    ids = clusters["cluster_id"].astype(np.int64).to_numpy()
    verdicts = clusters["verdict"].astype(str).to_numpy(dtype=object) if "verdict" in clusters else \
        np.where(clusters["flagged"].astype(bool), "farm", "clear").astype(object)
    verdict_of = pd.Series(verdicts, index=ids)
    first = members.drop_duplicates("account_id")
    accounts = pd.Series(first["cluster_id"].astype(np.int64).to_numpy(), index=first["account_id"].astype(str))
    c_ids = by_cluster["cluster_id"].astype(np.int64).to_numpy()
    c_verdict = verdict_of.reindex(c_ids).to_numpy(dtype=object)
    a_ids = by_account["account_id"].astype(str).to_numpy()
    a_cluster = accounts.reindex(a_ids)
    a_verdict = verdict_of.reindex(a_cluster.fillna(-1).astype(np.int64).to_numpy()).to_numpy(dtype=object)
    a_verdict = np.where(a_cluster.isna().to_numpy(), None, np.where(pd.isna(a_verdict), "alone", a_verdict))
    judged = pd.DataFrame({
        "kind": ["cluster"] * len(c_ids) + ["account"] * len(a_ids),
        "label": np.concatenate([by_cluster["label"].to_numpy(dtype=object), by_account["label"].to_numpy(dtype=object)]),
        "verdict": np.concatenate([c_verdict, a_verdict]).astype(object)})
    matched = judged[judged["verdict"].notna()]
    table = {v: {lab: int(((matched["verdict"] == v) & (matched["label"] == lab)).sum()) for lab in ("farm", "benign")}
             for v in ("farm", "review", "clear", "alone")}
    under_farm = table["farm"]["farm"] + table["farm"]["benign"]
    farm_labels = sum(row["farm"] for row in table.values())
    return {
        "labels": int(len(judged)),
        "cluster_labels": int(len(c_ids)), "account_labels": int(len(a_ids)),
        "unmatched": {"cluster": int(((judged["kind"] == "cluster") & judged["verdict"].isna()).sum()),
                      "account": int(((judged["kind"] == "account") & judged["verdict"].isna()).sum())},
        "by_verdict": table,
        "farm_labels": int(farm_labels), "benign_labels": int(len(matched) - farm_labels),
        "precision": table["farm"]["farm"] / under_farm if under_farm else None,
        "recall": table["farm"]["farm"] / farm_labels if farm_labels else None,
        "benign_under_farm": table["farm"]["benign"],
    }


def format_labels_report(metrics: dict) -> str:
    """evaluate_labels' figures as a plain-text table for the terminal."""
    def share(value):
        return "-" if value is None else f"{value:.4f}"

    lines = [f"labels {metrics['labels']:,} ({metrics['cluster_labels']:,} of clusters, "
             f"{metrics['account_labels']:,} of accounts; unmatched: {metrics['unmatched']['cluster']:,} "
             f"cluster ids, {metrics['unmatched']['account']:,} account ids not in this run)",
             f"against labels  precision {share(metrics['precision'])}  recall {share(metrics['recall'])}  "
             f"(farm labels {metrics['farm_labels']:,}, benign {metrics['benign_labels']:,})",
             "", f"{'verdict':<10}{'farm':>8}{'benign':>8}"]
    for verdict, row in metrics["by_verdict"].items():
        lines.append(f"{verdict:<10}{row['farm']:>8}{row['benign']:>8}")
    return "\n".join(lines)
