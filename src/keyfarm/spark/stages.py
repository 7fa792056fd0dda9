"""Per-partition stage functions of the Spark engine: pandas in, pandas out, no Spark imports.

Each function is what one `mapInPandas`/`applyInPandas` call runs on one batch or group. They only
adapt frames (Spark column types ↔ the validated dtypes) and call the local engine's own stage
functions: io.validate_requests, the signals' `incidence`, graph.build's merge/degree/weighting/
projection, scoring.key_activity and pipeline.key_totals. Nothing here re-implements a stage.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from keyfarm.graph.weighting import SIGNALS

# how each signal's incidence can be cut up without changing a single row (see engine docstring)
SIGNAL_PARTITIONING = {"account": "driver", "payment": "driver", "device": "key", "network": "block",
                       "prompt": "mapreduce", "timing": "parts"}

VALID_SCHEMA = ("key long, ts_ns long, ip string, ip_version int, ip_hi long, ip_lo long, "
                "device_fingerprint string, user_agent string, prompt string, prompt_tokens long, "
                "completion_tokens long")
CHECKED_SCHEMA = "kind string, " + VALID_SCHEMA + ", source_row long, reason string, raw string"
INCIDENCE_SCHEMA = "key long, token string, weight double"
KEY_STAGE_SCHEMA = ("kind string, key long, token string, weight double, t long, v1 long, v2 long, "
                    "v3 double, v4 long")
EXAMPLE_SCHEMA = "key long, token string, prompt string"
PROMPT_TEXT_SCHEMA = "key long, account long, text_id long, text string"
PROMPT_BAND_SCHEMA = "text_id long, band int, bucket long"
LINK_SIGNALS = tuple(s for s in SIGNALS if s != "account")   # what links accounts (pipeline.account_links)
ACCOUNT_PAIR_SCHEMA = "x long, y long, " + ", ".join(f"{s} double" for s in LINK_SIGNALS)
ACCOUNT_LINK_SCHEMA = "x long, y long, weight double, control double"
COMMUNITY_SCHEMA = "account long, component long, label long"
TOKEN_STAGE_SCHEMA = ("kind string, a long, b long, token string, signal string, n_accounts long, "
                      "n_keys long, " + ", ".join(f"w{i} double, c{i} double, t{i} string"
                                                   for i in range(len(SIGNALS))))
VALID_COLUMNS = [c.split()[0] for c in VALID_SCHEMA.split(", ")]
_PANDAS_TYPES = {"long": "Int64", "int": "Int32", "double": "float64", "string": object}


def conform(frame: pd.DataFrame, ddl: str) -> pd.DataFrame:
    """`frame` with exactly the columns of a Spark DDL schema, in order, in Arrow-safe dtypes
    (nullable integers; missing columns are null)."""
    out = {}
    for name, kind in (c.split() for c in ddl.split(", ")):
        values = frame[name] if name in frame else pd.Series([None] * len(frame), index=frame.index, dtype=object)
        if kind in ("long", "int"):
            out[name] = pd.array(values.to_numpy(dtype=object) if values.dtype == object else values,
                                 dtype=_PANDAS_TYPES[kind])
        elif kind == "double":
            out[name] = pd.to_numeric(values).astype(np.float64)
        else:
            out[name] = values.astype(object).to_numpy(dtype=object)
    return pd.DataFrame(out)


@dataclass
class WorkerContext:
    """What every partition needs from the driver (broadcast once): the sorted keys' ids and
    accounts, the key ids rejected by the keys table, the job configuration."""

    key_id: pd.Index
    account: np.ndarray
    account_id: np.ndarray
    quarantined_keys: frozenset
    config: object
    nanos_columns: tuple = ()     # input columns Spark read as int64 nanoseconds (Parquet TIMESTAMP(NANOS))
    initial: np.ndarray | None = None   # per account, its previous community or −1 (history.initial_labels)

    @property
    def n_accounts(self) -> int:
        return int(self.account.max()) + 1 if self.account.size else 0

    def keys_frame(self) -> pd.DataFrame:
        """tables.keys as the signals read it (row = key index)."""
        return pd.DataFrame({"key_id": self.key_id.to_numpy(dtype=object), "account_id": self.account_id,
                             "account": self.account})


# ---------------------------------------------------------------- requests: validate, convert

def check_batch(frame: pd.DataFrame, ctx: WorkerContext) -> pd.DataFrame:
    """Validate one batch of raw request rows (index `source_row`) with io.validate_requests; valid
    rows in Spark's column types, quarantined rows as JSON of their values as read."""
    from keyfarm.io import validate_requests

    frame = frame.set_index(frame.pop("source_row").to_numpy(np.int64))
    for col in ctx.nanos_columns:
        if col in frame:
            frame[col] = pd.to_datetime(frame[col], unit="ns", utc=True)
    valid, quarantined = validate_requests(frame, ctx.key_id, ctx.quarantined_keys)
    out = to_spark_requests(valid)
    out.insert(0, "kind", "ok")
    out["source_row"] = None
    out["reason"] = None
    out["raw"] = None
    if quarantined is not None and len(quarantined):
        values = quarantined.drop(columns=["source_row", "reason"])
        raw = [json.dumps({k: (None if _missing(v) else str(v)) for k, v in row.items()})
               for row in values.to_dict("records")]
        q = pd.DataFrame({"kind": "q", "source_row": quarantined["source_row"].to_numpy(np.int64),
                          "reason": quarantined["reason"].to_numpy(dtype=object), "raw": raw})
        # conform each part first: a concat of int64 with missing values would pass through float64
        return pd.concat([conform(out, CHECKED_SCHEMA), conform(q, CHECKED_SCHEMA)], ignore_index=True)
    return conform(out, CHECKED_SCHEMA)


