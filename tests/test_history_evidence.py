"""Remembered evidence, returning accounts, benign labels and the warm start, on small tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from keyfarm.community import CommunityInputError, leiden
from keyfarm.history.evidence import (join_returning, keep_staying, returning_matches, staying, token_digest,
                                      tying_tokens)
from keyfarm.history.labels import detach_benign


def _tokens(rows):
    return pd.DataFrame(rows, columns=["account", "kind", "token"])


def test_values_tie_a_cluster_only_when_mostly_its_own():
    tokens = _tokens([(0, "pay", "pay:c1"), (1, "pay", "pay:c1"),              # the farm's card
                      (0, "ip4", "ip4:nat"), (1, "ip4", "ip4:nat"), (2, "ip4", "ip4:nat"),
                      (3, "ip4", "ip4:nat"), (4, "ip4", "ip4:nat"),             # a NAT of five
                      (1, "pay", "pay:own")])                                   # a card of one account
    tie = tying_tokens(tokens, np.array([0, 0, 1, 2, 3]))
    assert set(tie["token"]) == set(token_digest(np.array(["pay:c1", "pay:own"], dtype=object)))
    assert not tie["token"].str.contains(":").any()


def _remembered(rows):
    return pd.DataFrame(rows, columns=["cluster_id", "account_id", "kind", "token"]).assign(
        token=lambda f: token_digest(f["token"].to_numpy(dtype=object)))


def test_a_card_or_two_values_of_a_remembered_farm_make_an_account_return():
    remembered = _remembered([(7, "old1", "pay", "pay:c1"), (7, "old1", "ip4", "ip4:a"),
                              (7, "old2", "ip4", "ip4:b"), (7, "old2", "ua", "ua:x")])
    tokens = _tokens([(0, "pay", "pay:c1"),                       # the card: returns
                      (1, "ip4", "ip4:a"), (1, "ip4", "ip4:b"),   # two values: returns
                      (2, "ip4", "ip4:a"),                        # one address: does not
                      (3, "pay", "pay:c1")])                      # an old account itself: does not
    ids = np.array(["new0", "new1", "new2", "old1"], dtype=object)
    m = returning_matches(tokens, ids, remembered)
    assert m["account"].tolist() == [0, 1]
    assert set(m["farm_id"]) == {7}


def test_a_farm_member_stays_only_on_the_farms_rare_evidence_shared_today():
    remembered = _remembered([(7, "f0", "pay", "pay:c1"), (7, "f1", "pay", "pay:c1"), (7, "f2", "pay", "pay:c1"),
                              (7, "f2", "ip4", "ip4:a"), (7, "f3", "ip4", "ip4:a"), (7, "f3", "ip4", "ip4:b"),
                              (7, "f4", "ip4", "ip4:b"), (7, "f4", "ip4", "ip4:d"), (7, "f5", "dev", "dev:z")])
    tokens = _tokens([(0, "pay", "pay:c1"), (1, "pay", "pay:c1"), (2, "pay", "pay:c1"),   # the card, today
                      (2, "ip4", "ip4:a"),
                      (3, "ip4", "ip4:a"), (3, "ip4", "ip4:b"), (4, "ip4", "ip4:b"),     # f3: two values
                      (5, "dev", "dev:z"),                                               # f5: nobody shares it
                      (6, "pay", "pay:c1")])                                             # a stranger on the card
    ids = np.array(["f0", "f1", "f2", "f3", "f4", "f5", "x"], dtype=object)
    stay = staying(tokens, ids, remembered)
    # f0..f2 share the card; f3 shares two of the farm's addresses (with f2 and f4); f4 only one
    # value (ip4:b; its ip4:d is not seen today); f5's device is held by no other farm account
    # today; the stranger x was never the farm's
    assert stay["account"].tolist() == [0, 1, 2, 3]
    labels = np.array([0, 0, 1, 2, 3, 4, 5])            # today: f2 and f3 drifted off (f2 in a crowd with f3)
    out = keep_staying(labels, stay)
    assert out[[0, 1, 2, 3]].tolist() == [0, 0, 0, 0] and out[4] == 3 and out[6] == 5
    # a day on which the communities already keep the farm together changes nothing
    assert np.array_equal(keep_staying(out, stay), out)


def test_a_member_of_another_remembered_farm_is_not_pulled_across():
    stay = pd.DataFrame({"account": [0, 1, 2, 3, 4, 5], "group": [7, 7, 7, 9, 9, 9]})
    labels = np.array([0, 0, 1, 1, 1, 2])               # account 2 (farm 7) sits in farm 9's cluster
    out = keep_staying(labels, stay)
    assert out.tolist() == [0, 0, 1, 1, 1, 1]           # 5 joins farm 9; 2 stays where farm 9 is


def test_returning_accounts_join_one_cluster_without_dragging_a_crowd():
    labels = np.array([0, 0, 1, 1, 1, 1, 2, 2])        # 0..1 a cluster, 2..5 a crowd, 6..7 a pair
    matches = pd.DataFrame({"account": [0, 2, 6, 7], "group": 9})
    present = pd.DataFrame({"account": np.zeros(0, np.int64), "group": np.zeros(0, np.int64)})
    out = join_returning(labels, matches, present)
    joined = out[[0, 1, 2, 6, 7]]
    assert len(set(joined.tolist())) == 1              # whole cluster 0 and pair 2 (all theirs), account 2
    assert len(set(out[[3, 4, 5]].tolist())) == 1 and out[3] != out[0]


def test_a_cluster_of_new_accounts_each_on_one_remembered_exit_joins_its_farm_whole():
    remembered = _remembered([(7, "old1", "ip4", "ip4:a"), (7, "old2", "ip4", "ip4:b"), (7, "old3", "ip4", "ip4:c")])
    tokens = _tokens([(0, "ip4", "ip4:a"), (0, "ip4", "ip4:b"),     # two exits: returns
                      (1, "ip4", "ip4:b"), (2, "ip4", "ip4:c"),     # one exit each: touch only
                      (3, "ip4", "ip4:x"),                          # nothing of the farm's
                      (4, "ip4", "ip4:c")])                         # one exit, in a cluster of strangers
    ids = np.array(["n0", "n1", "n2", "n3", "n4", "s5", "s6"], dtype=object)
    matches = returning_matches(tokens, ids, remembered)
    touching = returning_matches(tokens, ids, remembered, touching=True)
    assert matches["account"].tolist() == [0]
    assert touching["account"].tolist() == [1, 2, 4]
    labels = np.array([0, 0, 0, 0, 1, 1, 1])    # today: n0..n3 one cluster; n4 with two strangers
    present = pd.DataFrame({"account": np.zeros(0, np.int64), "group": np.zeros(0, np.int64)})
    out = join_returning(labels, matches, present, touching)
    assert len(set(out[[0, 1, 2, 3]].tolist())) == 1 and out[0] != labels[0]   # 3 of 4 touch it: whole
    assert out[4:].tolist() == [1, 1, 1]                                       # one exit alone moves nothing
    # counted without the touching accounts, only n0 would qualify: it stays where today put it
    assert join_returning(labels, matches, present).tolist() == labels.tolist()


def test_a_farms_own_devices_and_exits_are_remembered_not_a_benign_clusters():
    tokens = _tokens([(0, "dev", "dev:d0"), (1, "dev", "dev:d1"), (0, "ip4", "ip4:e0"),   # farm 0's own
                      (0, "ua", "ua:u0"),                                               # UA: not a kind kept alone
                      (2, "dev", "dev:d2"), (3, "ip4", "ip4:e3"),                       # benign cluster 1's own
                      (1, "dev", "dev:pop"), (3, "dev", "dev:pop"), (4, "dev", "dev:pop")])   # on three clusters
    label = np.array([0, 0, 1, 1, 2, 2])
    got = set(tying_tokens(tokens, label, own_labels=[0])["token"])
    assert got == set(token_digest(np.array(["dev:d0", "dev:d1", "ip4:e0"], dtype=object)))
    assert len(tying_tokens(tokens, label)) == 0


def test_benign_label_detaches_only_on_the_same_evidence():
    labels = np.array([0, 0, 1, 1, 1])
    ids = np.array(["a", "b", "c", "d", "e"], dtype=object)
    judged = pd.DataFrame({"account_id": ["a", "c"], "label": ["benign", "benign"]})
    peers = pd.DataFrame({"account_id": ["a", "c"], "peer": ["b", "d"]})     # c was judged with d only
    out, detached = detach_benign(labels, ids, judged, peers)
    assert detached.tolist() == [0]                    # a: same company as when judged
    assert out[0] not in out[1:]
    assert out[2] == out[3] == out[4]                  # c is now tied to e too: judged again


def test_leiden_warm_start_keeps_a_converged_partition_and_is_deterministic():
    src = np.array([0, 1, 0, 3, 4, 3, 2])
    dst = np.array([1, 2, 2, 4, 5, 5, 3])
    cold = leiden(src, dst, None, 6, objective="cpm", resolution=0.2, seed=1)
    warm = leiden(src, dst, None, 6, objective="cpm", resolution=0.2, seed=1, initial_membership=cold)
    assert warm.tolist() == cold.tolist()
    start = np.array([0, 0, 1, 1, 1, 1])
    a = leiden(src, dst, None, 6, objective="cpm", resolution=0.2, seed=3, initial_membership=start)
    b = leiden(src, dst, None, 6, objective="cpm", resolution=0.2, seed=3, initial_membership=start)
    assert a.tolist() == b.tolist()
    with pytest.raises(CommunityInputError):
        leiden(src, dst, None, 6, initial_membership=[0, 1])


def test_a_label_given_now_beats_a_carried_one_and_cluster_labels_need_the_previous_run():
    from keyfarm.errors import KeyfarmInputError
    from keyfarm.history.labels import carry_forward, resolve_labels

    carried = pd.DataFrame({"account_id": ["a", "b"], "label": ["benign", "benign"], "source": ["analyst"] * 2,
                            "ts": ["2026-11-20T00:00:00+00:00"] * 2}, dtype=object)
    given = resolve_labels(pd.DataFrame({"account_id": ["a"], "label": ["farm"]}), None)
    out = carry_forward(carried, given).set_index("account_id")["label"]
    assert out.to_dict() == {"a": "farm", "b": "benign"}
    with pytest.raises(KeyfarmInputError, match="--previous"):
        resolve_labels(pd.DataFrame({"cluster_id": [3], "label": ["benign"]}), None)
    prev = pd.DataFrame({"account_id": ["x", "y", "z"], "cluster_id": [3, 3, 4]})
    assert sorted(resolve_labels(pd.DataFrame({"cluster_id": [3], "label": ["benign"]}), prev)["account_id"]) == ["x", "y"]


def test_the_partition_closer_to_yesterday_is_kept_per_component_ties_keep_the_cold_start():
    from keyfarm.history.warmstart import closer_by_component, component_agreement, reproduces_previous

    previous = np.array([5, 5, 5, 8, 8, -1, 7, 7, 7])
    component = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1])
    same = np.array([0, 0, 0, 1, 1, 2, 3, 3, 4])         # yesterday's in component 0, 7 split in 1
    merged = np.array([0, 0, 0, 0, 0, 1, 2, 2, 2])       # 5 and 8 merged in 0, yesterday's in 1
    assert component_agreement(previous, same, component).tolist() == [5 + 5, 3 + 2]
    assert component_agreement(previous, merged, component).tolist() == [3 + 5, 3 + 3]
    assert reproduces_previous(previous, same, component).tolist() == [True, False]
    assert reproduces_previous(previous, merged, component).tolist() == [False, True]
    chosen = closer_by_component(previous, merged, same, component)
    # component 0 from `same` (renumbered after merged's labels), component 1 from `merged`
    assert chosen.tolist() == [3, 3, 3, 4, 4, 5, 2, 2, 2]
    assert closer_by_component(previous, same, same.copy(), component).tolist() == same.tolist()
    # a previous community split across two components today is cut at the border, not counted twice
    assert component_agreement(np.array([1, 1, 1, 1]), np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1])).tolist() \
        == [4, 4]


def test_the_warm_run_skips_components_the_cold_run_gives_as_yesterday():
    from keyfarm.history.warmstart import warm_where_changed

    src, dst, w = np.array([0, 1, 3, 4]), np.array([1, 2, 4, 5]), np.ones(4)
    component = np.array([0, 0, 0, 1, 1, 1])
    cold = np.array([0, 0, 0, 1, 1, 1])
    seen = []

    def run(s, d, ww, start, comp):
        seen.append(sorted(set(s.tolist()) | set(d.tolist())))
        return np.array([0, 1, 1, 2, 2, 3])[:start.size]     # what a warm start returns

    def settle(s, d, ww, labels):
        return labels

    # component 0 is yesterday's already; component 1 was one community yesterday too: nothing runs
    assert warm_where_changed(src, dst, w, 6, np.array([9, 9, 9, 4, 4, 4]), component, cold, 0.0, run, settle) \
        .tolist() == cold.tolist()
    assert seen == []
    # yesterday component 1 was split as {3, 4} {5}: only component 1 runs warm, and its warm labels win
    out = warm_where_changed(src, dst, w, 6, np.array([9, 9, 9, 4, 4, 6]), component, cold, 0.0, run, settle)
    assert seen == [[3, 4, 5]]
    assert out[:3].tolist() == [0, 0, 0] and out[3] == out[4] != out[5] and out[5] not in out[:3]


def test_memory_links_pair_every_two_accounts_of_a_previous_community_inside_one_component():
    import itertools

    from keyfarm.history.warmstart import memory_links

    previous = np.array([0, 0, 1, -1, 0, 1, 2, 0, 1])
    component = np.array([0, 0, 0, 0, 1, 0, 0, 0, 0])      # account 4 is in another component today
    src, dst, weight = memory_links(previous, component, 0.1)
    expected = [(a, b) for a, b in itertools.combinations(range(9), 2)
                if previous[a] >= 0 and previous[a] == previous[b] and component[a] == component[b]]
    assert sorted(zip(src.tolist(), dst.tolist())) == expected
    assert np.all(weight == 0.1)
    assert memory_links(previous, component, 0.0)[0].size == 0


def _crowd(seed: int, n: int = 200, p: float = 0.2):
    """A crowd whose accounts link at random (a cloud region): CPM at 0.2 cuts it into ~16 pieces."""
    rng = np.random.default_rng(seed)
    iu = np.triu_indices(n, 1)
    mask = rng.random(iu[0].size) < p
    return iu[0][mask], iu[1][mask], rng.uniform(0.5, 1.0, int(mask.sum())), rng


@pytest.mark.parametrize("seed", [0, 1])
def test_hysteresis_keeps_a_crowd_cut_as_yesterday_when_a_tenth_of_its_links_change(seed):
    """Without hysteresis a crowd loses a tenth of its links (the addresses of the day) and is cut
    into other pieces; with community.hysteresis = 0.5 most pieces stay, each still connected."""
    from types import SimpleNamespace

    from keyfarm.community import connected_components
    from keyfarm.community.bycomponent import communities_by_component
    from keyfarm.history.warmstart import closer_by_component, warm_partition
    from keyfarm.pipeline import component_leiden

    n = 200
    src, dst, w, rng = _crowd(seed, n)
    detect = component_leiden(SimpleNamespace(resolution=0.2, objective="cpm", n_iterations=2), 0)
    yesterday = communities_by_component(src, dst, w, n, detect)
    keep = rng.random(src.size) > 0.1
    src, dst, w = src[keep], dst[keep], w[keep]
    component = connected_components(src, dst, n)
    cold = communities_by_component(src, dst, w, n, detect, component=component)

    def pieces(m):
        return {frozenset(np.flatnonzero(m == c)) for c in np.unique(m) if (m == c).sum() > 1}

    def run(s, d, ww, start):
        return communities_by_component(s, d, ww, n, detect, start, component=component)
    kept = {}
    for h in (0.0, 0.5):
        today = closer_by_component(yesterday, cold, warm_partition(src, dst, w, n, yesterday, component, h * 0.2, run),
                                    component)
        kept[h] = len(pieces(yesterday) & pieces(today)) / len(pieces(yesterday))
        for piece in pieces(today):                     # memory links alone never hold a cluster together
            inside = np.isin(src, list(piece)) & np.isin(dst, list(piece))
            assert connected_components(np.searchsorted(sorted(piece), src[inside]),
                                        np.searchsorted(sorted(piece), dst[inside]), len(piece)).max() == 0
    assert kept[0.0] < 0.25 and kept[0.5] > 0.5, kept


def test_hysteresis_is_a_share_of_resolution_below_one():
    from keyfarm.config import CommunityConfig
    from keyfarm.errors import KeyfarmConfigError

    assert CommunityConfig().hysteresis == 0.0
    for bad in (-0.1, 1.0):
        with pytest.raises(KeyfarmConfigError, match="community.hysteresis"):
            CommunityConfig(hysteresis=bad)


def _reference_account_tokens(incidences, account):
    """The plain pandas statement of account_tokens: split every token, keep remembered kinds."""
    from keyfarm.history.evidence import REMEMBERED_KINDS

    parts = []
    for frame in incidences:
        token = frame["token"].to_numpy(dtype=object)
        kind = pd.Series(token).str.split(":", n=1).str[0].to_numpy(dtype=object)
        keep = np.isin(kind, REMEMBERED_KINDS)
        parts.append(pd.DataFrame({"account": account[frame["key"].to_numpy(np.int64)[keep]],
                                   "kind": kind[keep], "token": token[keep]}))
    return pd.concat(parts, ignore_index=True).drop_duplicates(["account", "token"]) \
        .sort_values(["account", "token"], kind="stable").reset_index(drop=True)


def _random_incidences(rng, n_keys=60):
    kinds = {"payment": ["pay"], "device": ["dev", "ua"], "ip": ["ip4", "ip4/24", "ip6", "ip6/64", "ip6/48"],
             "prompt": ["pdup", "lsh:3"], "timing": ["slot", "tset"]}
    frames = []
    for signal, prefixes in kinds.items():
        n = int(rng.integers(1, 200))
        token = [f"{prefixes[i % len(prefixes)]}:{v}" for i, v in enumerate(rng.integers(0, 25, n))]
        frames.append(pd.DataFrame({"key": rng.integers(0, n_keys, n), "token": np.array(token, dtype=object),
                                    "signal": np.full(n, signal, dtype=object)}))
    return frames


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_account_tokens_and_ties_over_codes_equal_the_plain_pandas_statement(seed):
    from keyfarm.history.evidence import TIE_SHARE, account_tokens

    rng = np.random.default_rng(seed)
    account = rng.integers(0, 30, 60)
    frames = _random_incidences(rng)
    got = account_tokens(frames, account)
    assert (np.diff(got["account"].to_numpy()) >= 0).all()
    got = got.assign(token=got["token"].astype(object), kind=got["kind"].astype(object)) \
        .sort_values(["account", "token"], kind="stable").reset_index(drop=True)
    want = _reference_account_tokens(frames, account)
    assert got["account"].tolist() == want["account"].tolist()
    assert got["token"].tolist() == want["token"].tolist()
    assert got["kind"].tolist() == want["kind"].tolist()
    label = rng.integers(-1, 6, 30)
    tie = tying_tokens(got, label)
    # the groupby statement of a tie: 2+ of the cluster's accounts and half of all holders, or a card of its own
    frame = want.assign(label=label[want["account"].to_numpy()])
    total = frame.groupby("token")["account"].transform("size")
    inside = frame.groupby(["label", "token"])["account"].transform("size")
    keep = ((inside >= 2) & (inside >= TIE_SHARE * total)) | ((frame["kind"] == "pay") & (inside == total))
    ref = frame[keep.to_numpy()]
    assert tie["label"].tolist() == ref["label"].tolist()
    assert tie["account"].tolist() == ref["account"].tolist()
    assert tie["kind"].tolist() == ref["kind"].tolist()
    assert tie["token"].tolist() == token_digest(ref["token"].to_numpy(dtype=object)).tolist()
    assert len(ref) > 0
