"""community.strong: a farm tied by a web of rare values, cut by CPM into its card groups, is one community."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from keyfarm.community import connected_components, leiden
from keyfarm.community.strong import merge_strong
from keyfarm.config import CommunityConfig
from keyfarm.pipeline import settle_communities


def card_groups(n_groups: int, size: int, w: float = 0.4) -> list[tuple[int, int, float]]:
    """n_groups cliques of `size` accounts on one card each."""
    return [(g * size + a, g * size + b, w)
            for g in range(n_groups) for a in range(size) for b in range(a + 1, size)]


def arrays(edges):
    e = np.array([(a, b) for a, b, _ in edges], np.int64)
    return e[:, 0], e[:, 1], np.array([w for _, _, w in edges])


def job_queue_world(rng):
    """8 card groups of 3 accounts (0..23), each tied to the others by more shared job texts (0.5,
    five sent per group) than by its card, and a crowd of 40 accounts (24..63) linked by weak ranges
    (0.05), a few of which reach the farm (as measured on a 1M world: a card group's card links
    weigh less than its job-text links to the rest of its farm)."""
    farm = card_groups(8, 3)
    for g in range(8):
        for h in rng.choice([x for x in range(8) if x != g], size=5, replace=False):
            farm.append((int(g * 3 + rng.integers(3)), int(h * 3 + rng.integers(3)), 0.5))
    crowd = [(24 + a, 24 + b, 0.05) for a in range(40) for b in range(a + 1, 40) if rng.random() < 0.3]
    stray = [(int(rng.integers(24)), int(24 + rng.integers(40)), 0.05) for _ in range(6)]
    return farm + crowd + stray


def test_a_farm_cut_into_card_groups_is_joined_and_the_crowd_is_not():
    rng = np.random.default_rng(3)
    src, dst, w = arrays(job_queue_world(rng))
    labels = np.array([a // 3 for a in range(24)] + [8 + (a % 2) for a in range(40)])   # where CPM cut
    out = merge_strong(src, dst, w, 64, labels, threshold=0.3, max_accounts=5000)
    assert len(set(out[:24])) == 1
    assert set(out[24:]).isdisjoint(out[:24])
    assert len(set(out[24:])) == 2                      # the crowd keeps CPM's two pieces


def test_households_tied_by_one_strong_link_stay_apart():
    # two families on their own cards, one address shared once between them: each piece keeps its
    # links inside it, so it is apart enough already
    edges = card_groups(2, 4, w=1.0) + [(0, 4, 0.5)]
    src, dst, w = arrays(edges)
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert merge_strong(src, dst, w, 8, labels, threshold=0.3, max_accounts=5000).tolist() == labels.tolist()


def test_a_web_tied_more_to_the_outside_than_to_itself_stays_cut():
    # the same farm web, but every account also has heavy weak links outside (a NAT's crowd)
    rng = np.random.default_rng(4)
    edges = job_queue_world(rng) + [(a, 24 + b, 0.2) for a in range(24) for b in range(40)]
    src, dst, w = arrays(edges)
    labels = np.array([a // 3 for a in range(24)] + [8] * 40)
    out = merge_strong(src, dst, w, 64, labels, threshold=0.3, max_accounts=5000)
    assert len(set(out[:24])) == 8


def test_too_many_accounts_or_threshold_zero_change_nothing():
    rng = np.random.default_rng(3)
    src, dst, w = arrays(job_queue_world(rng))
    labels = np.array([a // 3 for a in range(24)] + [8 + (a % 2) for a in range(40)])
    for kwargs in ({"threshold": 0.3, "max_accounts": 23}, {"threshold": 0.0, "max_accounts": 5000}):
        out = merge_strong(src, dst, w, 64, labels, **kwargs)
        assert len(set(out[:24])) == 8


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_settled_per_component_equals_the_whole_graph(seed):
    """settle_communities reads only a node's component: run per component (nodes renumbered in
    ascending order, as the Spark engine runs it) it gives the same partition as on the whole graph."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    m = int(rng.integers(1, 3 * n))
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    w = rng.choice([0.05, 0.1, 0.5, 1.0, 2.0], src.size)
    cfg = CommunityConfig(strong_max_accounts=int(rng.integers(2, 40)))
    labels = leiden(src, dst, w, n, objective="cpm", resolution=0.6, seed=0)
    whole = settle_communities(src, dst, w, n, labels, cfg)
    comp = connected_components(src, dst, n)
    for c in np.unique(comp):
        nodes = np.flatnonzero(comp == c)
        e = np.isin(src, nodes)
        part = settle_communities(np.searchsorted(nodes, src[e]), np.searchsorted(nodes, dst[e]), w[e],
                                  nodes.size, labels[nodes], cfg)
        pairs = set(zip(part, whole[nodes]))
        assert len(pairs) == len(set(part)) == len(set(whole[nodes]))


def test_households_a_proxy_farm_borrowed_addresses_from_stay_out_of_it():
    """A proxy farm's dense core (CPM found it), and households whose home address it used: each
    household is loose (tied more to the farm than inside), but loose pieces join only each other,
    and the households meet only the core, so nothing changes."""
    core = [(a, b, 0.5) for a in range(30) for b in range(a + 1, 30) if (a * 7 + b) % 3 == 0]
    homes = []
    for h in range(5):
        x, y = 30 + 2 * h, 31 + 2 * h
        homes += [(x, y, 0.5)] + [(m, a, 0.4) for m in (x, y) for a in (3 * h, 3 * h + 1, 3 * h + 2)]
    src, dst, w = arrays(core + homes)
    labels = np.array([0] * 30 + [1 + h for h in range(5) for _ in range(2)])
    out = merge_strong(src, dst, w, 40, labels, threshold=0.3, max_accounts=5000)
    assert out.tolist() == labels.tolist()