def _missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def to_spark_requests(valid: pd.DataFrame) -> pd.DataFrame:
    """Validated requests → Spark-friendly columns (int64 nanoseconds; uint64 halves as int64 bits)."""
    return pd.DataFrame({
        "key": valid["key"].to_numpy(np.int64),
        "ts_ns": valid["ts"].array.asi8 if len(valid) else np.zeros(0, np.int64),
        "ip": valid["ip"].to_numpy(dtype=object),
        "ip_version": valid["ip_version"].to_numpy(np.int32),
        "ip_hi": valid["ip_hi"].to_numpy(np.uint64).view(np.int64),
        "ip_lo": valid["ip_lo"].to_numpy(np.uint64).view(np.int64),
        "device_fingerprint": valid["device_fingerprint"].to_numpy(dtype=object),
        "user_agent": valid["user_agent"].to_numpy(dtype=object),
        "prompt": valid["prompt"].to_numpy(dtype=object),
        "prompt_tokens": valid["prompt_tokens"].astype("Int64"),
        "completion_tokens": valid["completion_tokens"].astype("Int64"),
    })


def from_spark_requests(pdf: pd.DataFrame) -> pd.DataFrame:
    """Spark rows → validated requests exactly as io.py types them, sorted by content."""
    from keyfarm.io import sort_requests

    def text(col):
        return pd.Series(pdf[col].to_numpy(dtype=object), dtype=object) if col in pdf else \
            pd.Series([None] * len(pdf), dtype=object)

    def ints(col):
        return pd.array(pdf[col], dtype="Int64") if col in pdf else pd.array([None] * len(pdf), dtype="Int64")

    frame = pd.DataFrame({
        "key": pdf["key"].to_numpy(np.int64),
        "ts": pd.Series(pd.to_datetime(pdf["ts_ns"].to_numpy(np.int64), unit="ns", utc=True)),
        "device_fingerprint": text("device_fingerprint"), "user_agent": text("user_agent"),
        "prompt": text("prompt"), "prompt_tokens": ints("prompt_tokens"),
        "completion_tokens": ints("completion_tokens"),
        "ip": text("ip"),
        "ip_version": pdf["ip_version"].to_numpy(np.int8) if "ip_version" in pdf else np.zeros(len(pdf), np.int8),
        "ip_hi": pdf["ip_hi"].to_numpy(np.int64).view(np.uint64) if "ip_hi" in pdf else np.zeros(len(pdf), np.uint64),
        "ip_lo": pdf["ip_lo"].to_numpy(np.int64).view(np.uint64) if "ip_lo" in pdf else np.zeros(len(pdf), np.uint64),
    })
    return sort_requests(frame)


