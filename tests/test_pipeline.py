"""The linkage job end to end: outputs per SCHEMA.md, determinism, detection quality on a world."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from keyfarm.cli import main
from keyfarm.evaluate import evaluate, evaluate_frames
from keyfarm.pipeline import link, run_link, write_outputs


@pytest.fixture(scope="module")
def linked(small_world_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    result = run_link(small_world_dir, out, seed=3, quiet=True, report=False)
    return result, out


def test_outputs_follow_the_schema(linked):
    result, out = linked
    members = pd.read_parquet(out / "members.parquet")
    clusters = pd.read_parquet(out / "clusters.parquet")
    edges = pd.read_parquet(out / "edges.parquet")
    run = json.loads((out / "run.json").read_text())
    assert {"key_id", "account_id", "cluster_id"} <= set(members.columns)
    assert members["cluster_id"].dtype == np.int64 and members["key_id"].is_unique
    assert {"cluster_id", "n_keys", "n_accounts", "score", "verdict", "flagged", "signals", "total_tokens",
            "limit_multiplier", "explanation"} <= set(clusters.columns)
    assert clusters["score"].between(0, 1).all() and clusters["flagged"].dtype == bool
    assert (clusters["n_accounts"] >= 2).all()
    signals = ["w_payment", "w_ip", "w_device", "w_prompt", "w_timing"]
    assert {"key_a", "key_b", "weight", *signals} <= set(edges.columns) and "w_account" not in edges
    assert (edges["key_a"] < edges["key_b"]).all()
    assert np.allclose(edges[signals].sum(axis=1), edges["weight"])
    # pairs of keys of different accounts, one pair per pair of accounts
    account = members.set_index("key_id")["account_id"]
    a, b = account.reindex(edges["key_a"]).to_numpy(), account.reindex(edges["key_b"]).to_numpy()
    assert (a != b).all()
    assert not pd.DataFrame({"a": np.minimum(a, b), "b": np.maximum(a, b)}).duplicated().any()
    assert {"version", "config", "input_rows", "quarantined", "timings", "hubs", "run_id"} <= set(run)
    assert {"load", "signals", "graph", "communities", "scores", "write"} <= set(run["timings"])
    # keys of one account are never split
    assert (members.groupby("account_id")["cluster_id"].nunique() == 1).all()
    # cluster sizes agree with members
    sizes = members.groupby("cluster_id").size()
    assert (clusters.set_index("cluster_id")["n_keys"] == sizes.reindex(clusters["cluster_id"]).to_numpy()).all()


def test_flagged_clusters_name_weakest_link_and_strongest_evidence(linked):
    result, _ = linked
    flagged = result.clusters[result.clusters["flagged"]]
    assert len(flagged)
    assert flagged["weakest_key_a"].notna().all() and flagged["strongest_evidence"].notna().all()
    assert (flagged["weakest_weight"] <= flagged["strongest_weight"]).all()
    assert flagged["explanation"].str.startswith("Farm").all() and (flagged["verdict"] == "farm").all()


def test_detection_quality_on_a_generated_world(linked, small_world):
    result, _ = linked
    m = evaluate_frames(result.members, result.clusters, small_world["truth"])
    assert m["precision"] >= 0.97 and m["recall"] >= 0.95
    for tactic, row in m["recall_by_tactic"].items():
        assert row["recall"] >= 0.9, tactic
    for pattern, row in m["false_positives_by_pattern"].items():
        assert row["rate"] <= 0.005, pattern


def _digests(folder):
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest()
            for n in ("members.parquet", "clusters.parquet", "edges.parquet")}


def test_same_input_and_seed_give_identical_bytes_whatever_the_row_order(small_world, tmp_path):
    from keyfarm.synth import write_world
    shuffled = {k: v.sample(frac=1.0, random_state=5) if k != "truth" else v for k, v in small_world.items()}
    a = write_world(small_world, tmp_path / "a")
    b = write_world(shuffled, tmp_path / "b")
    run_link(a, tmp_path / "oa", seed=1, quiet=True, report=False)
    run_link(b, tmp_path / "ob", seed=1, quiet=True, report=False)
    assert _digests(tmp_path / "oa") == _digests(tmp_path / "ob")


def test_a_farm_tied_to_a_campus_by_one_stray_edge_is_still_its_own_cluster(small_world):
    world = {k: v.copy() for k, v in small_world.items()}
    truth = world["truth"]
    farm_key = truth.loc[truth["pattern"] == "naive", "key_id"].iloc[0]
    campus_key = truth.loc[truth["pattern"] == "campus_nat", "key_id"].iloc[0]
    # the farm's key once used a campus student's home-ish address, and vice versa
    stray_ip = "192.0.2.77"
    extra = world["requests"][world["requests"]["key_id"].isin([farm_key, campus_key])] \
        .groupby("key_id").head(1).assign(ip=stray_ip)
    world["requests"] = pd.concat([world["requests"], extra], ignore_index=True)
    result = link(_tables(world))
    m = evaluate_frames(result.members, result.clusters, truth)
    assert m["recall_by_tactic"]["naive"]["recall"] == 1.0
    assert m["false_positives_by_pattern"]["campus_nat"]["flagged"] == 0


def _tables(world):
    from keyfarm.io import tables_from_frames
    return tables_from_frames(**{k: v for k, v in world.items() if k != "truth"})


def test_link_command_writes_out_dir(small_world_dir, tmp_path):
    result = CliRunner().invoke(main, ["link", str(small_world_dir), "--out", str(tmp_path / "o"),
                                       "--quiet", "--no-report", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "flagged" in result.output
    assert evaluate(tmp_path / "o", small_world_dir / "truth.parquet")["recall"] >= 0.95


def test_link_command_reports_a_bad_config_in_one_line(small_world_dir, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[caps]\nip = 'many'\n")
    result = CliRunner().invoke(main, ["link", str(small_world_dir), "--out", str(tmp_path / "o"),
                                       "--config", str(bad), "--quiet"])
    assert result.exit_code == 2 and "caps.ip" in result.output


def test_prompt_links_in_clusters_carry_an_example_prompt_of_each_key(linked, small_world):
    result, out = linked
    edges = pd.read_parquet(out / "edges.parquet")
    clusters = pd.read_parquet(out / "clusters.parquet")
    shown = edges[edges["evidence_prompt"].notna() & edges["cluster_id"].isin(clusters["cluster_id"])]
    assert len(shown) > 0
    assert shown["prompt_example_a"].notna().all() and shown["prompt_example_b"].notna().all()
    # each example is a prompt its key's account sent (cut at 500 characters), and the pair is near-duplicate
    requests = small_world["requests"].merge(small_world["keys"][["key_id", "account_id"]], on="key_id")
    sent = requests.dropna(subset=["prompt"]).groupby("account_id")["prompt"].agg(lambda p: set(s[:500] for s in p))
    account = small_world["keys"].set_index("key_id")["account_id"]
    for row in shown.head(50).itertuples():
        assert row.prompt_example_a in sent[account[row.key_a]] and row.prompt_example_b in sent[account[row.key_b]]
    from keyfarm.signals.prompt import minhash_signatures, estimate_jaccard
    sig = minhash_signatures(list(shown["prompt_example_a"].head(50)) + list(shown["prompt_example_b"].head(50)))
    assert np.median(estimate_jaccard(sig[:len(sig) // 2], sig[len(sig) // 2:])) > 0.4
    # edges a report never draws carry none
    hidden = edges[~edges.index.isin(shown.index)]
    assert hidden["prompt_example_a"].isna().all()


def test_every_hub_is_listed_with_its_degree_and_signal(linked):
    result, out = linked
    hubs = pd.read_parquet(out / "hubs.parquet")
    run = json.loads((out / "run.json").read_text())
    assert list(hubs.columns) == ["token", "signal", "n_accounts", "n_keys", "score", "verdict", "example"] \
        and len(hubs) > 0
    assert run["n_hubs"] == {k: int(v) for k, v in hubs["signal"].value_counts().sort_index().items()}
    expected = [{k: (None if pd.isna(v) else v) for k, v in r.items()}
                for r in hubs.drop(columns="example").head(len(run["hubs"])).to_dict("records")]
    assert run["hubs"] == expected
    # hubs of payment, IP and timing are judged as groups; popular devices and prompts are not
    judged = hubs["signal"].isin(["payment", "ip", "timing"])
    assert hubs.loc[judged, "verdict"].isin(["farm", "review", "clear"]).all()
    assert hubs.loc[~judged, "verdict"].isna().all()
    assert hubs["n_accounts"].is_monotonic_decreasing
    # each is over its signal's cap: recount one hub's accounts from the inputs
    cfg = result.run["config"]["caps"]
    max_keys = cfg["max_keys"] if cfg["max_keys"] is not None else np.inf
    share_cap = max(cfg["max_share"] * result.tables.n_accounts, cfg["min_share_cap"])
    over_share = (hubs["signal"] == "device") & (hubs["n_accounts"] > share_cap)
    assert ((hubs["n_accounts"] > hubs["signal"].map(cfg)) | (hubs["n_keys"] > max_keys) | over_share).all()
    req = result.tables.requests
    top_ip = hubs[hubs["token"].str.startswith("ip4:")].iloc[0]
    ip = top_ip["token"].split(":", 1)[1]
    keys = req.loc[req["ip"] == ip, "key"].unique()
    assert keys.size == top_ip["n_keys"] > 0
    assert np.unique(result.tables.keys["account"].to_numpy()[keys]).size == top_ip["n_accounts"]


# Tactics today's detector does not yet find reliably on 10k-key worlds of every pattern (see the
# closing notes of issues 14 and 15): slow_burn runs from a few private addresses that the verdict
# reads as an office's, and a job queue of a few dozen accounts puts ~2 of them in each slot.
KNOWN_GAPS = ("slow_burn", "job_queue")


@pytest.mark.slow
def test_detection_quality_on_worlds_of_every_pattern():
    from keyfarm.io import tables_from_frames
    from keyfarm.synth import BENIGN_PATTERNS, FARM_TACTICS, generate_world

    recall, precision = {}, []
    for seed in (21, 23):
        world = generate_world(10_000, seed=seed)
        tables = tables_from_frames(**{k: v for k, v in world.items() if k != "truth"})
        result = link(tables, seed=3)
        m = evaluate_frames(result.members, result.clusters, world["truth"])
        precision.append(m["precision"])
        assert set(m["false_positives_by_pattern"]) == set(BENIGN_PATTERNS)
        for pattern, row in m["false_positives_by_pattern"].items():
            assert row["rate"] <= 0.005, (seed, pattern)   # no benign crowd under `farm`
        for tactic, row in m["recall_by_tactic"].items():
            recall.setdefault(tactic, []).append(row["recall"])
    assert min(precision) >= 0.97
    assert set(recall) == set(FARM_TACTICS)
    for tactic, values in recall.items():
        if tactic not in KNOWN_GAPS:
            assert np.mean(values) >= 0.9, tactic


def test_score_breakdown_of_every_cluster_sums_to_its_score(linked):
    from keyfarm.report.breakdown import breakdown, scoring_config

    _, out = linked
    config = scoring_config(json.loads((out / "run.json").read_text()))
    clusters = pd.read_parquet(out / "clusters.parquet")
    logits = np.array([breakdown(row, config).logit for row in clusters.to_dict("records")])
    assert np.allclose(1 / (1 + np.exp(-logits)), clusters["score"], atol=1e-5)


def test_activity_tables_hold_the_tokens_of_every_clustered_account(linked):
    _, out = linked
    members = pd.read_parquet(out / "members.parquet")
    clusters = pd.read_parquet(out / "clusters.parquet")
    activity = pd.read_parquet(out / "activity.parquet")
    slots = pd.read_parquet(out / "slots.parquet")
    inside = members[members["cluster_id"].isin(clusters["cluster_id"])]
    expected = inside.groupby("account_id")["total_tokens"].sum()
    got = activity.groupby("account_id")["tokens"].sum().reindex(expected.index, fill_value=0)
    assert (got == expected).all() and set(activity["cluster_id"]) <= set(clusters["cluster_id"])
    assert (slots["n_accounts"] >= 2).all() and set(slots["cluster_id"]) <= set(clusters["cluster_id"])


def test_prompt_hubs_carry_a_prompt_that_reaches_them(linked):
    _, out = linked
    hubs = pd.read_parquet(out / "hubs.parquet")
    prompt = hubs[hubs["signal"] == "prompt"]
    assert len(prompt) and prompt["example"].notna().all()
    assert hubs.loc[hubs["signal"] != "prompt", "example"].isna().all()


def test_calibrate_fits_on_labels_written_by_keyfarm_label(linked, small_world_dir, tmp_path):
    import shutil

    from keyfarm.labels import append_label

    _, out = linked
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    truth = pd.read_parquet(small_world_dir / "truth.parquet")
    members = pd.read_parquet(copy / "members.parquet").merge(truth, on="key_id")
    clusters = pd.read_parquet(copy / "clusters.parquet")
    share = members.groupby("cluster_id")["farm_id"].apply(lambda s: s.notna().mean())
    for cid in clusters["cluster_id"]:
        append_label(copy, "farm" if share[cid] >= 0.5 else "benign", cluster_id=int(cid))
    done = CliRunner().invoke(main, ["calibrate", str(copy), "--json", "--folds", "3"])
    assert done.exit_code == 0, done.output
    fit = json.loads(done.output)
    assert fit["n_farm"] >= 1 and fit["n_clusters"] > fit["n_farm"]


@pytest.mark.parametrize("repeat_pairs", [False, True])
def test_account_links_keep_the_strongest_key_pair_per_signal_and_sum_the_signals(repeat_pairs):
    """Against a plain dict reference: per account pair, the maximum of each signal over its key
    pairs, summed in signal order; pairs inside one account and weak links left out. Both the
    one-key-pair-per-account-pair path (the job's) and the grouped path are covered."""
    from keyfarm.pipeline import account_links

    rng = np.random.default_rng(3 if repeat_pairs else 4)
    n = 400
    a, b = rng.integers(0, 60, n), rng.integers(0, 60, n)
    if not repeat_pairs:   # distinct unordered pairs
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        _, first = np.unique(lo * 100 + hi, return_index=True)
        a, b = a[first], b[first]
    w = {s: rng.uniform(0, 1, a.size) * (rng.uniform(size=a.size) < 0.6)
         for s in ("account", "payment", "ip", "device", "prompt", "timing")}
    best = {}
    for i in range(a.size):
        if a[i] == b[i]:
            continue
        k = (min(a[i], b[i]), max(a[i], b[i]))
        prev = best.get(k, [0.0] * 5)
        best[k] = [max(p, w[s][i]) for p, s in zip(prev, ("payment", "ip", "device", "prompt", "timing"))]
    expected = []
    for k in sorted(best):
        total = 0.0
        for v in best[k]:
            total += v
        if total > 0.3:
            expected.append((k[0], k[1], total))
    src, dst, weight = account_links(a, b, w, min_edge_weight=0.3)
    assert list(zip(src.tolist(), dst.tolist(), weight.tolist())) == expected
    # part=: the same links, with the sum over the named signals alone (cards and devices here)
    p_src, p_dst, p_weight, p_part = account_links(a, b, w, min_edge_weight=0.3, part=("payment", "device"))
    assert (p_src == src).all() and (p_dst == dst).all() and (p_weight == weight).all()
    assert p_part.tolist() == [best[(x, y)][0] + best[(x, y)][2] for x, y in zip(src.tolist(), dst.tolist())]
