"""The linkage job: load → signals → graph → communities → scores → outputs (→ report).

Owns ordering, timing and progress only; each stage is a plain function of its own module.
`link()` is the Python API (tables in, DataFrames out); `run_link()` adds files: OUT_DIR as
SCHEMA.md defines it (members, clusters, edges, run.json, quarantine/) and the report.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm import __version__
from keyfarm.graph.weighting import SIGNALS
from keyfarm.io import Tables, load_tables
from keyfarm.progress import Progress

log = logging.getLogger(__name__)
SIGNAL_COLUMNS = tuple(f"w_{s}" for s in SIGNALS)
RUN_JSON_HUBS = 200   # run.json lists the largest hubs; hubs.parquet lists them all


@dataclass
class LinkResult:
    """What a linkage run produced: the SCHEMA.md tables plus run metadata and the graph."""

    members: pd.DataFrame
    clusters: pd.DataFrame
    edges: pd.DataFrame
    run: dict
    graph: object = None
    tables: Tables | None = None
    hubs: pd.DataFrame = field(default_factory=pd.DataFrame)
    changes: pd.DataFrame | None = None   # with a previous run (keyfarm.history)
    state: object = None                  # history.State this run leaves for the next
    activity: pd.DataFrame | None = None   # per cluster, account and time bin (keyfarm.activity)
    slots: pd.DataFrame | None = None      # per cluster, time slots two or more of its accounts share

    def write(self, out_dir: str | Path, *, input_dir: str | None = None) -> Path:
        """Write OUT_DIR as `keyfarm link --no-report` does (write_outputs); `keyfarm report OUT_DIR`
        or keyfarm.report.write_report draws the pages from it."""
        return write_outputs(self, out_dir, input_dir=input_dir)

    def output_tables(self) -> dict[str, pd.DataFrame | None]:
        """The tables write_outputs writes to OUT_DIR, by file name (None: not written, and any
        earlier run's file of that name removed); the report draws from them without reading
        them back."""
        return {"members": self.members, "clusters": self.clusters, "edges": self.edges, "hubs": self.hubs,
                "changes": self.changes, "activity": self.activity, "slots": self.slots}

    def to_networkx(self):
        """The account graph: node = account_id with cluster_id, verdict, score, n_keys,
        total_tokens; edge weight and w_<signal> (keyfarm.interop)."""
        from keyfarm.interop import to_networkx
        return to_networkx(self.members, self.clusters, self.edges)

    def to_igraph(self):
        """The account graph as igraph.Graph (vertex `name` = account_id; see to_networkx)."""
        from keyfarm.interop import to_igraph
        return to_igraph(self.members, self.clusters, self.edges)

    def __repr__(self) -> str:
        counts = self.run.get("counts", {}) if isinstance(self.run, dict) else {}
        verdicts = self.clusters["verdict"].value_counts() if "verdict" in self.clusters else {}
        return (f"<LinkResult {counts.get('keys', len(self.members)):,} keys, "
                f"{counts.get('accounts', self.members['account_id'].nunique()):,} accounts, "
                f"{len(self.clusters):,} clusters (farm {int(verdicts.get('farm', 0)):,}, "
                f"review {int(verdicts.get('review', 0)):,}, clear {int(verdicts.get('clear', 0)):,}), "
                f"{len(self.edges):,} edges>")


def stable_cluster_ids(membership: np.ndarray) -> np.ndarray:
    """Relabel communities by their smallest key index (keys are sorted by key_id), so a cluster's
    id depends on who is in it, not on the algorithm's internal labels."""
    membership = np.asarray(membership, np.int64)
    if membership.size == 0:
        return membership
    first = np.full(int(membership.max()) + 1, membership.size, np.int64)
    np.minimum.at(first, membership, np.arange(membership.size))
    used = np.flatnonzero(first < membership.size)
    rank = np.empty(first.size, np.int64)
    rank[used[np.argsort(first[used], kind="stable")]] = np.arange(used.size)
    return rank[membership]


def detect_communities(graph, tables: Tables, config, seed: int, initial: np.ndarray | None = None,
                       known: np.ndarray | None = None, fingerprints: list | None = None) -> np.ndarray:
    """Communities of accounts (keys of one account always together), then per key.

    The key graph is contracted to accounts: two accounts are linked by the strongest key pair
    between them per signal, summed over signals (the account signal links keys of one account
    and is not counted). CPM then finds dense groups of accounts, so a farm tied to a campus by one
    stray edge is still its own community (see CommunityConfig); settle_communities then joins
    what CPM's density threshold cuts from a sparse farm. Leiden runs on each connected
    component alone (community.bycomponent), so the Spark engine, which runs it in one group per
    component, finds the same communities. With `initial` (per account, its
    previous community or −1), Leiden also runs from the previous partition on the components the
    cold run changed (with `community.hysteresis`, yesterday's communities also linked:
    history.warmstart.memory_links), and on each the result closer to it is kept (history.warmstart).
    With `known` (fingerprints a previous run listed: history.fingerprint) too, a component whose
    fingerprint is known takes its `initial` communities without being detected again (the same
    partition, sooner); `fingerprints` (a list) gets those of the components where the partition is
    the cold one, for the next run (Leiden only).
    """
    from keyfarm.community import connected_components, label_propagation, leiden, louvain

    cfg = config.community
    account = graph.account
    n_acc = int(account.max()) + 1 if account.size else 0
    linked, src, dst, weight, control = account_graph(graph.src, graph.dst, graph.w, account, cfg.min_edge_weight,
                                                      with_control=True)
    n_linked = linked.size
    if cfg.algorithm == "leiden":   # per connected component, so a partitioned engine gets the same
        from keyfarm.community.bycomponent import communities_by_component
        detect = component_leiden(cfg, seed)
        component = connected_components(src, dst, n_linked)
        fps = reused = None
        if fingerprints is not None or known is not None:
            from keyfarm.history.fingerprint import component_fingerprints, settings_salt
            from keyfarm.history import account_ids
            salt = settings_salt(dataclasses.asdict(cfg), seed)
            fps = component_fingerprints(account_ids(tables)[linked], src, dst, weight, control, component, salt)
            if initial is not None and known is not None and len(known):
                reused = np.isin(fps, np.asarray(known, dtype=object))
        control_all = control
        control = control_links(src, dst, control) if cfg.control_link > 0 else None
        if reused is not None and reused.any():   # detect only where the graph is not yesterday's
            sub = _cold_where_new(src, dst, weight, control_all, n_linked, component, reused, initial[linked],
                                  detect, cfg)
        else:
            sub = settle_communities(src, dst, weight, n_linked,
                                     communities_by_component(src, dst, weight, n_linked, detect,
                                                              component=component),
                                     cfg, control)
        cold = sub
        if initial is not None and n_linked:   # a daily run: also from yesterday's where changed, keep the closer
            from keyfarm.history.warmstart import warm_where_changed
            sub = warm_where_changed(
                src, dst, weight, n_linked, initial[linked], component, sub, cfg.hysteresis * cfg.resolution,
                lambda s, d, w, start, comp: communities_by_component(s, d, w, n_linked, detect, start, component=comp),
                lambda s, d, w, labels: settle_communities(s, d, w, n_linked, labels, cfg, control))
        if fingerprints is not None and fps is not None:
            from keyfarm.history.warmstart import reproduces_previous
            fingerprints.extend(fps[reproduces_previous(sub, cold, component)].tolist())
    elif cfg.algorithm == "louvain":
        sub = louvain(src, dst, weight, n_linked, resolution=cfg.resolution, objective=cfg.objective,
                      seed=seed, n_iterations=cfg.n_iterations)
    elif cfg.algorithm == "components":
        sub = connected_components(src, dst, n_linked)
    elif cfg.algorithm == "label_propagation":
        sub = label_propagation(src, dst, weight, n_linked, seed=seed)
    else:
        from keyfarm.errors import KeyfarmConfigError
        raise KeyfarmConfigError(f"community.algorithm {cfg.algorithm!r} is not one of leiden, "
                                 "louvain, components, label_propagation")
    acc_memb = np.arange(n_acc, dtype=np.int64) + (int(sub.max()) + 1 if sub.size else 0)
    acc_memb[linked] = sub
    return stable_cluster_ids(acc_memb[account])


def _cold_where_new(src, dst, weight, control, n_linked: int, component, reused, previous, detect, cfg
                    ) -> np.ndarray:
    """The cold partition (Leiden by component, settled) on the components not `reused`, and on the
    reused ones (fingerprint known: history.fingerprint) their `previous` communities, which is
    what Leiden and settle would give them again."""
    from keyfarm.community.bycomponent import communities_by_component

    fresh = ~reused[component[src]]
    s, d, w = src[fresh], dst[fresh], weight[fresh]
    c = None if control is None or cfg.control_link <= 0 else control_links(s, d, np.asarray(control)[fresh])
    labels = settle_communities(s, d, w, n_linked, communities_by_component(s, d, w, n_linked, detect), cfg, c)
    old = reused[component]
    previous = np.asarray(previous, np.int64)
    return np.where(old, previous + (int(labels.max()) + 1 if labels.size else 0), labels)


def settle_communities(src, dst, weight, n_nodes: int, labels: np.ndarray, cfg, control=None) -> np.ndarray:
    """CPM's partition settled: loose communities joined through strong links (community.strong),
    then accounts absorbed by the big community they are tied to as its members are, or by a card
    or device they share with it (community.absorb; `control`: control_links on the same nodes),
    both over one CSR of the graph. Both read one connected component at a time, so the Spark
    engine runs this per component. The strong step sends a weak member back at the absorb share
    (0.5 when absorb is off)."""
    from keyfarm.community._graph import canonical_csr
    from keyfarm.community.absorb import absorb
    from keyfarm.community.strong import merge_strong

    csr = canonical_csr(np.asarray(src, np.int64), np.asarray(dst, np.int64), np.asarray(weight, np.float64),
                        n_nodes)
    labels = merge_strong(src, dst, weight, n_nodes, labels, threshold=cfg.strong_link,
                          max_accounts=cfg.strong_max_accounts, member_share=cfg.absorb or 0.5, csr=csr)
    return absorb(src, dst, weight, n_nodes, labels, share=cfg.absorb, csr=csr, control=control,
                  control_min=cfg.control_link)


CONTROL_SIGNALS = ("payment", "device")   # evidence an actor holds, not infrastructure it borrows


def control_links(src, dst, control) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The (src, dst, weight) links with control evidence, for community.absorb (None: none)."""
    if control is None:
        return None
    keep = np.asarray(control) > 0
    return np.asarray(src)[keep], np.asarray(dst)[keep], np.asarray(control, np.float64)[keep]


def component_leiden(cfg, seed: int):
    """Leiden with the job's settings on one component (community.bycomponent's `detect`): the
    same seed for every component, so each component's partition depends on it alone. Its
    `batch` runs many small components in one call, with the same labels."""
    from functools import partial

    from keyfarm.community import leiden
    from keyfarm.community.leiden import leiden_many

    def detect(src, dst, weight, n_nodes, initial=None):
        return leiden(src, dst, weight, n_nodes, resolution=cfg.resolution, objective=cfg.objective,
                      seed=seed, n_iterations=cfg.n_iterations, initial_membership=initial)
    detect.batch = partial(leiden_many, resolution=cfg.resolution, objective=cfg.objective, seed=seed,
                           n_iterations=cfg.n_iterations)
    return detect


def account_graph(key_src: np.ndarray, key_dst: np.ndarray, w: dict, account: np.ndarray,
                  min_edge_weight: float = 0.0, *, with_control: bool = False) -> tuple:
    """The account graph community detection runs on: (linked accounts, src, dst, weight) with
    src < dst numbering the linked accounts 0..n−1 in account order. Two accounts are linked by the
    strongest key pair between them per signal, summed over signals (the account signal links keys
    of one account and is not counted); links of weight <= min_edge_weight are left out. A pure
    function of the key edges. `with_control` adds, as a fifth array, the part of each link's
    weight that the CONTROL_SIGNALS carry (cards and devices: what community.absorb's waiver reads)."""
    if with_control:
        src, dst, weight, control = account_links(account[key_src], account[key_dst], w, min_edge_weight,
                                                  part=CONTROL_SIGNALS)
    else:
        src, dst, weight = account_links(account[key_src], account[key_dst], w, min_edge_weight)
    # most accounts share nothing: they stay alone, and the optimiser only sees linked accounts
    n_acc = int(account.max()) + 1 if account.size else 0
    present = np.zeros(n_acc, bool)
    present[src] = True
    present[dst] = True
    linked = np.flatnonzero(present)
    number = np.cumsum(present) - 1          # each linked account's rank among them (a lookup, not a search)
    if with_control:
        return linked, number[src], number[dst], weight, control
    return linked, number[src], number[dst], weight


def account_links(a: np.ndarray, b: np.ndarray, w: dict, min_edge_weight: float = 0.0, *,
                  part: tuple | None = None) -> tuple:
    """(src, dst, weight) account links, src < dst, sorted, from key pairs between accounts `a`
    and `b` with per-signal evidence `w`: per account pair the strongest key pair per signal,
    summed over signals; pairs inside one account are left out. All key pairs of an account
    pair must be given together: a partitioned engine runs it per group of account pairs.
    With `part` (signal names), a fourth array: the sum over those signals alone, per link."""
    between = np.flatnonzero(a != b)
    lo, hi = np.minimum(a, b)[between].astype(np.int64), np.maximum(a, b)[between].astype(np.int64)
    per_signal = [s for s in w if s != "account"]
    in_part = [s for s in per_signal if s in (part or ())]
    pair = lo * np.int64(int(hi.max(initial=0)) + 1) + hi
    order = np.argsort(pair, kind="stable")
    if pair.size > 1 and not (np.diff(pair[order]) > 0).all():   # an account pair of several key pairs
        frame = pd.DataFrame({"a": lo, "b": hi, **{s: np.asarray(w[s])[between] for s in per_signal}})
        agg = frame.groupby(["a", "b"], sort=True)[per_signal].max()
        src = agg.index.get_level_values(0).to_numpy(np.int64)
        dst = agg.index.get_level_values(1).to_numpy(np.int64)
        weight = agg.sum(axis=1).to_numpy(np.float64)
        sub = agg[in_part].sum(axis=1).to_numpy(np.float64)
    else:
        # one key pair per account pair (the job's graph: one representative key per account): the
        # maxima are the values; summed in signal order, as the grouped frame's row sums are
        rows = between[order]
        weight = np.zeros(rows.size)
        sub = np.zeros(rows.size)
        for s in per_signal:
            value = np.asarray(w[s], np.float64)[rows]
            weight = weight + value
            if s in in_part:
                sub = sub + value
        src, dst = lo[order], hi[order]
    keep = weight > min_edge_weight
    if part is None:
        return src[keep], dst[keep], weight[keep]
    return src[keep], dst[keep], weight[keep], sub[keep]


def _signal_of(graph, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For edges `index` (−1 = none): the signal carrying most weight and its strongest token
    (read for those edges only, not stacked over the whole graph)."""
    signals = [s for s in graph.w if s != "account"]
    names = np.full(index.size, None, dtype=object)
    tokens = np.full(index.size, None, dtype=object)
    ok = index >= 0
    if ok.any() and graph.n_edges and signals:
        rows = index[ok]
        top = np.column_stack([graph.w[s][rows] for s in signals]).argmax(axis=1)
        names[ok] = np.array(signals, dtype=object)[top]
        table = np.append(graph.tokens, None).astype(object)
        none = np.full(rows.size, -1, np.int64)
        ids = np.column_stack([graph.evidence[s][rows] if s in graph.evidence else none for s in signals])
        best = ids[np.arange(rows.size), top]
        tokens[ok] = table[np.where(best >= 0, best, len(graph.tokens))]
    return names, tokens


def key_totals(requests: pd.DataFrame, activity) -> pd.DataFrame:
    """Per key with requests (index `key`): total_tokens, peak_daily_tokens, mean_daily_tokens,
    n_requests. Per key, so a partitioned engine computes it per partition of keys."""
    per_key = activity.daily.groupby("key")["tokens"].agg(["sum", "max", "mean"])
    counts = requests["key"].value_counts()
    index = pd.Index(counts.index.union(per_key.index).sort_values().to_numpy(np.int64), name="key")
    return pd.DataFrame({"total_tokens": per_key["sum"].reindex(index, fill_value=0).to_numpy(np.int64),
                         "peak_daily_tokens": per_key["max"].reindex(index, fill_value=0).to_numpy(np.int64),
                         "mean_daily_tokens": per_key["mean"].reindex(index, fill_value=0).to_numpy(np.float64),
                         "n_requests": counts.reindex(index, fill_value=0).to_numpy(np.int64)}, index=index)


def assemble_outputs(tables: Tables, graph, membership: np.ndarray, scored: pd.DataFrame,
                     activity, default_limit: int = 100_000, totals: pd.DataFrame | None = None
                     ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """members, clusters and edges in SCHEMA.md's columns (plus keyfarm's extras).

    `totals` is `key_totals` of the requests (computed from tables.requests when not given).
    """
    members = member_table(tables, membership, activity, default_limit, totals)
    clusters = cluster_table(scored, {end: edge_ends(graph, scored[col].to_numpy(np.int64))
                                      for end, col in (("weakest", "weakest_edge"), ("strongest", "strongest_edge"))})
    edges = graph.edges_frame()
    same = membership[graph.src] == membership[graph.dst]
    edges["cluster_id"] = np.where(same, membership[graph.src], -1).astype(np.int64)
    return members, clusters, edges


def member_table(tables: Tables, membership: np.ndarray, activity, default_limit: int = 100_000,
                 totals: pd.DataFrame | None = None) -> pd.DataFrame:
    """members.parquet: one row per key with its cluster, account metadata and usage."""
    keys = tables.keys
    members = pd.DataFrame({"key_id": keys["key_id"].to_numpy(), "account_id": keys["account_id"].to_numpy(),
                            "cluster_id": membership.astype(np.int64)})
    meta = tables.accounts.set_index("account_id")[["org_id", "email_domain"]] if len(tables.accounts) else None
    members["org_id"] = meta["org_id"].reindex(members["account_id"]).to_numpy() if meta is not None else None
    members["email_domain"] = meta["email_domain"].reindex(members["account_id"]).to_numpy() \
        if meta is not None else None
    members["created_at"] = keys["created_at"].array   # datetimes, not one Timestamp object per key
    members["daily_token_limit"] = keys["daily_token_limit"].astype("Int64").to_numpy()
    totals = key_totals(tables.requests, activity) if totals is None else totals
    for col in ("total_tokens", "peak_daily_tokens", "n_requests"):
        members[col] = totals[col].reindex(range(len(keys)), fill_value=0).to_numpy(np.int64)
    limit = keys["daily_token_limit"].astype("Float64").fillna(default_limit).to_numpy(np.float64)
    members["usage"] = totals["mean_daily_tokens"].reindex(range(len(keys)), fill_value=0).to_numpy() / limit
    return members


def edge_ends(graph, index: np.ndarray) -> pd.DataFrame:
    """For edges `index` of `graph` (−1 = none): key_a, key_b, weight, the signal carrying most
    weight and its strongest token (`evidence`); null where −1. What clusters.parquet says of a
    cluster's weakest and strongest edge."""
    index = np.asarray(index, np.int64)
    ok = index >= 0
    safe = np.where(ok, index, 0)
    names, tokens = _signal_of(graph, index)
    return pd.DataFrame({"key_a": np.where(ok, graph.key_id[graph.src[safe]] if graph.n_edges else None, None),
                         "key_b": np.where(ok, graph.key_id[graph.dst[safe]] if graph.n_edges else None, None),
                         "weight": np.where(ok, graph.weight[safe] if graph.n_edges else np.nan, np.nan),
                         "signal": names, "evidence": tokens})


def cluster_table(scored: pd.DataFrame, ends: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """clusters.parquet's rows from score_clusters' frame and edge_ends of each cluster's weakest and
    strongest edge (`ends`, rows in `scored`'s order), in SCHEMA.md's column order, by cluster_id."""
    clusters = scored.copy()
    for end in ("weakest", "strongest"):
        frame = ends[end]
        clusters[f"{end}_key_a"] = frame["key_a"].to_numpy(dtype=object)
        clusters[f"{end}_key_b"] = frame["key_b"].to_numpy(dtype=object)
        clusters[f"{end}_weight"] = frame["weight"].to_numpy(np.float64)
        clusters[f"{end}_signal"] = frame["signal"].to_numpy(dtype=object)
        if end == "strongest":
            clusters["strongest_evidence"] = frame["evidence"].to_numpy(dtype=object)
    clusters = clusters.drop(columns=["weakest_edge", "strongest_edge"], errors="ignore")
    first = ["cluster_id", "n_keys", "n_accounts", "score", "verdict", "flagged", "signals", "total_tokens",
             "limit_multiplier", "explanation"]
    return clusters[first + [c for c in clusters.columns if c not in first]] \
        .sort_values("cluster_id").reset_index(drop=True)


def prompt_examples_needed(graph, membership: np.ndarray, clusters: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """(edge mask, (key, token) rows): the edges with prompt evidence inside a cluster of 2+ accounts
    (the ones reports draw), and for each end the strongest prompt token to find an example of."""
    ids = graph.evidence.get("prompt")
    if ids is None or graph.n_edges == 0:
        return np.zeros(graph.n_edges, bool), pd.DataFrame({"key": np.zeros(0, np.int64), "token": []})
    cluster = membership[graph.src]
    mask = (ids >= 0) & (cluster == membership[graph.dst]) & \
        np.isin(cluster, clusters["cluster_id"].to_numpy(np.int64))
    token = np.asarray(graph.tokens, dtype=object)[ids[mask]]   # text of those edges' tokens only
    needed = pd.DataFrame({"key": np.concatenate([graph.src[mask], graph.dst[mask]]).astype(np.int64),
                           "token": np.concatenate([token, token])})
    return mask, needed.drop_duplicates().sort_values(["key", "token"], kind="stable").reset_index(drop=True)


def prompts_of_accounts(tables: Tables, needed: pd.DataFrame) -> pd.DataFrame:
    """(key, prompt) of the requests of every account whose representative key is in `needed`,
    keyed by that representative key: an account's link is drawn between representative keys,
    and any of its keys may have sent the prompt."""
    from keyfarm.graph.build import representative_keys

    req = tables.requests
    if "prompt" not in req or not len(needed):
        return pd.DataFrame({"key": np.zeros(0, np.int64), "prompt": np.zeros(0, object)})
    rep = representative_keys(tables.keys["account"].to_numpy(np.int64))[req["key"].to_numpy(np.int64)]
    keep = np.isin(rep, needed["key"].unique())
    return pd.DataFrame({"key": rep[keep], "prompt": req["prompt"].to_numpy(dtype=object)[keep]})


def attach_prompt_examples(edges: pd.DataFrame, graph, mask: np.ndarray, examples: pd.DataFrame) -> pd.DataFrame:
    """prompt_example_a/b on the edges of `mask`: a prompt of each key reaching the edge's strongest
    prompt token (`examples` from signals.prompt_examples.token_examples; null elsewhere)."""
    # (key, token) pairs as one int64 code of the key and the token's index in graph.tokens
    n_tokens = np.int64(len(graph.tokens) + 1)
    token_id = graph.evidence["prompt"][mask] if mask.any() else np.zeros(0, np.int64)
    example_id = pd.Index(np.asarray(graph.tokens, dtype=object)).get_indexer(examples["token"])
    known = example_id >= 0
    lookup = pd.Series(examples["prompt"].to_numpy(dtype=object)[known],
                       index=examples["key"].to_numpy(np.int64)[known] * n_tokens + example_id[known])
    for end, keys in (("a", graph.src), ("b", graph.dst)):
        column = np.full(graph.n_edges, None, dtype=object)
        if mask.any():
            found = lookup.reindex(keys[mask].astype(np.int64) * n_tokens + token_id).to_numpy(dtype=object)
            column[mask] = np.where(pd.isna(found), None, found)
        edges[f"prompt_example_{end}"] = column
    return edges


def score_stage(tables: Tables, activity, membership: np.ndarray, graph, hubs: pd.DataFrame,
                hub_members: pd.DataFrame, config, adjust=None):
    """Hubs judged as groups, farm hubs of a control signal made clusters, then cluster features:
    (membership, hubs with verdicts, features). The Spark engine runs settle_membership and
    scoring.node_features on the driver and scoring.edge_features per group of clusters. `adjust`
    (membership → membership) is history's step: returning farms joined, benign labels detached."""
    from keyfarm.scoring import cluster_features

    membership, hubs = settle_membership(tables, activity, membership, hubs, hub_members, config, adjust)
    feats = cluster_features(tables.keys, tables.accounts, activity, membership, graph.src, graph.dst,
                             graph.weight, graph.w, config.scoring, hub_members=hub_members)
    return membership, hubs, feats


def settle_membership(tables: Tables, activity, membership: np.ndarray, hubs: pd.DataFrame,
                      hub_members: pd.DataFrame, config, adjust=None) -> tuple[np.ndarray, pd.DataFrame]:
    """score_stage's first half, which reads no edge: (membership, hubs with verdicts)."""
    from keyfarm.scoring.hubs import judge_hubs, merge_farm_hubs

    hubs = judge_hubs(tables, activity, hub_members, hubs, config)
    account = tables.keys["account"].to_numpy(np.int64)
    membership = merge_farm_hubs(membership, account, hubs, hub_members)
    return stable_cluster_ids(membership if adjust is None else adjust(membership)), hubs


def link(tables_or_dir, config=None, *, seed: int = 0, progress: Progress | None = None, previous=None,
         labels: pd.DataFrame | None = None, banned=None, history=None,
         max_quarantine_share: float | None = 0.5) -> LinkResult:
    """Run the linkage job on a folder of tables (or loaded `Tables`) and return its outputs.

    `previous` is the previous run's OUT_DIR (stable ids, changes, returning farms), `labels` a
    labels table and `banned` an enforcement audit database (keyfarm.history.prepare); or give
    `history`, already prepared. A folder whose table loses more than `max_quarantine_share` of
    its rows stops (io.load_tables)."""
    from keyfarm import history as hist
    from keyfarm.config import Config
    from keyfarm.graph import build_graph
    from keyfarm.scoring import key_activity, score_clusters
    from keyfarm.scoring.hubs import hub_incidence
    from keyfarm.signals import registry
    from keyfarm.activity import activity_tables
    from keyfarm.signals.prompt_examples import hub_examples, token_examples

    config = config or Config.default()
    progress = progress or Progress(quiet=True)
    history = history or hist.prepare(previous, labels=labels, banned=banned)
    with progress.stage("load") as info:
        tables = tables_or_dir if isinstance(tables_or_dir, Tables) else \
            load_tables(tables_or_dir, max_quarantine_share=max_quarantine_share)
        info["counts"] = f"{len(tables.keys):,} keys, {len(tables.requests):,} requests, " \
                         f"{sum(sum(r.values()) for r in tables.quarantine_counts().values()):,} quarantined"
    incidences = {}
    with progress.stage("signals") as info:
        for name, fn in registry().items():
            incidences[name] = fn(tables, config)
        info["counts"] = ", ".join(f"{n} {len(f):,}" for n, f in incidences.items())
    with progress.stage("graph") as info:
        graph, hubs = build_graph(tables, config, incidences)[:2]   # its token table is not needed here
        hub_members = hub_incidence(incidences.values(), hubs, config)
        info["counts"] = f"{graph.n_edges:,} edges, {len(hubs):,} hub tokens"
    # later stages read only which key reached which token (history, the prompt hubs' examples)
    for name, frame in incidences.items():
        incidences[name] = frame[[c for c in ("key", "token", "signal") if c in frame]]
    with progress.stage("communities") as info:
        history.fingerprints = [] if config.community.algorithm == "leiden" else None
        membership = detect_communities(graph, tables, config, seed, hist.initial_labels(history, tables),
                                        known=history.known_components, fingerprints=history.fingerprints)
        history.communities = membership
        info["counts"] = f"{int(membership.max()) + 1 if membership.size else 0:,} clusters"
    with progress.stage("scores") as info:
        activity = key_activity(tables.requests, bin_seconds=config.scoring.sync_bin_seconds,
                                network_config=config.network,
                                fine_seconds=config.scoring.cotiming_bin_seconds)
        membership, hubs, feats = score_stage(
            tables, activity, membership, graph, hubs, hub_members, config,
            adjust=lambda m: hist.adjust(history, tables, incidences.values(), m))
        scored = score_clusters(feats, config.scoring)
        members, clusters, edges = assemble_outputs(tables, graph, membership, scored, activity,
                                                    config.scoring.default_daily_limit)
        mask, needed = prompt_examples_needed(graph, membership, clusters)
        edges = attach_prompt_examples(edges, graph, mask,
                                       token_examples(prompts_of_accounts(tables, needed), needed, config))
        info["counts"] = f"{len(clusters):,} clusters of 2+ accounts, {int(clusters['flagged'].sum()):,} flagged"
    # from here on only the prompt hubs' examples read an incidence: free the others' rows
    prompt_incidence = incidences.get("prompt", pd.DataFrame())
    incidences.clear()
    with progress.stage("history") as info:
        members, clusters, edges, changes, state = hist.finish(history, tables, members, clusters, edges)
        info["counts"] = "no previous run" if changes is None else \
            f"{len(changes):,} changes, {int(clusters['returning'].sum()):,} returning"
    with progress.stage("activity"):   # for the report: timelines, prompt hubs' text
        activity_frame, slots = activity_tables(tables.requests, members, clusters["cluster_id"],
                                                slot_seconds=config.timing.slot_seconds)
        hubs = hub_examples(tables.requests, prompt_incidence, hubs, config)
    run = run_record(tables, config, seed, hubs, members, edges, clusters, progress)
    if history.previous is not None:
        run["previous_run_id"] = history.previous.run_id
    return LinkResult(members=members, clusters=clusters, edges=edges, run=run, graph=graph,
                      tables=tables, hubs=hubs, changes=changes, state=state, activity=activity_frame,
                      slots=slots)


def _json_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts with nulls (NaN, None) as None, so run.json stays strict JSON."""
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]


def run_record(tables: Tables, config, seed: int, hubs: pd.DataFrame, members: pd.DataFrame,
               edges: pd.DataFrame, clusters: pd.DataFrame, progress: Progress, *,
               n_requests: int | None = None) -> dict:
    """run.json's content (without run_id and input); `n_requests` counts valid requests when
    tables.requests does not hold them (a distributed run)."""
    return {
        "version": __version__, "seed": seed, "config": config.to_dict(),
        "input_rows": tables.input_rows,
        "valid_rows": {"keys": len(tables.keys), "accounts": len(tables.accounts),
                       "payments": len(tables.payments),
                       "requests": len(tables.requests) if n_requests is None else int(n_requests)},
        "quarantined": tables.quarantine_counts(),
        "nulled": tables.nulled_counts(),
        "n_hubs": {str(k): int(v) for k, v in hubs["signal"].value_counts().sort_index().items()},
        # all of them, with a prompt hub's text where the engine found one: hubs.parquet
        "hubs": _json_records(hubs.drop(columns=["example"], errors="ignore").head(RUN_JSON_HUBS)),
        "counts": {"keys": len(members), "accounts": int(tables.keys["account"].max()) + 1 if len(members) else 0,
                   "edges": len(edges), "clusters": len(clusters),
                   "flagged_clusters": int(clusters["flagged"].sum()),
                   "flagged_keys": int(clusters.loc[clusters["flagged"], "n_keys"].sum())},
        "timings": dict(progress.timings),
        "peak_rss_gib": dict(progress.peaks),
    }


def _run_id(result: LinkResult) -> str:
    """Digest of the verdict: the same input, config and seed give the same run id."""
    h = hashlib.sha256()
    for frame in (result.members[["key_id", "cluster_id"]], result.clusters[["cluster_id", "score"]]):
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    h.update(json.dumps(result.run["config"], sort_keys=True).encode())
    return h.hexdigest()[:16]


def write_outputs(result: LinkResult, out_dir: str | Path, *, input_dir: str | None = None) -> Path:
    """Write OUT_DIR as SCHEMA.md defines it: members, clusters, edges, run.json, quarantine/; and
    hubs.parquet, every hub token (token, signal, n_accounts, n_keys), most accounts first."""
    from keyfarm.history import stamp, write_state

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_id = _run_id(result)
    if "first_seen" in result.clusters:
        result.clusters = stamp(result.clusters, result.state, run_id)
    for name, frame in result.output_tables().items():
        path = out / f"{name}.parquet"
        if path.is_dir() and not hasattr(frame, "write"):   # an earlier Spark run's folder of parts
            import shutil

            shutil.rmtree(path)
        if frame is None:   # never a stale table (timeline, changes) of another run
            path.unlink(missing_ok=True)
        elif hasattr(frame, "write"):   # a table still on Spark's executors: written by them as parts
            frame.write(path)
        else:
            frame.to_parquet(path, index=False)
    if result.tables is not None:
        result.tables.write_quarantine(out)
    if result.state is not None:
        write_state(out, result.state)
    run = dict(result.run)
    run["run_id"] = run_id
    run["input"] = str(input_dir) if input_dir is not None else None
    (out / "run.json").write_text(json.dumps(run, indent=2, sort_keys=True, default=str) + "\n")
    return out


def run_link(input_dir, out_dir, *, config_path=None, seed: int = 0, quiet: bool = False,
             report: bool = True, previous=None, labels_path=None, banned=None,
             max_quarantine_share: float | None = 0.5) -> LinkResult:
    """`keyfarm link`: link, write OUT_DIR, then the report (when the report package is present).
    PREV_OUT, labels and audit log are checked before anything is computed or written."""
    from keyfarm.config import Config
    from keyfarm.history import prepare
    from keyfarm.scoring.calibrate import read_labels

    config = Config.from_toml(config_path) if config_path else Config.default()
    history = prepare(previous, labels=read_labels(labels_path) if labels_path else None, banned=banned)
    progress = Progress(quiet)
    result = link(input_dir, config, seed=seed, progress=progress, history=history,
                  max_quarantine_share=max_quarantine_share)
    return finish_run(result, input_dir, out_dir, progress, report=report)


def finish_run(result: LinkResult, input_dir, out_dir, progress: Progress, *, report: bool = True) -> LinkResult:
    """Write OUT_DIR and, unless `report` is false, the report; run.json gets every stage's timing.
    Shared by the local and the Spark engine (whose edges the report reads back from their parts)."""
    from keyfarm.outputs import read_output

    with progress.stage("write"):
        write_outputs(result, out_dir, input_dir=input_dir)
    stale = Path(out_dir) / "report"
    if not report and stale.is_dir():   # pages of an earlier run would contradict these outputs
        import shutil

        shutil.rmtree(stale)
        progress.say(f"removed {stale}: it showed an earlier run (`keyfarm report {out_dir}` draws this one)")
    if report:
        try:
            from keyfarm.report import write_report
        except ImportError:
            write_report = None
        if write_report is not None:
            with progress.stage("report"):   # from the frames just written: no need to read them back
                tables = {name: frame if frame is None or isinstance(frame, pd.DataFrame) else
                          read_output(out_dir, name) for name, frame in result.output_tables().items()}
                write_report(out_dir, progress=progress, tables=tables)
    # timings of write/report are known only now: refresh run.json
    run_path = Path(out_dir) / "run.json"
    run = json.loads(run_path.read_text())
    run["timings"] = dict(progress.timings)
    run["peak_rss_gib"] = dict(progress.peaks)
    run_path.write_text(json.dumps(run, indent=2, sort_keys=True, default=str) + "\n")
    if report and write_report is not None:   # its view of run.json: now with the write and report stages
        from keyfarm.report.runinfo import write_run_info

        write_run_info(out_dir)
    elif not report:
        (Path(out_dir) / "run-info.html").unlink(missing_ok=True)   # an earlier report's, like its pages
    return result
