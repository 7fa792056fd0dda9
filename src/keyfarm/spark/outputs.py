"""Cluster edge features and edges.parquet on the executors: the driver holds no edge list.

- Edge features (scoring.edge_features: shares, signals, spans, weakest and strongest edge) read
  only the edges inside a cluster, so the key pairs inside clusters of 2+ accounts are grouped by
  cluster (`applyInPandas`, stages.cluster_edge_stage) and each group runs the local function on
  its clusters' edges. The driver collects one row per cluster; clusters without an inside edge
  (joined by a hub or by history) get the same function's values over no edges.
- edges.parquet is built per batch of key pairs (stages.edge_rows_stage: KeyGraph.edges_frame
  and the output cluster id), prompt examples are found per key group and joined back, and the
  executors write it as a folder of Parquet parts sorted by (key_a, key_b) across parts, which
  keyfarm.outputs.read_table reads in path order: the local engine's table.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm.spark import stages

EDGE_FLAGS = ("a", "b", "example")   # edge_rows_stage's working columns, not written


def _ddl(frame: pd.DataFrame) -> str:
    """A Spark DDL schema for the columns and dtypes of `frame`."""
    kinds = {"f": "double", "i": "long", "b": "boolean", "O": "string"}
    return ", ".join(f"{name} {kinds[frame[name].dtype.kind]}" for name in frame.columns)


def _empty_pairs(n_signals: int) -> pd.DataFrame:
    """Spark key pairs with no rows, in engine._pairs' columns."""
    return pd.DataFrame({"a": np.zeros(0, np.int64), "b": np.zeros(0, np.int64),
                         **{f"w{i}": np.zeros(0) for i in range(n_signals)},
                         **{f"t{i}": np.zeros(0, object) for i in range(n_signals)}})


def cluster_edge_features(pairs, bc, cbc, cids: np.ndarray, groups: int, per_batch, per_group) -> pd.DataFrame:
    """stages.cluster_edge_rows of every cluster in `cids` (sorted), one row each in that order:
    per group of clusters on the executors, and over no edges for a cluster without one."""
    from pyspark.sql import functions as F

    ctx, clusters = bc.value, cbc.value
    n = len(stages.SIGNALS)
    template = stages.cluster_edge_rows(stages.graph_of_pairs(_empty_pairs(n), ctx), np.zeros(0, np.int64),
                                        ctx, clusters)
    from pyspark.sql.types import LongType, StructField, StructType

    schema = StructType(pairs.schema.fields + [StructField("c", LongType())])
    inside = pairs.mapInPandas(per_batch(stages.inside_stage, bc, cbc), schema)
    from keyfarm.spark.engine import group_column

    rows = inside.withColumn("g", group_column(pairs.sparkSession, groups, "c")).groupBy("g") \
        .applyInPandas(per_group(stages.cluster_edge_stage, bc, cbc), _ddl(template)).toPandas()
    missing = np.setdiff1d(cids, rows["cluster_id"].to_numpy(np.int64))
    rows = pd.concat([rows, stages.cluster_edge_rows(stages.graph_of_pairs(_empty_pairs(n), ctx), missing, ctx,
                                                     clusters)], ignore_index=True)
    rows = rows.astype({c: template[c].dtype for c in template.columns if template[c].dtype.kind != "O"})
    return rows.set_index("cluster_id").reindex(cids).reset_index()


def edge_frame(pairs, ok, bc, cbc, key_group, rep: np.ndarray, per_batch, per_cogroup, keep=lambda f: f):
    """edges.parquet as a Spark frame (rows sorted by key_a, key_b): edge rows per batch of pairs,
    the prompt examples of the edges inside clusters (stages.example_stage per key group, over the
    prompts of each needed account's keys, keyed by its representative key `rep`) joined to both
    ends."""
    from pyspark.sql import functions as F

    spark = ok.sparkSession
    ctx = bc.value
    template = stages.edge_rows_stage(_empty_pairs(len(stages.SIGNALS)), ctx, cbc.value)
    # read four times (the examples' keys at both ends, the rows themselves, the sort's sample)
    rows = keep(pairs.mapInPandas(per_batch(stages.edge_rows_stage, bc, cbc), _ddl(template)))
    flagged = rows.filter(F.col("example"))
    needed = flagged.select(F.col("a").alias("key"), F.col("evidence_prompt").alias("token")) \
        .unionByName(flagged.select(F.col("b").alias("key"), F.col("evidence_prompt").alias("token"))).distinct()
    rep_map = spark.createDataFrame(pd.DataFrame({"key": np.arange(rep.size, dtype=np.int64), "rep": rep}),
                                    schema="key long, rep long") \
        .join(needed.select(F.col("key").alias("rep")).distinct(), "rep", "left_semi")
    sent = ok.filter(F.col("prompt").isNotNull()).select("key", "prompt") \
        .join(F.broadcast(rep_map), "key", "inner").select(F.col("rep").alias("key"), "prompt") \
        .dropDuplicates().withColumn("g", key_group)
    examples = keep(sent.groupBy("g").cogroup(needed.withColumn("g", key_group).groupBy("g")).applyInPandas(
        per_cogroup(stages.example_stage, bc), stages.EXAMPLE_SCHEMA))
    for end in ("a", "b"):
        found = examples.select(F.col("key").alias(f"_k{end}"), F.col("token").alias(f"_t{end}"),
                                F.col("prompt").alias(f"prompt_example_{end}"))
        rows = rows.join(found, (F.col(end) == F.col(f"_k{end}")) & (F.col("evidence_prompt") == F.col(f"_t{end}"))
                         & F.col("example"), "left").drop(f"_k{end}", f"_t{end}")
    columns = [c for c in template.columns if c not in EDGE_FLAGS] + ["prompt_example_a", "prompt_example_b"]
    return rows.orderBy("a", "b").select(*columns)


