"""Cluster features, weakest links and the score on hand-built clusters."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from keyfarm.io import tables_from_frames
from keyfarm.pipeline import stable_cluster_ids
from keyfarm.scoring import (ScoringConfig, cluster_features, key_activity, score_clusters,
                             weakest_links)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 12), st.data())
def test_weakest_link_is_the_bottleneck_of_the_maximum_spanning_tree(n, data):
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    chosen = data.draw(st.lists(st.sampled_from(pairs), min_size=1, unique=True))
    weights = data.draw(st.lists(st.floats(0.01, 10), min_size=len(chosen), max_size=len(chosen),
                                 unique=True))
    src = np.array([a for a, _ in chosen])
    dst = np.array([b for _, b in chosen])
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_weighted_edges_from(zip(src, dst, weights))
    membership = np.empty(n, np.int64)
    for c, comp in enumerate(nx.connected_components(g)):
        membership[list(comp)] = c
    weak = weakest_links(src, dst, np.array(weights), membership)
    for c, comp in enumerate(nx.connected_components(g)):
        if len(comp) == 1:
            assert weak[c] == -1
            continue
        tree = nx.maximum_spanning_tree(g.subgraph(comp))
        assert weights[weak[c]] == pytest.approx(min(d["weight"] for _, _, d in tree.edges(data=True)))


def test_stable_cluster_ids_follow_the_smallest_member():
    assert stable_cluster_ids(np.array([5, 5, 2, 9, 2, 7])).tolist() == [0, 0, 1, 2, 1, 3]
    assert stable_cluster_ids(np.array([], np.int64)).tolist() == []


def _cluster_world(farm_like: bool):
    """Six accounts with one key each in one cluster, plus one lone key."""
    n = 6
    created = pd.Timestamp("2026-10-01", tz="UTC") + pd.to_timedelta(
        np.arange(n) * (0.1 if farm_like else 400), unit="h")
    keys = pd.DataFrame({"key_id": [f"k{i}" for i in range(n + 1)],
                         "account_id": [f"a{i}" for i in range(n + 1)],
                         "created_at": list(created) + [created[0]],
                         "daily_token_limit": [100_000] * (n + 1)})
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n + 1):
        for r in range(40):
            if farm_like and i < n:  # the lone key k6 is ordinary traffic over three days
                t = pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(minutes=int(rng.integers(0, 4)) * 60)
                tokens = 7_000
            else:
                t = pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(seconds=int(rng.integers(0, 3 * 86400)))
                tokens = 300
            rows.append({"key_id": f"k{i}", "ts": t, "ip": f"10.0.{i}.1", "prompt_tokens": tokens // 2,
                         "completion_tokens": tokens // 2})
    tables = tables_from_frames(keys, requests=pd.DataFrame(rows))
    src = np.array([0, 1, 2, 3, 4])
    dst = np.array([1, 2, 3, 4, 5])
    weight = np.array([3.0, 2.0, 0.5, 2.5, 4.0])
    sig = {"payment": weight.copy(), "ip": np.zeros(5), "device": np.zeros(5), "prompt": np.zeros(5)}
    membership = np.array([0, 0, 0, 0, 0, 0, 1])
    return tables, membership, src, dst, weight, sig


# a fixed model, so these tests check features and policy, not the fitted defaults
MODEL = dict(bias=-4.0, weights={"control_span": 2.0, "burst": 1.5, "usage": 2.0, "multiplier": 2.0,
                                 "control_evasion": 2.0, "declared_org": -6.0})


@pytest.mark.parametrize("farm_like", [True, False])
def test_features_and_verdict(farm_like):
    tables, membership, src, dst, weight, sig = _cluster_world(farm_like)
    config = ScoringConfig(**MODEL)
    activity = key_activity(tables.requests, bin_seconds=config.sync_bin_seconds)
    feats = cluster_features(tables.keys, tables.accounts, activity, membership, src, dst, weight,
                             sig, config)
    assert feats["cluster_id"].tolist() == [0]  # the lone key is no cluster
    row = feats.iloc[0]
    assert row["n_keys"] == 6 and row["n_accounts"] == 6
    assert row["signals"] == "payment" and row["n_signals"] == 1
    assert row["weakest_edge"] == 2 and row["strongest_edge"] == 4
    per_day = 40 * (7_000 if farm_like else 300) / (1 if farm_like else 3)
    assert row["usage"] == pytest.approx(per_day / 100_000, rel=0.35)
    scored = score_clusters(feats, config)
    assert bool(scored["flagged"].iloc[0]) is farm_like
    assert scored["explanation"].iloc[0].startswith("Farm" if farm_like else "Clear")
    assert scored["verdict"].iloc[0] == ("farm" if farm_like else "clear")
    if farm_like:
        assert row["synchrony"] > 0.8 and row["creation_spread_hours"] < 1
        assert row["limit_multiplier"] == pytest.approx(6 * 40 * 7_000 / 100_000)
        assert "6 of 6 accounts joined by shared payment instruments" in scored["explanation"].iloc[0]
    else:
        assert "missing for farm: drawing beyond one account" in scored["explanation"].iloc[0]


def test_declared_organisation_pulls_the_score_down():
    tables, membership, src, dst, weight, sig = _cluster_world(True)
    accounts = pd.DataFrame({"account_id": [f"a{i}" for i in range(7)], "org_id": ["org1"] * 7,
                             "email_domain": ["corp.example"] * 7})
    tables = tables_from_frames(tables.keys.drop(columns=["account"]), accounts=accounts,
                                requests=tables.requests[["key_id", "ts", "ip", "prompt_tokens",
                                                          "completion_tokens"]])
    config = ScoringConfig(**MODEL)
    activity = key_activity(tables.requests)
    feats = cluster_features(tables.keys, tables.accounts, activity, membership, src, dst, weight, sig, config)
    assert bool(feats["declared_org"].iloc[0])
    scored = score_clusters(feats, config)
    assert "one declared organisation" in scored["explanation"].iloc[0]


def test_institutional_domains_include_country_second_levels():
    from keyfarm.scoring.features import institutional

    domains = pd.Series(["mit.edu", "ox.ac.uk", "usp.edu.br", "nic.gov.in", "army.mil", "state.gov",
                         "mailbox.example", "education.com", "gov.example", None])
    assert institutional(domains).tolist() == [True] * 6 + [False] * 4


def _infra_world(near_limit: bool):
    """Six accounts opened weeks apart, each with its own card, all on the same two server
    addresses (a farm's machines, or an office's NAT): the ip signal alone links them."""
    tables, membership, src, dst, weight, sig = _cluster_world(False)
    keys = tables.keys.drop(columns=["account"])
    rows = []
    rng = np.random.default_rng(5)
    for i in range(7):
        for r in range(40):
            t = pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(seconds=int(rng.integers(0, 86400)))
            tokens = 7_000 if near_limit and i < 6 else 300
            rows.append({"key_id": f"k{i}", "ts": t, "ip": f"198.51.100.{1 + r % 2}" if i < 6 else "10.9.9.9",
                         "prompt_tokens": tokens // 2, "completion_tokens": tokens // 2})
    tables = tables_from_frames(keys, requests=pd.DataFrame(rows))
    sig = {"payment": np.zeros(5), "ip": weight.copy(), "device": np.zeros(5), "prompt": np.zeros(5)}
    return tables, membership, src, dst, weight, sig


@pytest.mark.parametrize("near_limit", [True, False])
def test_private_infrastructure_opens_the_control_gate_but_weighs_nothing(near_limit):
    """Accounts on one set of exact addresses are evidence of one actor for the gate of `farm`;
    whether they are a farm is the score's, from evasion: a farm's accounts near their limits are,
    an office's light users are not. The span weighs nothing in the model."""
    from keyfarm.scoring.verdict import feature_scales, model_logit

    tables, membership, src, dst, weight, sig = _infra_world(near_limit)
    config = ScoringConfig(bias=-3.0, weights=MODEL["weights"])
    activity = key_activity(tables.requests, bin_seconds=config.sync_bin_seconds)
    feats = cluster_features(tables.keys, tables.accounts, activity, membership, src, dst, weight, sig, config)
    assert feats["span_ip"].iloc[0] == 1.0 and feats["span_control"].iloc[0] == 0.0
    scored = score_clusters(feats, config)
    assert scored["control"].iloc[0] == 1.0
    assert scored["verdict"].iloc[0] == ("farm" if near_limit else "clear")
    if near_limit:
        assert "6 of 6 accounts joined by the same private addresses" in scored["explanation"].iloc[0]
    # the same cluster without its address evidence: the same score, but the gate stays shut
    no_ip = feats.assign(span_ip=0.0)
    rescored = score_clusters(no_ip, config)
    assert rescored["score"].iloc[0] == scored["score"].iloc[0]
    assert rescored["verdict"].iloc[0] != "farm"
    logit, _ = model_logit(feature_scales(feats, config), config)
    logit_no_ip, _ = model_logit(feature_scales(no_ip, config), config)
    assert logit[0] == logit_no_ip[0]


