"""Community detection on Spark: the account graph, its connected components, Leiden per component.

- Account links: key pairs are saturated and mapped to their accounts per batch, then grouped by
  account pair and reduced with pipeline.account_links (the local engine's contraction).
- Connected components by the large-star / small-star iteration of Kiveris, Lattanzi, Mirrokni,
  Rastogi and Vassilvitskii, "Connected Components in MapReduce and Beyond" (SoCC 2014), over
  Spark SQL joins and aggregations. Each round's edge list is checkpointed, so the plan (and the
  lineage a lost task would recompute) stays one round deep.
- Leiden on each component inside `applyInPandas` grouped by component
  (stages.component_stage: community.bycomponent's rule, the job's seed), which is how the local
  engine runs it too, so both find the same communities. A component is one task's work: the
  giant component (if any) runs as one task; its size is reported.

The driver collects one row per linked account (its component and community label), no edges.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SparkCommunities:
    """Per linked account (sorted): its component (smallest account in it) and community label
    within the component; plus the sizes the run record reports."""

    account: np.ndarray
    component: np.ndarray
    label: np.ndarray
    n_links: int
    star_rounds: int

    @property
    def giant_component(self) -> int:
        """Accounts in the largest component (0 without links)."""
        return int(np.unique(self.component, return_counts=True)[1].max()) if self.component.size else 0

    def membership(self, account: np.ndarray) -> np.ndarray:
        """Per key: community id as pipeline.detect_communities gives it (accounts without links
        alone; keys of one account together; ids by smallest key). With a previous run,
        component_stage already kept, per component, the partition closer to it."""
        from keyfarm.pipeline import stable_cluster_ids

        n_acc = int(account.max()) + 1 if account.size else 0
        sub = _numbered(self.component, self.label)
        acc_memb = np.arange(n_acc, dtype=np.int64) + (int(sub.max()) + 1 if sub.size else 0)
        acc_memb[self.account] = sub
        return stable_cluster_ids(acc_memb[account])


def _numbered(component: np.ndarray, label: np.ndarray) -> np.ndarray:
    """One label per distinct (component, label within it)."""
    if not component.size:
        return np.zeros(0, np.int64)
    _, sub = np.unique(np.stack([component, label], axis=1), axis=0, return_inverse=True)
    return np.asarray(sub, np.int64).ravel()


def truncate(frame, persisted):
    """Materialise a round's edges and cut the lineage: a reliable checkpoint when the session has
    a checkpoint directory (spark.checkpoint.dir), else a local one."""
    sc = frame.sparkSession.sparkContext
    frame = frame.checkpoint(eager=True) if sc.getCheckpointDir() else frame.localCheckpoint(eager=True)
    persisted.append(frame)
    return frame


def _large_star(edges):
    """Each node u links every larger neighbour v to m(u), the smallest of u and its neighbours."""
    from pyspark.sql import functions as F

    both = edges.unionByName(edges.select(F.col("v").alias("u"), F.col("u").alias("v")))
    low = both.groupBy("u").agg(F.least(F.min("v"), F.first("u")).alias("m"))
    return both.join(low, "u").filter(F.col("v") > F.col("u")) \
        .select(F.col("v").alias("u"), F.col("m").alias("v")).distinct()


def _small_star(edges):
    """Each node u links itself and every smaller neighbour to m, the smallest of them."""
    from pyspark.sql import functions as F

    down = edges.select(F.greatest("u", "v").alias("u"), F.least("u", "v").alias("v"))
    low = down.groupBy("u").agg(F.min("v").alias("m"))
    moved = down.join(low, "u").filter(F.col("v") != F.col("m")).select(F.col("v").alias("u"), F.col("m").alias("v"))
    return moved.unionByName(low.select("u", F.col("m").alias("v"))).distinct()


def connected_components(edges, persisted: list, max_rounds: int = 200):
    """(node, component) of every node of `edges` (columns u, v; no self-loops), component = the
    smallest node of it; and the number of large-star/small-star rounds it took.

    Both operations keep connectivity and every edge points from a larger to a smaller node; when
    no edge's smaller end is another edge's larger end, the edges form stars around their
    components' smallest nodes (the fixpoint of the paper's alternation)."""
    from pyspark.sql import functions as F

    current = truncate(edges.select(F.greatest("u", "v").alias("u"), F.least("u", "v").alias("v")).distinct(),
                        persisted)
    rounds = 0
    while True:
        rounds += 1
        current = truncate(_small_star(_large_star(current)), persisted)
        parents = current.select(F.col("v").alias("n")).distinct()
        if parents.join(current.select(F.col("u").alias("n")), "n", "left_semi").isEmpty():
            break
        if rounds >= max_rounds:   # O(log n) rounds in practice; this bounds a bug, not a graph
            raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")
    roots = current.select(F.col("v").alias("node")).distinct().withColumn("component", F.col("node"))
    return current.select(F.col("u").alias("node"), F.col("v").alias("component")).unionByName(roots), rounds


def spark_communities(pairs, bc, config, seed: int, groups: int, per_batch, per_group, keep) -> SparkCommunities:
    """Communities of the account graph from the Spark frame of key `pairs` (a, b, w0.. raw sums,
    one row per key pair), Leiden on the executors, one group per component."""
    from pyspark.sql import functions as F

    from keyfarm.spark import stages

    persisted: list = []
    by_pair = pairs.select("a", "b", *[f"w{i}" for i in range(len(stages.SIGNALS))]) \
        .mapInPandas(per_batch(stages.account_pair_stage, bc), stages.ACCOUNT_PAIR_SCHEMA)
    from keyfarm.spark.engine import group_column

    links = keep(by_pair.withColumn("g", group_column(pairs.sparkSession, groups, "x", "y")).groupBy("g")
                 .applyInPandas(per_group(stages.account_link_stage, bc), stages.ACCOUNT_LINK_SCHEMA))
    try:
        nodes, rounds = connected_components(links.select(F.col("x").alias("u"), F.col("y").alias("v")), persisted)
        component = nodes.select(F.col("node").alias("x"), "component")
        labelled = links.join(component, "x").groupBy("component") \
            .applyInPandas(per_group(stages.component_stage, bc, seed), stages.COMMUNITY_SCHEMA).toPandas()
        n_links = int(links.count())
    finally:
        for frame in persisted:
            frame.unpersist()
    labelled = labelled.sort_values("account", kind="stable")
    return SparkCommunities(account=labelled["account"].to_numpy(np.int64),
                            component=labelled["component"].to_numpy(np.int64),
                            label=labelled["label"].to_numpy(np.int64),
                            n_links=n_links, star_rounds=rounds)
