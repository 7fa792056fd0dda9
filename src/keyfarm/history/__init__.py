"""Daily runs (history stage): stable cluster ids, what changed since the previous run, farms that
come back, labels carried forward. Given the previous run's OUT_DIR (`--previous`).

`prepare` reads and checks everything a run will need from earlier (state/, labels, the audit log)
before any work starts; the pipeline then asks it for the warm start of community detection
(`initial_labels`), lets it adjust the membership before scoring (`adjust`: returning farms joined,
benign-labelled accounts detached), and `finish` gives the outputs their stable ids, the SCHEMA.md
columns status / first_seen / previous_cluster_ids / returning, changes.parquet and the next state.
Without a previous run the ids are today's (smallest key index order) and every cluster is `new`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm.history import evidence as ev
from keyfarm.history import labels as lb
from keyfarm.history.lineage import changes_table, match_clusters
from keyfarm.history.state import State, empty_tables, read_state, write_state

__all__ = ["History", "prepare", "write_state", "read_state"]


@dataclass
class History:
    """What earlier runs tell this one, and what this run found (filled as the run goes)."""

    previous: State | None = None
    previous_dir: str | None = None
    labels: pd.DataFrame = field(default_factory=lambda: empty_tables()["labels"])
    banned: frozenset = frozenset()
    matches: pd.DataFrame | None = None
    detached: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    peers: pd.DataFrame = field(default_factory=lambda: empty_tables()["label_peers"])
    tokens: pd.DataFrame | None = None
    communities: np.ndarray | None = None   # per key, as community detection found them (warm start)
    known_components: np.ndarray | None = None   # fingerprints PREV_OUT's cache lists (history.fingerprint)
    fingerprints: list | None = None        # this run's, for the next (None: none written)

    @property
    def prev_accounts(self) -> pd.DataFrame | None:
        return None if self.previous is None else self.previous.accounts

    def remembered(self) -> pd.DataFrame:
        """Evidence rows of earlier runs that count for returning farms: remembered ones, and those
        of accounts banned (audit log) or labelled farm, under whatever cluster id they had."""
        if self.previous is None:
            return empty_tables()["evidence"]
        rows = self.previous.evidence
        farm_labelled = set(self.labels.loc[self.labels["label"] == "farm", "account_id"].tolist())
        keep = rows["remembered"].to_numpy(bool) | rows["account_id"].isin(self.banned | farm_labelled).to_numpy()
        return rows[keep]


def prepare(previous=None, *, labels: pd.DataFrame | None = None, banned=None) -> History:
    """Load and check PREV_OUT's state, the labels and the audit log (KeyfarmInputError otherwise).

    `labels` is a labels table (SCHEMA.md); `banned` an enforcement audit database: its applied,
    unreverted bans make the banned accounts' remembered values count, and reverted bans become
    `benign` labels (source `revert`)."""
    from keyfarm.scoring.calibrate import check_labels, labels_from_audit

    state = read_state(previous) if previous is not None else None
    prev_accounts = state.accounts if state is not None else None
    given = []
    if labels is not None and len(labels):
        given.append(lb.resolve_labels(check_labels(labels), prev_accounts))
    banned_ids = frozenset()
    if banned is not None:
        reverted = labels_from_audit(banned)
        if len(reverted):
            given.insert(0, lb.resolve_labels(reverted, prev_accounts))
        banned_ids = frozenset(banned_accounts(banned))
    carried = state.labels if state is not None else empty_tables()["labels"]
    new = lb.latest(pd.concat(given, ignore_index=True).assign(
        order=lambda f: np.arange(len(f)))) if given else empty_tables()["labels"]
    merged = lb.carry_forward(carried, new) if len(carried) or len(new) else empty_tables()["labels"]
    known = None
    if state is not None:
        from keyfarm.history.fingerprint import read_cache
        known = read_cache(previous, state.run_id)
    return History(previous=state, previous_dir=None if previous is None else str(previous),
                   labels=merged, banned=banned_ids, known_components=known)


def banned_accounts(audit_db) -> list[str]:
    """Accounts of bans applied (`done`) in the audit log and not reverted since."""
    import sqlite3

    from keyfarm.errors import KeyfarmInputError

    path = Path(audit_db)
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT DISTINCT l.account_id FROM log l JOIN runs r ON l.run_id = r.run_id "
                "WHERE r.kind = 'apply' AND l.status = 'done' AND l.account_id IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM runs v WHERE v.kind = 'revert' AND v.reverts = r.run_id) "
                "ORDER BY l.account_id").fetchall()
    except sqlite3.DatabaseError as exc:
        raise KeyfarmInputError(f"audit: {path} is not a usable audit database: {exc}", table="audit") from None
    return [r[0] for r in rows]


def initial_labels(history: History, tables) -> np.ndarray | None:
    """Warm start: per account of today its community in the previous run as community detection
    found it (before hub merges and history, so an unchanged graph starts at a fixed point), −1
    for accounts not seen before; None without a previous run."""
    if history.previous is None:
        return None
    acc_ids = account_ids(tables)
    prev = history.previous.accounts.drop_duplicates("account_id").set_index("account_id")["community"]
    return prev.reindex(acc_ids).fillna(-1).to_numpy(np.int64)


def account_ids(tables) -> np.ndarray:
    """account_id of each account code (keys.account)."""
    keys = tables.keys
    n = int(keys["account"].max()) + 1 if len(keys) else 0
    out = np.empty(n, dtype=object)
    out[keys["account"].to_numpy(np.int64)] = keys["account_id"].to_numpy(dtype=object)
    return out


def _acc_label(membership: np.ndarray, account: np.ndarray) -> np.ndarray:
    out = np.zeros(int(account.max()) + 1 if account.size else 0, np.int64)
    out[account] = membership
    return out


def adjust(history: History, tables, incidences, membership: np.ndarray) -> np.ndarray:
    """Per-key membership before scoring: remembered farms' accounts that still share their rare
    evidence kept together, returning farms joined, benign-labelled accounts on the same evidence
    detached (history.evidence, history.labels). Unchanged without earlier runs."""
    account = tables.keys["account"].to_numpy(np.int64)
    if not account.size:
        return membership
    acc_ids = account_ids(tables)
    acc_label = _acc_label(membership, account)
    if incidences is not None:
        history.tokens = ev.account_tokens(incidences, account)
    remembered = history.remembered()
    if history.tokens is not None and len(remembered):
        acc_label = ev.keep_staying(acc_label, ev.staying(history.tokens, acc_ids, remembered))
        seen = history.previous.accounts["account_id"] if history.previous is not None else []
        history.matches = ev.returning_matches(history.tokens, acc_ids, remembered, seen=seen)
        code = pd.Index(acc_ids).get_indexer(remembered["account_id"])
        groups = ev.farm_groups(remembered[["cluster_id", "token"]].rename(
            columns={"cluster_id": "farm_id", "token": "digest"}))
        present = pd.DataFrame({"account": code,
                                "group": groups.reindex(remembered["cluster_id"]).to_numpy(np.int64)})
        present = present[present["account"] >= 0].drop_duplicates()
        touching = ev.returning_matches(history.tokens, acc_ids, remembered, seen=seen, touching=True)
        acc_label = ev.join_returning(acc_label, history.matches, present, touching)
    if len(history.labels):
        history.peers = lb.peers_of(history.labels, history.previous.label_peers if history.previous else
                                    empty_tables()["label_peers"], acc_ids, acc_label, history.prev_accounts)
        acc_label, history.detached = lb.detach_benign(acc_label, acc_ids, history.labels, history.peers)
    return acc_label[account]


def finish(history: History, tables, members: pd.DataFrame, clusters: pd.DataFrame, edges: pd.DataFrame):
    """(members, clusters, edges, changes or None, next State without run_id): stable ids, the
    history columns of clusters.parquet, changes.parquet (only with a previous run)."""
    from keyfarm.pipeline import stable_cluster_ids

    account = tables.keys["account"].to_numpy(np.int64)
    canonical = members["cluster_id"].to_numpy(np.int64)
    assert np.array_equal(stable_cluster_ids(canonical), canonical), "finish expects canonical labels"
    acc_ids = account_ids(tables)
    acc_label = _acc_label(canonical, account)
    n_keys = np.bincount(account, minlength=acc_ids.size)
    prev = history.previous
    returning_farm = _returning_labels(history, acc_label)
    lineage = match_clusters(
        pd.DataFrame({"account_id": acc_ids, "label": acc_label, "n_keys": n_keys}),
        prev.accounts if prev is not None else pd.DataFrame({"account_id": [], "cluster_id": np.zeros(0, np.int64)}),
        prev.ids if prev is not None else empty_tables()["ids"],
        prev.next_cluster_id if prev is not None else 0, returning=returning_farm)
    stable = lineage.stable
    # shallow copies with one column replaced: a 1M-key run's edges are ~10⁷ rows of text columns,
    # and assign() would copy them all
    members = _with_column(members, "cluster_id", stable[canonical])
    edge_cluster = edges["cluster_id"].to_numpy(np.int64)
    edges = _with_column(edges, "cluster_id", np.where(edge_cluster >= 0, stable[np.maximum(edge_cluster, 0)], -1))
    labels_in = clusters["cluster_id"].to_numpy(np.int64)
    status = lineage.status.set_index("label").reindex(labels_in)
    first_prev = prev.ids.set_index("cluster_id")["first_seen"] if prev is not None else pd.Series(dtype=object)
    remembered_first = history.remembered().drop_duplicates("cluster_id").set_index("cluster_id")["first_seen"]
    first_prev = pd.concat([first_prev, remembered_first[~remembered_first.index.isin(first_prev.index)]])
    sid = stable[labels_in]
    clusters = clusters.assign(cluster_id=sid)
    if prev is not None:
        clusters["status"] = status["status"].to_numpy(dtype=object)
        clusters["previous_cluster_ids"] = status["previous_cluster_ids"].to_numpy(dtype=object)
    else:
        clusters["status"] = "new"
        clusters["previous_cluster_ids"] = ""
    clusters["first_seen"] = first_prev.reindex(sid).to_numpy(dtype=object)
    clusters["returning"] = np.isin(labels_in, np.asarray(list(returning_farm.index), np.int64)) \
        if returning_farm is not None and len(returning_farm) else False
    clusters = clusters.sort_values("cluster_id", kind="stable").reset_index(drop=True)
    changes = None
    if prev is not None:
        changes = changes_table(lineage.status, lineage.disappeared, clusters)
    state = next_state(history, tables, acc_ids, stable[acc_label], clusters, lineage.next_id)
    return members, clusters, edges, changes, state


def _with_column(frame: pd.DataFrame, name: str, values: np.ndarray) -> pd.DataFrame:
    """`frame` with column `name` replaced by `values`, sharing every other column's data."""
    out = frame.copy(deep=False)
    out[name] = values
    return out