def test_private_infrastructure_of_users_who_draw_unalike_does_not_open_the_gate():
    """The tenants of a gateway share its addresses but are independent users: a quarter of them
    draw a fraction of what the median does. Their addresses are not one actor's evidence."""
    tables, membership, src, dst, weight, sig = _infra_world(True)
    config = ScoringConfig(bias=-3.0, weights=MODEL["weights"])
    activity = key_activity(tables.requests, bin_seconds=config.sync_bin_seconds)
    feats = cluster_features(tables.keys, tables.accounts, activity, membership, src, dst, weight, sig, config)
    alike = score_clusters(feats, config)
    unalike = score_clusters(feats.assign(usage_low=feats["usage"] * 0.2), config)
    assert alike["control"].iloc[0] == 1.0 and alike["verdict"].iloc[0] == "farm"
    assert unalike["control"].iloc[0] == pytest.approx(0.2) and unalike["verdict"].iloc[0] != "farm"


def test_edge_features_of_a_group_of_clusters_need_only_their_inside_edges(small_world_dir):
    """scoring.edge_features on each third of the clusters, given only those clusters' inside edges
    (what the Spark engine's groups hold), equals the whole job's features, edge for edge."""
    from keyfarm.config import Config
    from keyfarm.pipeline import detect_communities, link
    from keyfarm.scoring.features import edge_features

    config = Config.default()
    result = link(small_world_dir, config, seed=2)
    graph, account = result.graph, result.tables.keys["account"].to_numpy(np.int64)
    membership = detect_communities(graph, result.tables, config, seed=2)
    whole_cids = np.flatnonzero(np.bincount(membership) >= 2)
    whole = edge_features(account, membership, whole_cids, graph.src, graph.dst, graph.weight, graph.w,
                          config.scoring)
    assert (whole["weakest_edge"] >= 0).sum() > 10 and whole["signals"].str.len().gt(0).any()
    inside = (membership[graph.src] == membership[graph.dst]) & (account[graph.src] != account[graph.dst])
    for part in range(3):
        cids = whole_cids[whole_cids % 3 == part]
        rows = np.flatnonzero(inside & np.isin(membership[graph.src], cids))
        got = edge_features(account, membership, cids, graph.src[rows], graph.dst[rows], graph.weight[rows],
                            {s: w[rows] for s, w in graph.w.items()}, config.scoring)
        for end in ("weakest_edge", "strongest_edge"):   # local edge indices → the whole graph's
            index = got[end].to_numpy(np.int64)
            got[end] = np.where(index >= 0, rows[np.maximum(index, 0)], -1)
        expected = whole[np.isin(whole_cids, cids)].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected)
