"""Projection against brute-force pair enumeration; weighting and hubs."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from keyfarm.config import Config
from keyfarm.graph import SIGNALS, project, weigh_tokens
from keyfarm.graph.projection import QUANTUM


@st.composite
def incidences(draw):
    n_keys = draw(st.integers(1, 12))
    n_tokens = draw(st.integers(0, 10))
    token_keys, ties = [], []
    for _ in range(n_tokens):
        keys = sorted(draw(st.sets(st.integers(0, n_keys - 1), max_size=n_keys)))
        token_keys.append(keys)
        ties.append([draw(st.floats(0.01, 1.0)) for _ in keys])
    weights = [draw(st.floats(0.0, 2.0)) for _ in range(n_tokens)]
    signals = [draw(st.integers(0, len(SIGNALS) - 1)) for _ in range(n_tokens)]
    return n_keys, token_keys, ties, weights, signals


@settings(max_examples=200, deadline=None)
@given(incidences())
def test_projection_equals_brute_force_pair_enumeration(inc):
    n_keys, token_keys, ties, weights, signals = inc
    expected: dict[tuple[int, int], np.ndarray] = {}
    for keys, tie, w, s in zip(token_keys, ties, weights, signals):
        tie_of = dict(zip(keys, tie))
        for a, b in itertools.combinations(keys, 2):
            c = np.floor(w * min(tie_of[a], tie_of[b]) * QUANTUM + 0.5) / QUANTUM
            expected.setdefault((a, b), np.zeros(len(SIGNALS)))[s] += c
    indptr = np.cumsum([0] + [len(k) for k in token_keys])
    flat_keys = np.array([k for keys in token_keys for k in keys], np.int64)
    flat_ties = np.array([t for tie in ties for t in tie], np.float64)
    src, dst, w, best = project(indptr, flat_keys, flat_ties, np.array(weights, np.float64),
                                np.array(signals, np.int64), n_keys, len(SIGNALS))
    got = {(int(a), int(b)): w[i] for i, (a, b) in enumerate(zip(src, dst))}
    assert set(got) == set(expected)
    for pair, value in expected.items():
        np.testing.assert_array_equal(got[pair], value)  # exact: contributions are quantised
    assert np.all(src < dst)
    assert np.all(np.diff(src * n_keys + dst) > 0)  # sorted, no duplicate pairs
    # the strongest token of each present signal is one the pair shares
    for i, (a, b) in enumerate(zip(src, dst)):
        for s in range(len(SIGNALS)):
            t = best[i, s]
            if w[i, s] > 0:
                assert t >= 0 and a in token_keys[t] and b in token_keys[t] and signals[t] == s


def test_summation_order_does_not_change_weights():
    rng = np.random.default_rng(0)
    token_keys = [sorted(rng.choice(30, size=rng.integers(2, 10), replace=False)) for _ in range(40)]
    ties = [rng.uniform(0.1, 1, size=len(k)) for k in token_keys]
    weights = rng.uniform(0, 1, size=40)

    def run(order):
        tk = [token_keys[i] for i in order]
        indptr = np.cumsum([0] + [len(k) for k in tk])
        return project(indptr, np.concatenate(tk).astype(np.int64),
                       np.concatenate([ties[i] for i in order]), weights[order],
                       np.zeros(40, np.int64), 30, len(SIGNALS))

    a, b = run(np.arange(40)), run(rng.permutation(40))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[2], b[2])  # bit-identical sums in another token order


def test_weight_falls_with_account_degree_and_hubs_are_capped():
    config = Config.default()
    tokens = pd.DataFrame({"token": ["pay:a", "pay:b", "pay:c", "ip4:1.2.3.4", "acct:x"],
                           "n_accounts": [2, 10, 51, 41, 1], "n_keys": [2, 10, 60, 41, 3]})
    out = weigh_tokens(tokens, 10_000, config).set_index("token")
    assert out.loc["pay:a", "weight"] > out.loc["pay:b", "weight"] > out.loc["pay:c", "weight"] > 0
    ref = config.weights.reference_accounts
    assert out.loc["pay:a", "weight"] == pytest.approx(np.log(ref / 2) / np.log(ref))
    assert bool(out.loc["pay:c", "is_hub"]) and bool(out.loc["ip4:1.2.3.4", "is_hub"])
    assert not out.loc["pay:c", "projected"]
    assert out.loc["acct:x", "weight"] == 1.0 and bool(out.loc["acct:x", "projected"])


def test_token_weights_do_not_move_with_the_jobs_size():
    config = Config.default()
    tokens = pd.DataFrame({"token": ["pay:a", "ip4:1.2.3.4", "dev:x", "lsh:1:ab", "slot:99"],
                           "n_accounts": [2, 7, 30, 12, 40], "n_keys": [2, 9, 30, 20, 45]})
    small = weigh_tokens(tokens, 50_000, config)["weight"].to_numpy()
    large = weigh_tokens(tokens, 1_000_000, config)["weight"].to_numpy()
    np.testing.assert_array_equal(small, large)


def test_evidence_of_one_signal_saturates_below_its_cap():
    from keyfarm.graph.weighting import saturate

    config = Config.default()
    one_card = saturate({"payment": np.array([weigh_tokens(pd.DataFrame(
        {"token": ["pay:a"], "n_accounts": [2], "n_keys": [2]}), 10, config)["weight"].iloc[0]])}, config)
    # 300 public benchmark prompts shared verbatim by two labs (each prompt on 20 accounts)
    bench = weigh_tokens(pd.DataFrame({"token": [f"pdup:{i:04x}" for i in range(300)],
                                       "n_accounts": 20, "n_keys": 20}), 10, config)["weight"].sum()
    prompts = saturate({"prompt": np.array([1.0, 10.0, bench])}, config)["prompt"]
    assert np.all(np.diff(prompts) > 0) and prompts[-1] <= config.saturation.prompt
    assert prompts[-1] < one_card["payment"][0]
    assert prompts[1] < 10 * prompts[0]   # sub-linear in the number of shared tokens


def test_unknown_token_kind_is_an_error():
    tokens = pd.DataFrame({"token": ["zzz:1"], "n_accounts": [2], "n_keys": [2]})
    with pytest.raises(ValueError, match="unknown token kind 'zzz'"):
        weigh_tokens(tokens, 100, Config.default())


def test_parallel_projection_equals_serial_bit_for_bit():
    rng = np.random.default_rng(7)
    n_keys, n_tokens = 3000, 2500
    sizes = rng.integers(1, 12, n_tokens)
    t_keys = np.concatenate([np.sort(rng.choice(n_keys, s, replace=False)) for s in sizes]).astype(np.int64)
    t_indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    t_tie = rng.uniform(0.05, 1.0, t_keys.size)
    weight = rng.uniform(0.0, 1.0, n_tokens)
    signal = rng.integers(0, len(SIGNALS), n_tokens)
    serial = project(t_indptr, t_keys, t_tie, weight, signal, n_keys, len(SIGNALS), parallel=False)
    parallel = project(t_indptr, t_keys, t_tie, weight, signal, n_keys, len(SIGNALS), parallel=True)
    assert serial[0].size > 10_000
    for a, b in zip(serial, parallel):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def _many_keys_world(n_keys_a: int):
    """Account A with n_keys_a keys and account B with one key share a card and an address."""
    from keyfarm.io import tables_from_frames

    ids = [f"ka{i:05d}" for i in range(n_keys_a)] + ["kb"]
    keys = pd.DataFrame({"key_id": ids, "account_id": ["A"] * n_keys_a + ["B"],
                         "created_at": "2026-10-01"})
    payments = pd.DataFrame({"account_id": ["A", "B"], "payment_fingerprint": ["card1", "card1"]})
    requests = pd.DataFrame({"key_id": ids, "ts": "2026-11-01T10:00Z", "ip": "203.0.113.7"})
    return tables_from_frames(keys, payments=payments, requests=requests)


def test_an_account_with_5000_keys_adds_no_more_edges_than_one_with_5():
    from keyfarm.graph import build_graph

    small, _, _ = build_graph(_many_keys_world(5), Config.default())
    large, _, _ = build_graph(_many_keys_world(5000), Config.default())
    assert small.n_edges == large.n_edges == 1
    np.testing.assert_array_equal(small.weight, large.weight)
    # the one edge joins the two accounts' representative keys
    assert set(large.key_id[[large.src[0], large.dst[0]]]) == {"ka00000", "kb"}


def test_two_labs_running_one_public_benchmark_are_tied_below_one_shared_card():
    from keyfarm.graph import build_graph
    from keyfarm.io import tables_from_frames

    rng = np.random.default_rng(4)
    words = np.array("alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega".split())
    bench = [" ".join(rng.choice(words, 12)) + f" question {i}" for i in range(300)]
    accounts = [f"lab{i}" for i in range(20)]           # twenty labs' accounts run the benchmark
    keys = pd.DataFrame({"key_id": [f"k{i:02d}" for i in range(22)], "account_id": accounts + ["c1", "c2"],
                         "created_at": "2026-10-01"})
    rows = [(f"k{i:02d}", f"10.0.{i}.{j % 200}", p) for i in range(20) for j, p in enumerate(bench)]
    rows += [("k20", "10.9.0.1", "hello there"), ("k21", "10.9.0.2", "something else entirely")]
    requests = pd.DataFrame(rows, columns=["key_id", "ip", "prompt"]).assign(ts="2026-11-01T10:00Z")
    payments = pd.DataFrame({"account_id": ["c1", "c2"], "payment_fingerprint": ["card", "card"]})
    graph, _, _ = build_graph(tables_from_frames(keys, payments=payments, requests=requests), Config.default())
    ids = graph.key_id
    card = graph.weight[(ids[graph.src] == "k20") & (ids[graph.dst] == "k21")]
    labs = (np.char.startswith(ids[graph.src].astype(str), "k0") | np.char.startswith(ids[graph.src].astype(str), "k1")) \
        & (graph.w["prompt"] > 0)
    assert card.size == 1 and labs.sum() >= 190          # every pair of labs shares all 300 prompts
    assert graph.weight[labs].max() < card[0]
