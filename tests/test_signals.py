"""Signals: address levels against Python's ipaddress, time windows, special ranges, generated worlds."""
from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from keyfarm.config import Config, NetworkConfig
from keyfarm.graph import build_graph
from keyfarm.io import tables_from_frames
from keyfarm.signals import network, registry
from keyfarm.signals.network import in_networks, read_cidr_file


def _tables(rows, n_keys=4):
    keys = pd.DataFrame({"key_id": [f"k{i}" for i in range(n_keys)],
                         "account_id": [f"a{i}" for i in range(n_keys)],
                         "created_at": ["2026-10-01"] * n_keys})
    return tables_from_frames(keys, requests=pd.DataFrame(rows, columns=["key_id", "ts", "ip"]))


def _tokens(tables, config=None):
    inc = network.incidence(tables, config or Config.default())
    return inc.groupby("token")["key"].apply(lambda k: sorted(k.tolist())).to_dict()


def test_levels_match_ipaddress():
    rows = [("k0", "2026-11-01T10:00Z", "203.0.113.7"), ("k1", "2026-11-03T10:00Z", "203.0.113.9"),
            ("k2", "2026-11-01T10:00Z", "2001:db8:1:2:aaaa::1"), ("k3", "2026-11-05T10:00Z", "2001:db8:1:2:bbbb::1")]
    tokens = _tokens(_tables(rows))
    net24 = ipaddress.ip_network("203.0.113.7/24", strict=False).network_address
    net64 = ipaddress.ip_network("2001:db8:1:2:aaaa::1/64", strict=False).network_address
    net48 = ipaddress.ip_network("2001:db8:1:2:aaaa::1/48", strict=False).network_address
    assert tokens[f"ip4/24:{net24}"] == [0, 1]
    assert tokens[f"ip6/64:{net64.compressed}"] == [2, 3]
    assert tokens[f"ip6/48:{net48.compressed}"] == [2, 3]
    assert "ip4:203.0.113.7" not in tokens  # one account only: links nothing


def test_ipv4_mapped_ipv6_links_with_ipv4():
    rows = [("k0", "2026-11-01T10:00Z", "198.51.100.2"), ("k1", "2026-11-01T12:30Z", "::ffff:198.51.100.2")]
    assert _tokens(_tables(rows))["ip4:198.51.100.2"] == [0, 1]


def test_same_window_sharing_adds_a_window_token_weeks_apart_does_not():
    rows = [("k0", "2026-11-01T10:05Z", "203.0.113.7"), ("k1", "2026-11-01T10:40Z", "203.0.113.7"),
            ("k2", "2026-11-20T10:05Z", "203.0.113.7")]
    tokens = _tokens(_tables(rows))
    window = [t for t in tokens if t.startswith("ipw:")]
    assert len(window) == 1 and tokens[window[0]] == [0, 1]
    graph, _, _ = build_graph(_tables(rows), Config.default())
    w = {(int(a), int(b)): x for a, b, x in zip(graph.src, graph.dst, graph.w["ip"])}
    assert w[(0, 1)] > w[(0, 2)] > 0


def test_special_ranges_ignored_or_weak():
    rows = [("k0", "2026-11-01T10:00Z", "10.1.2.3"), ("k1", "2026-11-01T10:00Z", "10.1.2.3"),
            ("k2", "2026-11-01T10:00Z", "100.64.1.1"), ("k3", "2026-11-01T10:00Z", "100.64.1.1")]
    assert _tokens(_tables(rows)) == {}
    weak = Config(network=NetworkConfig(special_ranges="weak"))
    inc = network.incidence(_tables(rows), weak)
    assert len(inc) and np.allclose(inc["weight"], 0.1)


def test_user_cidr_file_is_honoured(tmp_path):
    path = tmp_path / "egress.txt"
    path.write_text("# cloud egress\n203.0.113.0/24\n\n2001:db8::/32  # vpn\n")
    rows = [("k0", "2026-11-01T10:00Z", "203.0.113.7"), ("k1", "2026-11-01T10:00Z", "203.0.113.7")]
    config = Config(network=NetworkConfig(shared_infrastructure_file=str(path)))
    assert _tokens(_tables(rows), config) == {}
    (tmp_path / "bad.txt").write_text("not-a-cidr\n")
    from keyfarm.errors import KeyfarmConfigError
    with pytest.raises(KeyfarmConfigError, match="line 1"):
        read_cidr_file(tmp_path / "bad.txt")