def _tables(ctx: WorkerContext, requests: pd.DataFrame):
    from keyfarm.io import Tables

    empty = pd.DataFrame()
    return Tables(keys=ctx.keys_frame(), accounts=empty, payments=empty, requests=requests)


def incidence_rows(frames) -> pd.DataFrame:
    parts = [f[["key", "token", "weight"]] for f in frames if len(f)]
    if not parts:
        return pd.DataFrame({"key": np.zeros(0, np.int64), "token": np.zeros(0, object), "weight": np.zeros(0)})
    frame = pd.concat(parts, ignore_index=True)
    return pd.DataFrame({"key": frame["key"].to_numpy(np.int64), "token": frame["token"].to_numpy(dtype=object),
                         "weight": frame["weight"].to_numpy(np.float64)})


# ---------------------------------------------------------------- signals

def signal_stage(pdf: pd.DataFrame, ctx: WorkerContext, names: tuple[str, ...]) -> pd.DataFrame:
    """The named signals' `incidence()` on one group of requests (key, block or global group)."""
    from keyfarm.signals import registry

    tables = _tables(ctx, from_spark_requests(pdf))
    fns = registry()
    return conform(incidence_rows(fns[n](tables, ctx.config) for n in names), INCIDENCE_SCHEMA)


def timing_part_stage(pdf: pd.DataFrame, ctx: WorkerContext) -> pd.DataFrame:
    """One part of the timing signal (column `part`, an index into signals.timing.incidence_parts)
    on the distinct (key, slot, prefix) rows it reads: timing.incidence(part=…)."""
    from keyfarm.signals.timing import incidence

    if len(pdf) == 0:
        return conform(pd.DataFrame(), INCIDENCE_SCHEMA)
    inc = incidence(_tables(ctx, from_spark_requests(pdf)), ctx.config, part=int(pdf["part"].iloc[0]))
    return conform(incidence_rows([inc]), INCIDENCE_SCHEMA)


def key_stage(pdf: pd.DataFrame, ctx: WorkerContext, names: tuple[str, ...]) -> pd.DataFrame:
    """One group of keys (all their requests): per-key signals' incidence, and the per-key
    aggregates the scores need (key_activity's daily tokens and active bins, key_totals)."""
    from keyfarm.pipeline import key_totals
    from keyfarm.scoring import key_activity
    from keyfarm.signals import registry

    requests = from_spark_requests(pdf)
    tables = _tables(ctx, requests)
    fns = registry()
    inc = incidence_rows(fns[n](tables, ctx.config) for n in names)
    activity = key_activity(requests, bin_seconds=ctx.config.scoring.sync_bin_seconds,
                            network_config=ctx.config.network,
                            fine_seconds=ctx.config.scoring.cotiming_bin_seconds)
    totals = key_totals(requests, activity)
    parts = [
        pd.DataFrame({"kind": "inc", "key": inc["key"], "token": inc["token"], "weight": inc["weight"]}),
        pd.DataFrame({"kind": "daily", "key": activity.daily["key"].to_numpy(np.int64),
                      "t": activity.daily["day"].to_numpy(np.int64),
                      "v1": activity.daily["tokens"].to_numpy(np.int64)}),
        pd.DataFrame({"kind": "bin", "key": activity.bins["key"].to_numpy(np.int64),
                      "t": activity.bins["bin"].to_numpy(np.int64)}),
        pd.DataFrame({"kind": "fbin", "key": activity.fine_bins["key"].to_numpy(np.int64),
                      "t": activity.fine_bins["bin"].to_numpy(np.int64)}),
        pd.DataFrame({"kind": "blocks", "key": activity.blocks.index.to_numpy(np.int64),
                      "v1": activity.blocks.to_numpy(np.int64)}),
        pd.DataFrame({"kind": "total", "key": totals.index.to_numpy(np.int64),
                      "v1": totals["total_tokens"].to_numpy(np.int64),
                      "v2": totals["peak_daily_tokens"].to_numpy(np.int64),
                      "v3": totals["mean_daily_tokens"].to_numpy(np.float64),
                      "v4": totals["n_requests"].to_numpy(np.int64)}),
    ]
    return pd.concat([conform(p, KEY_STAGE_SCHEMA) for p in parts], ignore_index=True)


