"""Detection quality over a matrix of generated worlds: the team's measurement loop.

    .venv/bin/python scripts/quality.py --seeds 1 2 3 4 --keys 50000 --extra 1000000:1 --work /tmp/q
For every (keys, seed): generate the world once (cached in --work, regenerated when the generator's
source changes), run `keyfarm link` on it (the Python API, with --config when given), evaluate
against truth.parquet, and print ONE table with a metric per row and a world per column, then per
world size the mean and [min, max] over its seeds:
  precision, recall, F1, B³ precision/recall (keyfarm.evaluate.evaluate_frames);
  purity: B³ precision of the clusters of ≥ 2 accounts against the true groups (truth group_id:
    farms and benign groups; keys in no group are singletons), whatever the verdict;
  farm B³ recall: for farm keys, the share of their farm in their own cluster, whatever the verdict;
  recall per farm tactic; share of each benign pattern's keys flagged (`farm`); and, when
  clusters.parquet has a `verdict` column, the share of each benign pattern's keys in `review`.
--json FILE writes every number (and each world's drawn parameters) as JSON.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm.evaluate import evaluate_frames
from keyfarm.pipeline import run_link
from keyfarm.synth import BENIGN_PATTERNS, FARM_TACTICS, generate_world, world_parameters, write_world


def generator_version() -> str:
    """Hash of the generator's source: a cached world is rebuilt when the generator changes."""
    import keyfarm.synth as synth

    h = hashlib.sha256()
    for path in sorted(Path(synth.__file__).parent.glob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def world_dir(work: Path, keys: int, seed: int, days: int) -> Path:
    """The cached world of (keys, seed, days), generated if missing or stale."""
    folder = work / f"world-{keys}-s{seed}-d{days}"
    stamp = folder / "generator.txt"
    version = generator_version()
    if stamp.is_file() and stamp.read_text().strip() == version and (folder / "truth.parquet").is_file():
        return folder
    t0 = time.perf_counter()
    world = generate_world(keys, seed, days=days)
    write_world(world, folder, params=world_parameters(keys, seed, days=days))
    stamp.write_text(version + "\n")
    print(f"generated {folder} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return folder


def b3_purity(truth: pd.DataFrame, members: pd.DataFrame, clusters: pd.DataFrame) -> dict:
    """Cluster purity against true groups, whatever the verdict (see the module docstring)."""
    frame = truth[["key_id", "farm_id", "group_id"]].merge(members[["key_id", "cluster_id"]], on="key_id")
    true = np.where(frame["group_id"].notna(), frame["group_id"].astype(str),
                    "single#" + frame["key_id"].astype(str)).astype(object)
    pred = frame["cluster_id"].to_numpy(np.int64)
    pair = pd.DataFrame({"pred": pred, "true": true})
    overlap = pair.groupby(["pred", "true"])["pred"].transform("size").to_numpy()
    pred_size = pair.groupby("pred")["pred"].transform("size").to_numpy()
    true_size = pair.groupby("true")["true"].transform("size").to_numpy()
    multi = np.isin(pred, clusters["cluster_id"].to_numpy())      # clusters.parquet: ≥ 2 accounts
    is_farm = frame["farm_id"].notna().to_numpy()
    return {"purity": float((overlap / pred_size)[multi].mean()) if multi.any() else 1.0,
            "farm_b3_recall": float((overlap / true_size)[is_farm].mean()) if is_farm.any() else 1.0,
            "keys_in_multi_account_clusters": int(multi.sum())}


def review_shares(truth: pd.DataFrame, members: pd.DataFrame, clusters: pd.DataFrame) -> dict | None:
    """Share of each benign pattern's keys whose cluster's verdict is `review` (None: no verdicts)."""
    if "verdict" not in clusters.columns:
        return None
    review = clusters.loc[clusters["verdict"] == "review", "cluster_id"]
    frame = truth[truth["farm_id"].isna()].merge(members[["key_id", "cluster_id"]], on="key_id")
    return frame.assign(r=frame["cluster_id"].isin(review)).groupby("pattern")["r"].mean().astype(float).to_dict()


def measure(work: Path, keys: int, seed: int, days: int, config: str | None, link_seed: int) -> dict:
    folder = world_dir(work, keys, seed, days)
    tag = hashlib.sha256(Path(config).read_bytes()).hexdigest()[:8] if config else "default"
    out = work / f"out-{keys}-s{seed}-d{days}-{tag}"
    t0 = time.perf_counter()
    result = run_link(folder, out, config_path=config, seed=link_seed, quiet=True, report=False)
    link_s = time.perf_counter() - t0
    truth = pd.read_parquet(folder / "truth.parquet")
    members = result.members
    clusters = result.clusters
    metrics = evaluate_frames(members, clusters, truth)
    metrics.update(b3_purity(truth, members, clusters))
    metrics["review_by_pattern"] = review_shares(truth, members, clusters)
    metrics["link_seconds"] = round(link_s, 1)
    metrics["world"] = {"keys": keys, "seed": seed, "days": days, "dir": str(folder)}
    metrics["params"] = json.loads((folder / "params.json").read_text())
    print(f"linked {folder.name} in {link_s:.1f} s: precision {metrics['precision']:.3f} "
          f"recall {metrics['recall']:.3f}", file=sys.stderr)
    return metrics


def rows_of(m: dict) -> dict[str, float]:
    """The table's rows for one world (NaN where a pattern is absent)."""
    row = {"precision": m["precision"], "recall": m["recall"], "F1": m["f1"],
           "B3 precision": m["bcubed_precision"], "B3 recall": m["bcubed_recall"],
           "purity (B3 P, clusters >=2 acc.)": m["purity"], "farm B3 recall (any verdict)": m["farm_b3_recall"]}
    for t in FARM_TACTICS:
        r = m["recall_by_tactic"].get(t)
        row[f"recall {t}"] = r["recall"] if r else np.nan
    for p in BENIGN_PATTERNS:
        r = m["false_positives_by_pattern"].get(p)
        row[f"flagged {p}"] = r["rate"] if r else np.nan
    if m["review_by_pattern"] is not None:
        for p in BENIGN_PATTERNS:
            row[f"review {p}"] = m["review_by_pattern"].get(p, np.nan)
    return row


def table(results: list[dict]) -> str:
    """Markdown table: metric rows, one column per world, then mean [min, max] per world size."""
    cols = {f"{r['world']['keys'] // 1000}k s{r['world']['seed']}": rows_of(r) for r in results}
    frame = pd.DataFrame(cols)
    sizes = sorted({r["world"]["keys"] for r in results})
    for size in sizes:
        names = [c for c, r in zip(cols, results) if r["world"]["keys"] == size]
        if len(names) < 2:
            continue
        sub = frame[names]
        frame[f"{size // 1000}k mean [min, max]"] = [
            "" if s.isna().all() else f"{s.mean():.3f} [{s.min():.3f}, {s.max():.3f}]" for _, s in sub.iterrows()]
    head = "| metric | " + " | ".join(frame.columns) + " |"
    lines = [head, "|" + "---|" * (len(frame.columns) + 1)]
    for name, row in frame.iterrows():
        cells = [v if isinstance(v, str) else ("–" if pd.isna(v) else f"{v:.3f}") for v in row]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--keys", type=int, nargs="+", default=[50_000], help="world sizes (each with every seed)")
    parser.add_argument("--extra", nargs="*", default=[], metavar="KEYS:SEED",
                        help="further single worlds, e.g. 1000000:1")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("quality-work"), help="cache of worlds and outputs")
    parser.add_argument("--config", default=None, help="TOML configuration passed to link")
    parser.add_argument("--link-seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", default=None, help="write every number as JSON here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    matrix = [(k, s) for k in args.keys for s in args.seeds]
    matrix += [tuple(int(x) for x in e.split(":")) for e in args.extra]
    results = [measure(args.work, k, s, args.days, args.config, args.link_seed) for k, s in matrix]
    print(table(results))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=1, sort_keys=True, default=float) + "\n")


if __name__ == "__main__":
    main()
