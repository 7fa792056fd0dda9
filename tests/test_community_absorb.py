"""community.absorb: accounts CPM left outside a big sparse farm they are tied to as its members are."""
import numpy as np
import pytest

from keyfarm.community import connected_components
from keyfarm.community.absorb import absorb


def sparse_farm(n: int, links: int, rng) -> list[tuple[int, int, float]]:
    """n accounts, each linked to `links` random others with weight 0.5 (a proxy pool's co-use)."""
    edges = set()
    for a in range(n):
        for b in rng.choice(n, size=links, replace=False):
            if a != b:
                edges.add((min(a, b), max(a, b)))
    return [(a, b, 0.5) for a, b in sorted(edges)]


def arrays(edges):
    e = np.array([(a, b) for a, b, _ in edges], np.int64)
    return e[:, 0], e[:, 1], np.array([w for _, _, w in edges])


def test_an_account_tied_like_a_member_joins_the_farm_and_the_home_users_stay_apart():
    rng = np.random.default_rng(1)
    farm = sparse_farm(60, 12, rng)                       # nodes 0..59
    v, h1, h2 = 60, 61, 62                               # a farm account and the two home users
    extra = [(v, int(b), 0.5) for b in rng.choice(60, size=20, replace=False)]
    extra += [(v, h1, 1.5), (v, h2, 1.5), (h1, h2, 2.0)]   # its borrowed home address: a dense trio
    src, dst, w = arrays(farm + extra)
    labels = np.array([0] * 60 + [1, 1, 1])              # where CPM leaves them
    out = absorb(src, dst, w, 63, labels)
    assert out[v] == out[0]
    assert out[h1] == out[h2] != out[0]
    assert len(set(out[:60])) == 1


def test_an_account_on_a_farm_card_joins_the_farm_and_a_borrowed_address_does_not():
    # a dense farm; account c shares one of its cards with a member (a control link), account h
    # one of its exit addresses (a plain link of the same weight): neither is tied to the farm as a
    # typical member is, only the card is evidence of the farm's actor
    farm = [(a, b, 3.0) for a in range(10) for b in range(a + 1, 10)]
    c, h, p = 10, 11, 12                                   # p: the pair partner of c on a second card
    src, dst, w = arrays(farm + [(c, 0, 0.8), (c, 1, 0.5), (h, 2, 0.8), (h, 3, 0.5), (c, p, 0.6)])
    labels = np.array([0] * 10 + [1, 2, 1])
    control = (np.array([c, c]), np.array([0, p]), np.array([0.8, 0.6]))   # cards: c-0 and c-p
    plain = absorb(src, dst, w, 13, labels)
    assert plain[c] != plain[0] and plain[h] != plain[0]   # the median rule keeps both out
    out = absorb(src, dst, w, 13, labels, control=control, control_min=0.3)
    assert out[c] == out[0]                                # its card with member 0
    assert out[h] != out[0]                                # an address is no control evidence
    # p shares a card with c only, and c is now the farm's: p follows in the next round
    assert out[p] == out[0]
    # the waiver still needs c tied to the farm twice as much as to its own piece
    heavy = absorb(src, dst, np.where((src == c) & (dst == p), 1.0, w), 13, labels, control=control,
                   control_min=0.3)
    assert heavy[c] != heavy[0]


def test_a_stray_edge_moves_nobody():
    rng = np.random.default_rng(2)
    farm = [(a, b, 3.0) for a in range(10) for b in range(a + 1, 10)]           # a tight farm
    campus = [(a + 10, b + 10, w) for a, b, w in sparse_farm(40, 6, rng)]        # a campus crowd
    src, dst, w = arrays(farm + campus + [(3, 25, 0.4)])
    labels = np.array([0] * 10 + [1] * 40)
    out = absorb(src, dst, w, 50, labels)
    assert (out == labels).all()


def test_share_zero_changes_nothing_but_the_numbering():
    src, dst, w = arrays([(0, 1, 1.0), (1, 2, 5.0), (2, 3, 1.0)])
    labels = np.array([7, 7, 3, 3])
    assert absorb(src, dst, w, 4, labels, share=0).tolist() == [0, 0, 1, 1]


def test_a_community_a_move_leaves_in_pieces_is_split():
    # a star whose centre belongs to a big community: the leaves, tied only through it, part ways
    big = [(a, b, 1.0) for a in range(8) for b in range(a + 1, 8)]
    centre, leaves = 8, [9, 10]
    extra = [(centre, b, 1.0) for b in range(8)] + [(centre, leaf, 0.3) for leaf in leaves]
    src, dst, w = arrays(big + extra)
    labels = np.array([0] * 8 + [1, 1, 1])
    out = absorb(src, dst, w, 11, labels)
    assert out[centre] == out[0]
    assert out[9] != out[10] and out[9] != out[0]
    inside = out[src] == out[dst]
    assert (connected_components(src[inside], dst[inside], 11) == out).all()


def test_wrong_label_count_is_an_error():
    with pytest.raises(ValueError, match="labels has 2 entries for 3 nodes"):
        absorb(np.array([0]), np.array([1]), np.array([1.0]), 3, np.array([0, 0]))