def _returning_labels(history: History, acc_label: np.ndarray) -> pd.Series:
    """canonical label → remembered farm id, for clusters holding accounts that returned to it
    (the farm of most such accounts; ties to the smaller id)."""
    m = history.matches
    if m is None or not len(m):
        return pd.Series(dtype=np.int64)
    frame = pd.DataFrame({"label": acc_label[m["account"].to_numpy(np.int64)], "farm_id": m["farm_id"].to_numpy()})
    count = frame.groupby(["label", "farm_id"]).size().rename("n").reset_index()
    best = count.sort_values(["label", "n", "farm_id"], ascending=[True, False, True], kind="stable") \
        .drop_duplicates("label")
    return pd.Series(best["farm_id"].to_numpy(np.int64), index=best["label"].to_numpy(np.int64))


def next_state(history: History, tables, acc_ids: np.ndarray, acc_cluster: np.ndarray, clusters: pd.DataFrame,
               next_id: int) -> State:
    """The state this run leaves (first_seen of new clusters and run_id are stamped on write)."""
    prev = history.previous
    ids = clusters[["cluster_id", "first_seen", "n_accounts", "n_keys", "verdict"]].copy()
    account = tables.keys["account"].to_numpy(np.int64)
    community = _acc_label(history.communities, account) if history.communities is not None else \
        np.arange(acc_ids.size, dtype=np.int64)
    accounts = pd.DataFrame({"account_id": acc_ids, "cluster_id": acc_cluster, "community": community})
    if not pd.Index(acc_ids).is_monotonic_increasing:   # account codes are usually in account_id order
        accounts = accounts.sort_values("account_id", kind="stable").reset_index(drop=True)
    in_cluster = np.isin(acc_cluster, clusters["cluster_id"].to_numpy(np.int64))
    label = np.where(in_cluster, acc_cluster, -1)
    farm_ids = set(clusters.loc[clusters["verdict"] == "farm", "cluster_id"].tolist())
    tie = ev.tying_tokens(history.tokens, label, own_labels=sorted(farm_ids)) if history.tokens is not None else None
    farm_labelled = set(history.labels.loc[history.labels["label"] == "farm", "account_id"].tolist())
    if tie is not None and len(tie):
        tie = tie[tie["label"] >= 0]
        account_id = acc_ids[tie["account"].to_numpy(np.int64)]
        evidence = pd.DataFrame({"cluster_id": tie["label"].to_numpy(np.int64), "account_id": account_id,
                                 "kind": tie["kind"].to_numpy(dtype=object), "token": tie["token"].to_numpy(dtype=object)})
        evidence["remembered"] = evidence["cluster_id"].isin(farm_ids).to_numpy() | \
            np.isin(account_id, list(history.banned | farm_labelled))
        evidence["first_seen"] = clusters.set_index("cluster_id")["first_seen"].reindex(evidence["cluster_id"]).to_numpy(dtype=object)
    else:
        evidence = empty_tables()["evidence"]
    carried = history.remembered()
    if len(carried):
        # carried rows first: a value once remembered stays remembered under the same id
        carried = carried.assign(remembered=True)
        evidence = pd.concat([carried, evidence], ignore_index=True) \
            .drop_duplicates(["cluster_id", "account_id", "token"], keep="first")
    evidence = evidence.sort_values(["cluster_id", "account_id", "kind", "token"], kind="stable").reset_index(drop=True)
    peers = history.peers if len(history.labels) else empty_tables()["label_peers"]
    tables_out = {"ids": ids, "accounts": accounts, "evidence": evidence, "labels": history.labels,
                  "label_peers": peers}
    return State(run_id=None, run_seq=(prev.run_seq + 1) if prev is not None else 0, next_cluster_id=next_id,
                 tables=tables_out, components=history.fingerprints)


def stamp(clusters: pd.DataFrame, state: State | None, run_id: str) -> pd.DataFrame:
    """first_seen of clusters first seen in this run := run_id (known only once outputs are final);
    the state gets the run_id too."""
    clusters = clusters.copy()
    fresh = clusters["first_seen"].isna().to_numpy()
    clusters["first_seen"] = np.where(fresh, run_id, clusters["first_seen"].to_numpy(dtype=object))
    if state is not None:
        state.run_id = run_id
        for name in ("ids", "evidence"):
            frame = state.tables[name]
            state.tables[name] = frame.assign(first_seen=np.where(frame["first_seen"].isna().to_numpy(), run_id,
                                                                  frame["first_seen"].to_numpy(dtype=object)))
    return clusters
