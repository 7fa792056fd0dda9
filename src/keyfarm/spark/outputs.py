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
    rows = inside.withColumn("g", F.pmod(F.hash("c"), F.lit(groups))).groupBy("g") \
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
