"""Stable ids and what changed (keyfarm.history.lineage), on hand-made partitions."""
from __future__ import annotations

import numpy as np
import pandas as pd

from keyfarm.history.lineage import changes_table, match_clusters


def _prev(groups: dict[int, list[str]], verdict="clear"):
    accounts = pd.DataFrame([(a, cid) for cid, accs in groups.items() for a in accs],
                            columns=["account_id", "cluster_id"])
    multi = {cid: accs for cid, accs in groups.items() if len(accs) >= 2}
    clusters = pd.DataFrame({"cluster_id": list(multi), "n_accounts": [len(v) for v in multi.values()],
                             "n_keys": [len(v) for v in multi.values()], "verdict": verdict})
    return accounts, clusters


def _today(groups: list[list[str]]):
    rows = [(a, lab) for lab, accs in enumerate(groups) for a in accs]
    return pd.DataFrame({"account_id": [r[0] for r in rows], "label": [r[1] for r in rows], "n_keys": 1})


def _run(prev_groups, today_groups, next_id=100, returning=None):
    accounts, clusters = _prev(prev_groups)
    lin = match_clusters(_today(today_groups), accounts, clusters, next_id, returning=returning)
    status = lin.status.set_index("label")
    return lin, status


def test_unchanged_clusters_keep_their_id_and_singletons_theirs():
    lin, status = _run({7: ["a", "b", "c"], 9: ["d"]}, [["a", "b", "c"], ["d"], ["e"]])
    assert lin.stable.tolist() == [7, 9, 100]
    assert status.loc[0, "status"] == "unchanged"
    assert lin.next_id == 101


def test_merge_keeps_the_larger_clusters_id_and_names_both():
    lin, status = _run({3: ["a", "b", "c"], 5: ["d", "e"]}, [["a", "b", "c", "d", "e"]])
    assert lin.stable[0] == 3
    assert status.loc[0, "status"] == "merged"
    assert status.loc[0, "previous_cluster_ids"] == "3,5"
    assert status.loc[0, "n_accounts_before"] == 5
    assert lin.disappeared.empty


def test_split_gives_the_larger_part_the_id_and_the_other_a_new_one():
    lin, status = _run({4: ["a", "b", "c", "d", "e"]}, [["a", "b", "c"], ["d", "e"]], next_id=50)
    assert lin.stable.tolist() == [4, 50]
    assert status["status"].tolist() == ["split", "split"]
    assert status["previous_cluster_ids"].tolist() == ["4", "4"]


def test_ties_go_to_the_older_id():
    lin, _ = _run({8: ["a", "b"], 2: ["c", "d"]}, [["a", "b", "c", "d"]])
    assert lin.stable[0] == 2


def test_disappeared_cluster_is_listed_with_its_counts_before():
    lin, status = _run({1: ["a", "b"], 2: ["c", "d", "e"]}, [["a", "b"], ["x"]])
    assert lin.disappeared["cluster_id"].tolist() == [2]
    clusters = pd.DataFrame({"cluster_id": [1], "n_accounts": [2], "n_keys": [2], "verdict": ["clear"],
                             "returning": [False]})
    changes = changes_table(lin.status.assign(cluster_id=lin.stable[lin.status["label"]]), lin.disappeared,
                            clusters)
    row = changes.set_index("cluster_id").loc[2]
    assert (row["status"], row["n_accounts_before"], row["n_accounts_after"]) == ("disappeared", 3, 0)


def test_new_group_from_accounts_seen_alone_gets_a_never_used_id():
    lin, status = _run({1: ["a"], 2: ["b"], 3: ["c", "d"]}, [["a", "b"], ["c", "d"]], next_id=10)
    assert lin.stable.tolist() == [10, 3]
    assert status.loc[0, "status"] == "new"


def test_grown_and_shrunk():
    lin, status = _run({1: ["a", "b", "c"], 2: ["d", "e", "f"]}, [["a", "b", "c", "x"], ["d", "e"], ["f"]])
    assert lin.stable[:2].tolist() == [1, 2]
    assert status.loc[0, "status"] == "grown"
    assert status.loc[1, "status"] == "shrunk"
    assert status.loc[1, "n_accounts_before"] == 3


def test_returning_farm_gets_its_remembered_id_when_overlap_gave_none():
    lin, status = _run({1: ["a", "b"]}, [["a", "b"], ["x", "y"]], next_id=20,
                       returning=pd.Series({1: 7}))
    assert lin.stable.tolist() == [1, 7]
    assert lin.next_id == 20


def test_ids_are_never_reused_after_a_cluster_disappears():
    lin, _ = _run({1: ["a", "b"]}, [["x", "y"]], next_id=2)
    assert lin.stable.tolist() == [2]
    assert np.all(lin.stable >= 2)