# ---------------------------------------------------------------- prompts: the map side

def prompt_text_stage(batch: pd.DataFrame, ctx: WorkerContext) -> pd.DataFrame:
    """Distinct (key, prompt) rows → (key, account, text_id, text) of the prompts long enough to
    hash, with signals.prompt.distinct_normalized (each raw prompt of the batch once). text_id is
    the 64-bit hash of the normalised text that the local signal names a `pdup:` token by, so equal
    texts meet under one id in every batch; text is one raw prompt of that text (band_buckets
    normalises it again, to the same text)."""
    from keyfarm.signals.prompt import distinct_normalized

    if len(batch) == 0:
        return conform(pd.DataFrame(), PROMPT_TEXT_SCHEMA)
    raw_codes, raw_uniques = pd.factorize(batch["prompt"].to_numpy(dtype=object))
    norm_codes, text_hash, text_raw, usable = distinct_normalized(raw_uniques, ctx.config.prompt)
    codes = norm_codes[raw_codes]
    keep = usable[codes]
    key = batch["key"].to_numpy(np.int64)[keep]
    texts = np.asarray(raw_uniques, dtype=object)[text_raw]
    return pd.DataFrame({"key": key, "account": ctx.account[key].astype(np.int64),
                         "text_id": text_hash.view(np.int64)[codes[keep]], "text": texts[codes[keep]]})


def prompt_band_stage(batch: pd.DataFrame, ctx: WorkerContext) -> pd.DataFrame:
    """Distinct (text_id, text) rows → one (text_id, band, bucket) row per LSH band, by the local
    signal's own band function (signals.prompt.band_buckets: normalise, sign, cut into bands)."""
    from keyfarm.signals.prompt import band_buckets

    bands = ctx.config.prompt.bands
    if len(batch) == 0:
        return conform(pd.DataFrame(), PROMPT_BAND_SCHEMA)
    buckets = band_buckets(batch["text"].to_numpy(dtype=object), ctx.config.prompt)
    return pd.DataFrame({"text_id": np.repeat(batch["text_id"].to_numpy(np.int64), bands),
                         "band": np.tile(np.arange(bands, dtype=np.int32), len(batch)),
                         "bucket": buckets.ravel().view(np.int64)})


# ---------------------------------------------------------------- communities

def account_pair_stage(batch: pd.DataFrame, ctx: WorkerContext) -> pd.DataFrame:
    """Key pairs (a, b, raw per-signal sums w0..) → (x, y) accounts and the saturated evidence per
    linking signal (graph.weighting.saturate, as graph_from_pairs applies it), pairs between two
    accounts only."""
    from keyfarm.graph.weighting import saturate

    w = saturate({s: batch[f"w{i}"].to_numpy(np.float64) for i, s in enumerate(SIGNALS)}, ctx.config)
    x = ctx.account[batch["a"].to_numpy(np.int64)]
    y = ctx.account[batch["b"].to_numpy(np.int64)]
    between = x != y
    out = {"x": x[between].astype(np.int64), "y": y[between].astype(np.int64)}
    out.update({s: w[s][between] for s in LINK_SIGNALS})
    return pd.DataFrame(out)


def account_link_stage(group: pd.DataFrame, ctx: WorkerContext) -> pd.DataFrame:
    """One group of account pairs (every key pair of each) → pipeline.account_links with the
    control signals' part: (x, y, weight, control)."""
    from keyfarm.pipeline import CONTROL_SIGNALS, account_links

    src, dst, weight, control = account_links(group["x"].to_numpy(np.int64), group["y"].to_numpy(np.int64),
                                              {s: group[s].to_numpy(np.float64) for s in LINK_SIGNALS},
                                              ctx.config.community.min_edge_weight, part=CONTROL_SIGNALS)
    return pd.DataFrame({"x": src, "y": dst, "weight": weight, "control": control})


