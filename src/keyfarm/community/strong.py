"""Strong-link groups (community stage): loose pieces of a farm tied by a web of rare values become one community.

CPM asks every community for a γ density of links, so a farm whose accounts are tied by many rare
values but each to only a few of the others — cards shared by three or four accounts, job texts
that two accounts of the queue happen to send — is cut into its card groups: each too small to
draw more than one account's limit, together many limits. Each such card group is *loose*: its
accounts' links to the rest of the farm outweigh their links inside it, so it is not a community
even in the weak sense of Radicchi et al. (PNAS 2004: a set whose links inside outweigh its links
leaving it, every link counted). A household, a team or a dense farm CPM found is not loose.

`merge_strong` joins loose communities through *strong* links (at least `threshold`: one rare
exact value — an address, a card, a device, a prompt — and no range) between their accounts: the
connected groups of loose communities so linked become one community when
- the group is a community in Radicchi's weak sense (it is apart from the rest, as the farm of
  card groups is, tied to the world only by weak links), and
- it holds at most `max_accounts` accounts (larger: the web of a NAT or a cloud region).
Loose pieces join each other, never a community that is not loose: the home users whose address a
proxy farm borrowed are loose too, tied mostly to the farm, but they meet the farm's dense core,
which CPM found and community.absorb completes, not one another, and their group is no community.
A member of a joined group tied to it less than `member_share` × its median member's tie goes back
to its piece (community.absorb's measure of a typical member).
Every step reads one connected component only (the Spark engine runs it per component).
"""
from __future__ import annotations

import numpy as np

from keyfarm.community._graph import canonical_csr, relabel
from keyfarm.community.absorb import community_medians, member_ties
from keyfarm.community.components import connected_components


def merge_strong(src, dst, weight, n_nodes: int, labels, *, threshold: float, max_accounts: int,
                 member_share: float = 0.5, csr=None) -> np.ndarray:
    """Labels with loose communities joined by the rule of the module docstring (0..k−1 in order of
    first appearance). `threshold` 0 returns `labels` renumbered. `csr`: canonical_csr(src, dst,
    weight, n_nodes) when the caller has it already."""
    labels = relabel(np.asarray(labels, np.int64))
    if threshold <= 0 or n_nodes == 0 or not np.size(src):
        return labels
    src = np.asarray(src, np.int64)
    dst = np.asarray(dst, np.int64)
    weight = np.asarray(weight, np.float64)
    n_labels = int(labels.max()) + 1
    vol_node = np.bincount(src, weights=weight, minlength=n_nodes) + np.bincount(dst, weights=weight,
                                                                                   minlength=n_nodes)
    loose = ~weak_communities(labels, n_labels, vol_node, src, dst, weight)
    # groups of loose communities joined by strong links between them
    la, lb = labels[src], labels[dst]
    link = (weight >= threshold) & (la != lb) & loose[la] & loose[lb]
    if not link.any():
        return labels
    group = connected_components(la[link], lb[link], n_labels)       # per label
    node_group = group[labels]
    n_groups = int(group.max()) + 1
    members = np.bincount(group, minlength=n_groups)                  # labels per group
    size = np.bincount(node_group, minlength=n_groups)
    merge = (members >= 2) & (size <= max_accounts) & weak_communities(node_group, n_groups, vol_node,
                                                                       src, dst, weight)
    if not merge.any():
        return labels
    out = np.where(merge[node_group], n_labels + node_group, labels)
    # a member tied to its joined group less than member_share × its median member's tie goes back
    indptr, indices, data = canonical_csr(src, dst, weight, n_nodes) if csr is None else csr
    tie = member_ties(indptr, indices, data, out)
    median = community_medians(out, tie, int(out.max()) + 1)
    out = np.where(merge[node_group] & (tie < member_share * median[out]), labels, out)
    inside = out[src] == out[dst]
    return connected_components(src[inside], dst[inside], n_nodes)


def weak_communities(group: np.ndarray, n_groups: int, vol_node: np.ndarray, src, dst, weight) -> np.ndarray:
    """Per group of nodes: whether it is a community in Radicchi's weak sense, its internal link
    weight (each link counted from both ends, as in a node's volume) above its links leaving it."""
    vol = np.bincount(group, weights=vol_node, minlength=n_groups)
    inside = group[src] == group[dst]
    internal2 = 2 * np.bincount(group[src][inside], weights=weight[inside], minlength=n_groups)
    return internal2 > vol - internal2