class SparkEdges:
    """edges.parquet still on the executors: written by them (`write`, a folder of parts), counted
    once, or collected (`to_pandas`, for the Python API's result)."""

    def __init__(self, frame, n_rows: int):
        self.frame = frame
        self.n_rows = int(n_rows)

    def __len__(self) -> int:
        return self.n_rows

    def write(self, path: str | Path) -> None:
        """OUT_DIR/edges.parquet as a folder of parts (an earlier run's file or folder replaced)."""
        path = Path(path)
        if path.is_file():
            path.unlink()
        context = self.frame.sparkSession.sparkContext
        context.setJobDescription("keyfarm write")   # the event log's name for these jobs (spark_stages.py)
        try:
            self.frame.write.mode("overwrite").parquet(str(path))
        finally:
            context.setJobDescription(None)

    def to_pandas(self) -> pd.DataFrame:
        """The table in memory, as the local engine's result holds it."""
        frame = self.frame.toPandas()
        for column in frame.columns:
            if frame[column].dtype.kind == "O":
                frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
        return frame


def activity_tables(ok, members: pd.DataFrame, cluster_ids, slot_seconds: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """activity.parquet and slots.parquet of the clusters `cluster_ids` from the valid requests
    `ok`: keyfarm.activity's grouping (activity_scope, broadcast) done by Spark, which hands the
    driver only the per (cluster, account, bin) and per (cluster, slot) counts; the tables are
    then built by the local engine's activity_frame and slots_frame."""
    from pyspark.sql import functions as F

    from keyfarm.activity import BIN_SECONDS, activity_frame, activity_scope, slots_frame

    in_scope, cluster, account_codes, accounts = activity_scope(members, cluster_ids)
    keys = np.flatnonzero(in_scope).astype(np.int64)
    scope = ok.sparkSession.createDataFrame(
        pd.DataFrame({"key": keys, "cluster_id": cluster[keys], "acc": account_codes[keys]}),
        schema="key long, cluster_id long, acc long")
    seconds = F.expr("(ts_ns - pmod(ts_ns, 1000000000)) div 1000000000")   # floor, as the local // 10**9
    rows = ok.join(F.broadcast(scope), "key").select(
        "cluster_id", "acc", seconds.alias("s"),
        (F.coalesce("prompt_tokens", F.lit(0)) + F.coalesce("completion_tokens", F.lit(0))).alias("tokens"))
    counts = rows.groupBy("cluster_id", "acc", (F.col("s") - F.pmod("s", F.lit(BIN_SECONDS))).alias("bin")) \
        .agg(F.count("*").alias("n_requests"), F.sum("tokens").alias("tokens")).toPandas()
    slots = rows.select("cluster_id", "acc", (F.col("s") - F.pmod("s", F.lit(int(slot_seconds)))).alias("slot")) \
        .distinct().groupBy("cluster_id", "slot").agg(F.count("*").alias("n_accounts")) \
        .filter(F.col("n_accounts") >= 2).toPandas()
    return activity_frame(counts, accounts), slots_frame(slots)


def hub_examples(ok, incidence, hubs: pd.DataFrame, config) -> pd.DataFrame:
    """`hubs` with `example` (signals.prompt_examples.hubs_with_examples): Spark finds the smallest
    key reaching each prompt hub token in the incidence and hands the driver those keys' prompts."""
    from pyspark.sql import functions as F

    from keyfarm.signals.prompt_examples import hubs_with_examples

    spark = ok.sparkSession
    tokens = hubs.loc[hubs["signal"] == "prompt", "token"].to_numpy(dtype=object)
    wanted = spark.createDataFrame(pd.DataFrame({"token": tokens}), schema="token string")
    needed = incidence.join(F.broadcast(wanted), "token", "left_semi").groupBy("token") \
        .agg(F.min("key").alias("key")).toPandas()
    needed = pd.DataFrame({"key": needed["key"].to_numpy(np.int64), "token": needed["token"].to_numpy(dtype=object)}) \
        .sort_values("token", kind="stable").reset_index(drop=True)
    keys = spark.createDataFrame(pd.DataFrame({"key": needed["key"].to_numpy(np.int64)}), schema="key long")
    pairs = ok.filter(F.col("prompt").isNotNull()).join(F.broadcast(keys), "key", "left_semi") \
        .select("key", "prompt").toPandas()
    pairs = pd.DataFrame({"key": pairs["key"].to_numpy(np.int64), "prompt": pairs["prompt"].to_numpy(dtype=object)})
    return hubs_with_examples(hubs, pairs, needed, config)