def component_stage(group: pd.DataFrame, ctx: WorkerContext, seed: int) -> pd.DataFrame:
    """One connected component's account links (x, y, weight, component) → Leiden labels of its
    accounts by community.bycomponent's rule (pipeline.component_leiden, the job's seed) and
    pipeline.settle_communities, as pipeline.detect_communities runs them; with a
    previous run the closer of that and the run from its partition (history.warmstart.
    warm_where_changed, as the local engine runs it)."""
    from keyfarm.community.bycomponent import component_communities
    from keyfarm.pipeline import component_leiden, control_links, settle_communities

    x = group["x"].to_numpy(np.int64)
    y = group["y"].to_numpy(np.int64)
    w = group["weight"].to_numpy(np.float64)
    nodes = np.union1d(x, y)
    cfg = ctx.config.community
    detect = component_leiden(cfg, seed)
    lx, ly = np.searchsorted(nodes, x), np.searchsorted(nodes, y)   # component_communities' numbering
    control = control_links(lx, ly, group["control"].to_numpy(np.float64)) if cfg.control_link > 0 else None
    labels = settle_communities(lx, ly, w, nodes.size, component_communities(nodes, x, y, w, detect), cfg, control)
    if ctx.initial is not None:
        from keyfarm.history.warmstart import warm_where_changed
        local = np.arange(nodes.size)
        labels = warm_where_changed(
            lx, ly, w, nodes.size, ctx.initial[nodes], np.zeros(nodes.size, np.int64), labels,
            cfg.hysteresis * cfg.resolution,
            lambda s, d, ww, start, comp: component_communities(local, s, d, ww, detect, start),
            lambda s, d, ww, lab: settle_communities(s, d, ww, nodes.size, lab, cfg, control))
    return pd.DataFrame({"account": nodes, "component": np.full(nodes.size, int(group["component"].iloc[0])),
                         "label": labels})


# ---------------------------------------------------------------- tokens: degrees, weights, projection

def example_stage(pairs: pd.DataFrame, needed: pd.DataFrame, ctx: WorkerContext) -> pd.DataFrame:
    """One group of keys: their distinct (key, prompt) rows and the (key, token) rows to find an
    example prompt of → signals.prompt_examples.token_examples."""
    from keyfarm.signals.prompt_examples import token_examples

    pairs = pd.DataFrame({"key": pairs["key"].to_numpy(np.int64), "prompt": pairs["prompt"].to_numpy(dtype=object)})
    needed = pd.DataFrame({"key": needed["key"].to_numpy(np.int64), "token": needed["token"].to_numpy(dtype=object)})
    return conform(token_examples(pairs, needed, ctx.config), EXAMPLE_SCHEMA)


def token_stage(pdf: pd.DataFrame, ctx: WorkerContext) -> pd.DataFrame:
    """One group of tokens (all their incidences): degrees, weights and hubs, then the projection.

    Projection runs graph.build.project_tokens with every (token, key) incidence as its own node,
    so each output pair carries exactly one token's contribution, computed by the projection
    kernel itself. Per key pair and signal the group then keeps the sum of contributions and the
    largest one with its token (ties: the smallest token, the local kernel's first in token order);
    Spark combines groups by the same rule.
    """
    from keyfarm.graph.build import incidence_by_account, merge_incidences, token_degrees
    from keyfarm.graph.weighting import weigh_tokens

    inc = merge_incidences([pdf])
    tokens = weigh_tokens(token_degrees(inc, ctx.account), ctx.n_accounts, ctx.config)
    hubs = tokens.loc[tokens["is_hub"]]
    out = [pd.DataFrame({"kind": "hub", "token": hubs["token"].to_numpy(dtype=object),
                         "signal": hubs["signal"].to_numpy(dtype=object),
                         "n_accounts": hubs["n_accounts"].to_numpy(np.int64),
                         "n_keys": hubs["n_keys"].to_numpy(np.int64)})]
    projected = tokens[tokens["projected"]].reset_index(drop=True)
    edges = _contributions(incidence_by_account(inc, ctx.account), projected)
    if edges is not None:
        out.append(edges)
    return pd.concat([conform(p, TOKEN_STAGE_SCHEMA) for p in out], ignore_index=True)