def test_in_networks_matches_ipaddress_on_random_addresses():
    rng = np.random.default_rng(1)
    nets = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "192.168.4.0/22", "2001:db8::/32", "fe80::/10",
                                              "2001:db8:0:1::/64", "2001:db8::1:0:0/96")]
    addrs = [ipaddress.ip_address(int(x)) for x in rng.integers(0, 2**32, 300, dtype=np.uint64)]
    addrs += [ipaddress.ip_address("10.9.8.7"), ipaddress.ip_address("192.168.7.1"),
              ipaddress.ip_address("fe80::1"), ipaddress.ip_address("2001:db8:0:1::5"),
              ipaddress.ip_address("2001:db8::1:0:7"), ipaddress.ip_address("2001:db9::1")]
    version = np.array([a.version for a in addrs], np.int8)
    hi = np.array([int(a) >> 64 if a.version == 6 else 0 for a in addrs], np.uint64)
    lo = np.array([int(a) & (2**64 - 1) for a in addrs], np.uint64)
    expected = np.array([any(a in n for n in nets if n.version == a.version) for a in addrs])
    np.testing.assert_array_equal(in_networks(version, hi, lo, nets), expected)


@pytest.fixture(scope="module")
def world_graph(small_world):
    """The small world's graph with the share cap of devices off: these tests are about what each
    signal links, and in a 3,000-key job a 30-account farm's client is 1 % of the accounts (see
    test_a_client_on_a_large_share_of_a_small_job_is_a_hub for the cap)."""
    import dataclasses
    tables = tables_from_frames(**{k: v for k, v in small_world.items() if k != "truth"})
    config = Config.default()
    config = dataclasses.replace(config, caps=dataclasses.replace(config.caps, max_share=1.0))
    graph, hubs, tokens = build_graph(tables, config)
    return tables, graph, hubs, tokens, small_world["truth"]


def test_a_client_on_a_large_share_of_a_small_job_is_a_hub(small_world):
    tables = tables_from_frames(**{k: v for k, v in small_world.items() if k != "truth"})
    _, hubs, tokens = build_graph(tables, Config.default())
    config = Config.default()
    share_cap = config.caps.max_share * tables.n_accounts
    dev = tokens[tokens["token"].str.startswith("dev:")]
    assert ((dev["n_accounts"] > share_cap) == dev["is_hub"]).all()
    assert (dev["is_hub"] & (dev["n_accounts"] <= config.caps.device)).any()   # the share cap bound
    # other signals keep their absolute caps only
    ips = tokens[tokens["signal"] == "ip"]
    assert (ips["is_hub"] == (ips["n_accounts"] > config.caps.ip)).all()


def test_campus_nat_cgnat_and_popular_sdk_are_hubs_or_negligible(world_graph, small_world):
    tables, graph, hubs, tokens, truth = world_graph
    req = small_world["requests"].merge(truth, on="key_id")
    campus_ip = req.loc[req["pattern"] == "campus_nat", "ip"].value_counts().index[0]
    assert f"ip4:{campus_ip}" in set(hubs["token"])
    sdk = req.loc[req["pattern"] == "plain", "device_fingerprint"].value_counts().index[0]
    assert f"dev:{sdk}" in set(hubs["token"])
    assert not tokens["token"].str.startswith("ip4:100.").any()  # CGNAT range ignored
    # campus members are not tied together by anything strong
    pattern = truth.set_index("key_id").loc[graph.key_id, "pattern"].to_numpy()
    both = (pattern[graph.src] == "campus_nat") & (pattern[graph.dst] == "campus_nat") & \
        (graph.account[graph.src] != graph.account[graph.dst])
    assert graph.w["ip"][both].max(initial=0) < 0.2


def test_farm_card_ip_and_device_links_are_strong(world_graph):
    tables, graph, hubs, tokens, truth = world_graph
    farm = truth.set_index("key_id").loc[graph.key_id]
    naive = (farm["pattern"].to_numpy() == "naive")
    pair = naive[graph.src] & naive[graph.dst] & \
        (farm["farm_id"].to_numpy()[graph.src] == farm["farm_id"].to_numpy()[graph.dst]) & \
        (graph.account[graph.src] != graph.account[graph.dst])
    assert pair.any()
    assert np.median(graph.w["payment"][pair]) > 0.5
    assert np.median(graph.w["ip"][pair]) > 0.5
    assert np.median(graph.w["device"][pair]) > 0.2


def test_registry_runs_every_signal(small_world):
    tables = tables_from_frames(**{k: v for k, v in small_world.items() if k != "truth"})
    config = Config.default()
    for name, fn in registry().items():
        inc = fn(tables, config)
        assert list(inc.columns) == ["key", "token", "signal", "weight", "count", "first_seen", "last_seen"], name
        assert inc["weight"].between(0, 1, inclusive="right").all(), name
        assert not inc.duplicated(["key", "token"]).any(), name