def _contributions(inc: pd.DataFrame, projected: pd.DataFrame) -> pd.DataFrame | None:
    from keyfarm.graph.build import project_tokens

    if len(projected) == 0:
        return None
    sel = inc[inc["token"].isin(pd.Index(projected["token"]))].sort_values(["token", "key"], kind="stable")
    node_key = sel["key"].to_numpy(np.int64)
    node_token = pd.Index(projected["token"]).get_indexer(sel["token"])
    nodes = sel.assign(key=np.arange(len(sel), dtype=np.int64))
    src, dst, w, _ = project_tokens(nodes, projected, len(nodes))
    if src.size == 0:
        return None
    t_row = node_token[src]
    signal = pd.Index(SIGNALS).get_indexer(projected["signal"]).astype(np.int64)[t_row]
    c = w[np.arange(src.size), signal]
    a, b = node_key[src], node_key[dst]
    # per (a, b, signal): sum, and the largest contribution with the smallest token row on ties
    order = np.lexsort((t_row, -c, signal, b, a))
    a, b, signal, c, t_row = a[order], b[order], signal[order], c[order], t_row[order]
    first = np.ones(a.size, bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1]) | (signal[1:] != signal[:-1])
    group = np.cumsum(first) - 1
    sums = _exact_sums(group, c)
    pa, pb, ps = a[first], b[first], signal[first]
    pc, pt = c[first], t_row[first]
    pair_first = np.ones(pa.size, bool)
    pair_first[1:] = (pa[1:] != pa[:-1]) | (pb[1:] != pb[:-1])
    pair = np.cumsum(pair_first) - 1
    n_pairs = int(pair[-1]) + 1
    frame = {"kind": np.full(n_pairs, "edge", dtype=object), "a": pa[pair_first], "b": pb[pair_first]}
    token_text = projected["token"].to_numpy(dtype=object)
    for i in range(len(SIGNALS)):
        on = ps == i
        wi = np.zeros(n_pairs)
        ci = np.zeros(n_pairs)
        ti = np.full(n_pairs, None, dtype=object)
        wi[pair[on]] = sums[on]
        ci[pair[on]] = pc[on]
        best = on & (pc > 0)
        ti[pair[best]] = token_text[pt[best]]
        frame[f"w{i}"], frame[f"c{i}"], frame[f"t{i}"] = wi, ci, ti
    return pd.DataFrame(frame)