def _ip_token_address(token: str):
    """The address or network a network token names (ip4:, ip4/24:, ip6…:, ipw:<addr>[/64]@<w>)."""
    text = token.split(":", 1)[1]
    if token.startswith("ipw:"):
        text = text.rsplit("@", 1)[0]
    return ipaddress.ip_network(text.split("/")[0] if "/64" in text else text, strict=False)


def test_no_network_token_names_a_cgnat_or_private_address(world_graph, small_world):
    tables, graph, hubs, tokens, truth = world_graph
    special = [ipaddress.ip_network(c) for c in ("100.64.0.0/10", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
    ip_tokens = tokens.loc[tokens["signal"] == "ip", "token"]
    assert len(ip_tokens) > 0
    named = [_ip_token_address(t) for t in ip_tokens]
    assert not any(n.version == 4 and any(n.subnet_of(s) for s in special) for n in named)
    # the generated mobile users really sit in CGNAT, and no two of their accounts link by IP
    cgnat_ips = small_world["requests"].merge(truth, on="key_id").query("pattern == 'cgnat_mobile'")["ip"]
    assert all(ipaddress.ip_address(ip) in special[0] for ip in cgnat_ips.head(200))
    pattern = truth.set_index("key_id").loc[graph.key_id, "pattern"].to_numpy()
    both = (pattern[graph.src] == "cgnat_mobile") & (pattern[graph.dst] == "cgnat_mobile") & \
        (graph.account[graph.src] != graph.account[graph.dst])
    assert graph.w["ip"][both].max(initial=0) == 0


def _farm_pairs(graph, truth, tactic):
    farm = truth.set_index("key_id").loc[graph.key_id]
    tac = farm["pattern"].to_numpy() == tactic
    fid = farm["farm_id"].to_numpy()
    pair = tac[graph.src] & tac[graph.dst] & (fid[graph.src] == fid[graph.dst]) & \
        (graph.account[graph.src] != graph.account[graph.dst])
    return pair


@pytest.mark.parametrize("tactic, signal, floor", [
    ("card_rotation", "ip", 0.5),      # new cards, same egress
    ("proxy_rotation", "device", 0.1),  # rotating IPs, same client
    ("ipv6_rotation", "ip", 0.03),     # a new /64 each, one /48: weak but present
    ("prompt_only", "prompt", 0.5),
    ("mixed_prompts", "prompt", 0.5),
])
def test_camouflaged_farm_accounts_link_through_what_they_still_share(world_graph, tactic, signal, floor):
    tables, graph, hubs, tokens, truth = world_graph
    pair = _farm_pairs(graph, truth, tactic)
    farm_accounts = truth.loc[truth["pattern"] == tactic].merge(
        tables.keys[["key_id", "account_id"]], on="key_id").groupby("farm_id")["account_id"].nunique()
    assert pair.sum() >= farm_accounts.sum() - len(farm_accounts)   # at least a spanning tree's worth
    assert np.median(graph.w[signal][pair]) > floor


def test_prompt_only_farms_share_nothing_but_prompts(world_graph):
    tables, graph, hubs, tokens, truth = world_graph
    pair = _farm_pairs(graph, truth, "prompt_only")
    assert pair.any()
    assert graph.w["payment"][pair].max() == 0 and graph.w["device"][pair].max() < 0.05
    assert np.median(graph.w["prompt"][pair]) > 0.5


@settings(max_examples=120, derandomize=True, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 6), st.sampled_from([0, 1, 5, -2, 2**40, 2**62]), st.integers(0, 50),
                          st.integers(1, 4), st.floats(0, 1)), max_size=40))
def test_pair_stats_equal_pandas_groupby(rows):
    # pair_stats replaces groupby([a, b], sort=True).agg(...) in the signals: same groups, order and values
    from keyfarm.signals import pair_stats
    frame = pd.DataFrame(rows, columns=["a", "b", "ts", "n", "tie"]).astype(
        {"a": np.int64, "b": np.int64, "ts": np.int64, "n": np.int64, "tie": np.float64})
    want = frame.groupby(["a", "b"], sort=True).agg(tie=("tie", "max"), count=("n", "sum"), first_seen=("ts", "min"),
                                                    last_seen=("ts", "max")).reset_index()
    got = pair_stats(frame["a"].to_numpy(), frame["b"].to_numpy(), frame["ts"].to_numpy(), names=("a", "b"),
                     count=frame["n"].to_numpy(), extra={"tie": frame["tie"].to_numpy()})
    pd.testing.assert_frame_equal(got, want, check_dtype=True)
    sizes = frame.groupby(["a", "b"], sort=True).size().to_numpy()
    np.testing.assert_array_equal(pair_stats(frame["a"], frame["b"], frame["ts"])["count"].to_numpy(), sizes)