def _exact_sums(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sum per consecutive group; contributions are multiples of 2**-32, so any order is exact."""
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    return np.add.reduceat(values, starts) if values.size else np.zeros(0)


# ---------------------------------------------------------------- scores and edges per cluster

@dataclass
class ClusterContext:
    """What the cluster and edge stages need from the driver once communities are settled (broadcast):
    per key its cluster (`membership`, canonical ids), per cluster whether it has 2+ accounts
    (`multi`, a clusters.parquet row), its id in the outputs (`final`, history's stable id; None
    before history runs) and the judged hubs' members (scoring.edge_features reads them)."""

    membership: np.ndarray
    multi: np.ndarray
    hub_members: pd.DataFrame
    final: np.ndarray | None = None

    def inside(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per key pair: the cluster of 2+ accounts holding both keys, or −1."""
        ca, cb = self.membership[a], self.membership[b]
        return np.where((ca == cb) & self.multi[ca], ca, -1)


def graph_of_pairs(frame: pd.DataFrame, ctx: WorkerContext):
    """The KeyGraph of Spark key pairs (a, b, w<i> raw sums, t<i> strongest token text per signal;
    engine._pairs), sorted by (a, b) as the local graph is, with graph_from_pairs' saturation."""
    from keyfarm.graph.build import graph_from_pairs

    frame = frame.sort_values(["a", "b"], kind="stable").reset_index(drop=True)
    w = frame[[f"w{i}" for i in range(len(SIGNALS))]].to_numpy(np.float64).reshape(len(frame), len(SIGNALS))
    text = frame[[f"t{i}" for i in range(len(SIGNALS))]].to_numpy(dtype=object).reshape(len(frame), len(SIGNALS))
    present = pd.notna(text)
    codes, tokens = pd.factorize(pd.Series(text[present], dtype=object), sort=True)
    ids = np.full(text.shape, -1, np.int64)
    ids[present] = codes
    keys = pd.DataFrame({"key_id": ctx.key_id.to_numpy(dtype=object), "account_id": ctx.account_id,
                         "account": ctx.account})
    return graph_from_pairs(frame["a"].to_numpy(np.int64), frame["b"].to_numpy(np.int64), w, ids,
                            np.asarray(tokens, dtype=object), keys, ctx.config)


def inside_stage(batch: pd.DataFrame, ctx: WorkerContext, clusters: ClusterContext) -> pd.DataFrame:
    """Key pairs → the ones inside one cluster of 2+ accounts, with that cluster `c`."""
    c = clusters.inside(batch["a"].to_numpy(np.int64), batch["b"].to_numpy(np.int64))
    return batch[c >= 0].assign(c=c[c >= 0])


def cluster_edge_stage(group: pd.DataFrame, ctx: WorkerContext, clusters: ClusterContext) -> pd.DataFrame:
    """One group of clusters' inside key pairs → scoring.edge_features of those clusters, with
    pipeline.edge_ends of their weakest and strongest edge in place of the edge indices."""
    cids = np.unique(group["c"].to_numpy(np.int64))
    return cluster_edge_rows(graph_of_pairs(group.drop(columns="c"), ctx), cids, ctx, clusters)


def cluster_edge_rows(graph, cids: np.ndarray, ctx: WorkerContext, clusters: ClusterContext) -> pd.DataFrame:
    """cluster_id, scoring.edge_features of clusters `cids` over `graph` (their inside edges), and
    for the weakest and the strongest edge its pipeline.edge_ends as `<end>_<column>`."""
    from keyfarm.pipeline import edge_ends
    from keyfarm.scoring.features import edge_features

    feats = edge_features(ctx.account, clusters.membership, cids, graph.src, graph.dst, graph.weight, graph.w,
                          ctx.config.scoring, hub_members=clusters.hub_members)
    out = pd.concat([pd.DataFrame({"cluster_id": np.asarray(cids, np.int64)}),
                     feats.drop(columns=["weakest_edge", "strongest_edge"])], axis=1)
    for end in ("weakest", "strongest"):
        ends = edge_ends(graph, feats[f"{end}_edge"].to_numpy(np.int64))
        for column in ends.columns:
            out[f"{end}_{column}"] = ends[column].to_numpy()
    return out


def edge_rows_stage(batch: pd.DataFrame, ctx: WorkerContext, clusters: ClusterContext) -> pd.DataFrame:
    """Key pairs → edges.parquet rows as pipeline.assemble_outputs and history.finish make them
    (KeyGraph.edges_frame, cluster_id the output id or −1), plus a and b (key indices, the sort
    order) and `example`: whether the edge gets prompt examples (pipeline.prompt_examples_needed)."""
    graph = graph_of_pairs(batch, ctx)
    frame = graph.edges_frame()
    same = clusters.membership[graph.src] == clusters.membership[graph.dst]
    c = np.where(same, clusters.membership[graph.src], -1)
    frame["cluster_id"] = np.where(c >= 0, clusters.final[np.maximum(c, 0)], -1).astype(np.int64)
    frame.insert(0, "b", graph.dst)
    frame.insert(0, "a", graph.src)
    frame["example"] = (graph.evidence["prompt"] >= 0) & (clusters.inside(graph.src, graph.dst) >= 0)
    return frame
