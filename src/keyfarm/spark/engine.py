"""The linkage job on Spark (`keyfarm link --engine spark`): the local stages, run per partition.

The driver loads and validates the small tables (keys, accounts, payments). Spark reads requests and
validates them per batch with io.validate_requests; the driver gets counts and quarantined rows only.
Signals run where their incidence is unchanged by the cut: account and payment (no requests) on the
driver; device per group of keys; network per group of address blocks (every network token and count
lives inside one IPv4 /24 or IPv6 /48); prompt as a map per distinct prompt and a reduce per LSH
band bucket (keyfarm.spark.prompts); timing, whose slot expectations are population counts, as
one group per part of signals.timing.incidence_parts (a population's anomalous slots or its
lockstep groups), each fed one row per distinct (key, slot, network prefix). Tokens are then grouped: degrees,
weights, hubs and the projection (graph.build's functions) run per token group; pair evidence is
summed in Spark (contributions are multiples of 2**-32, so sums are exact in any order) and the
strongest token per (pair, signal) is the largest contribution, smallest token on ties, as in the
local kernel. Communities run on the executors (keyfarm.spark.communities: account links,
connected components by large-star/small-star, Leiden per component). The driver collects no
edge: one row per linked account of communities, per-key aggregates (all keys' totals; daily
tokens and active bins of keys in multi-key clusters only) and the judged hubs' members; it judges
hubs and runs the features that read no edge (pipeline.settle_membership, scoring.node_features),
while the edge features run per group of clusters and edges.parquet is built and written by the
executors as a folder of parts (keyfarm.spark.outputs). activity.parquet and slots.parquet are
counted by Spark per (cluster, account, bin) and per (cluster, slot) and built by keyfarm.activity's
activity_frame and slots_frame; hubs.parquet's `example` is drawn from the prompts of the smallest
key per prompt hub token (signals.prompt_examples.hubs_with_examples), as locally. Outputs are identical to pipeline.link's
for the same input and seed (edges: the same rows, read from the parts in path order).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm.errors import KeyfarmConfigError, KeyfarmError, KeyfarmInputError
from keyfarm.progress import Progress
from keyfarm.spark import stages
from keyfarm.spark.stages import SIGNAL_PARTITIONING, WorkerContext

log = logging.getLogger(__name__)

PIP_HINT = "pip install 'keyfarm[spark]'"
_REQUEST_NAMES = ("requests.parquet", "requests.csv.gz", "requests.csv", "requests.jsonl", "requests")


# ---------------------------------------------------------------- session

def parse_spark_conf(items) -> dict[str, str]:
    """`--spark-conf KEY=VALUE` items as a dict (a later KEY wins). A value may hold "=" (Java
    options do); a KEY must be a Spark setting name (letters, digits, `.`, `_`, `-`)."""
    conf: dict[str, str] = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.\-]+", key):
            raise KeyfarmConfigError(f"--spark-conf {item!r}: expected KEY=VALUE with a Spark setting "
                                     "name as KEY (e.g. spark.executor.memory=4g)")
        conf[key] = value
    return conf


def require_spark() -> None:
    """Fail in one line, before starting anything, when PySpark or Java 17+ is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise KeyfarmError(f"the Spark engine needs PySpark: {PIP_HINT}") from None
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() \
        else shutil.which("java")
    if not java:
        raise KeyfarmError("the Spark engine needs Java 17 or newer: install a JDK/JRE 17+ "
                           "(java not found on PATH or in JAVA_HOME)")
    try:
        text = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.SubprocessError):
        text = ""
    found = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if found:
        major = int(found.group(2)) if found.group(1) == "1" else int(found.group(1))
        if major < 17:
            raise KeyfarmError(f"the Spark engine needs Java 17 or newer; {java} is Java {major}")


def local_threads(master: str) -> int | None:
    """Worker threads of a local master (local, local[4], local[*]); None for a cluster master."""
    found = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\s*\d+)?\])?", master.strip())
    if not found:
        return None
    n = found.group(1)
    return (os.cpu_count() or 1) if n == "*" else int(n or 1)


def spark_session(master: str = "local[2]", *, shuffle_partitions: int | None = None,
                  driver_memory: str = "2g", conf: dict | None = None):
    """A SparkSession for keyfarm: UTC session time, Arrow transfers, no UI; local masters bind to
    127.0.0.1 only. `shuffle_partitions` sets the key, block and token groups; None: twice the
    threads of a local master, and the cluster's own setting otherwise (size it to 2–4× the
    executor cores). `conf` adds or overrides Spark settings (`--spark-conf`), the ones above
    included; spark.driver.memory only takes effect when this process starts the JVM."""
    require_spark()
    from pyspark.sql import SparkSession

    threads = local_threads(master)
    if shuffle_partitions is None and threads is not None:
        shuffle_partitions = 2 * threads

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings = {
        "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.legacy.parquet.nanosAsLong": "true",
        "spark.driver.memory": driver_memory,
        # a plan's description is kept per SQL execution (event log, UI store): bounded, or a long
        # job's descriptions fill the driver's heap (an OutOfMemoryError seen writing the edges)
        "spark.sql.maxPlanStringLength": str(1 << 20), "spark.sql.ui.retainedExecutions": "100",
    }
    if shuffle_partitions is not None:
        if shuffle_partitions < 1:
            raise KeyfarmError(f"Spark shuffle partitions must be at least 1, got {shuffle_partitions}")
        settings["spark.sql.shuffle.partitions"] = str(int(shuffle_partitions))
    if threads is not None:
        settings.update({"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"})
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")   # never look up or bind another interface
    settings.update(conf or {})
    builder = SparkSession.builder.master(master).appName("keyfarm")
    for k, v in settings.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# ---------------------------------------------------------------- reading

def is_uri(location) -> bool:
    """True for a Spark/Hadoop URI (s3a://, hdfs://, abfss://, file://…), false for a local path."""
    return "://" in str(location)


def _load_small_tables(spark, location: str):
    """keys, accounts and payments validated on the driver, exactly as io.load_tables does: read
    with pandas from a local folder, or by Spark (then collected) from a URI."""
    from keyfarm.io import read_table_files, tables_from_frames

    if is_uri(location):
        frames = {name: _read_uri_table(spark, location, name) for name in ("keys", "accounts", "payments")}
        if frames["keys"] is None:
            raise KeyfarmInputError(f"table keys: no keys file under {location} (expected keys.parquet, "
                                    "keys.csv, keys.csv.gz or keys.jsonl)", table="keys")
    else:
        frames = read_table_files(Path(location), ("keys", "accounts", "payments"))
    # checked against --max-quarantine-share once the requests are validated too (_link)
    return tables_from_frames(frames["keys"], frames["accounts"], frames["payments"], None, check=False)


def _exists(spark, location: str) -> bool:
    if not is_uri(location):
        return Path(location).exists()
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(location)
    return bool(path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(path))


def _find(spark, location: str, name: str, candidates) -> str | None:
    """The one file or folder `location`/<candidate> that holds table `name`, or None."""
    found = [f"{str(location).rstrip('/')}/{c}" for c in candidates]
    found = [f for f in found if _exists(spark, f)]
    if len(found) > 1:
        raise KeyfarmInputError(f"table {name}: found {', '.join(f.rsplit('/', 1)[1] for f in found)}; "
                                "keep one", table=name)
    return found[0] if found else None


def _read_uri_table(spark, location: str, name: str) -> pd.DataFrame | None:
    """A small table under a URI read by Spark and collected, in the types io.py's loader reads."""
    from keyfarm import schema

    found = _find(spark, location, name, [f"{name}{ext}" for ext in schema.FORMATS])
    if found is None:
        return None
    raw, nanos = _spark_read(spark, found)
    frame = raw.toPandas()
    for col in nanos:
        frame[col] = pd.to_datetime(frame[col], unit="ns", utc=True)
    return frame


def _spark_format(location: str) -> str:
    """".parquet", ".csv" or ".jsonl": by the ending (any case), or for a local folder of parts by
    its parts (all of one kind; keyfarm.readers.list_parts refuses what it cannot read)."""
    from keyfarm import schema
    from keyfarm.readers import format_of, list_parts

    if not is_uri(location) and Path(location).is_dir():
        kinds = {format_of(p.name, schema.PART_FORMATS) for p in list_parts(Path(location), "requests")}
        kinds = {".csv" if k in (".csv", ".csv.gz") else ".jsonl" if k in (".jsonl", ".json") else k for k in kinds}
        if len(kinds) > 1:
            raise KeyfarmInputError(f"table requests: the parts of {location} mix formats ({', '.join(sorted(kinds))})",
                                    table="requests")
        return kinds.pop()
    ext = format_of(location.rstrip("/").rsplit("/", 1)[-1], schema.PART_FORMATS)
    return {".csv.gz": ".csv", ".json": ".jsonl"}.get(ext, ext or ".parquet")


def _spark_read(spark, location: str):
    """(DataFrame as Spark reads it, the Parquet columns it gives as int64 nanoseconds)."""
    kind = _spark_format(location)
    if kind == ".csv":
        return spark.read.option("header", True).option("multiLine", True).option("escape", '"') \
            .csv(location), ()
    if kind == ".jsonl":
        return spark.read.json(location), ()
    return spark.read.parquet(location), _nanos_columns(location)


def _read_requests(spark, location: str):
    """Raw requests as Spark reads them, plus `source_row` (row number in read order) and the
    Parquet columns Spark gives as int64 nanoseconds."""
    from pyspark.sql import functions as F

    raw, nanos = _spark_read(spark, location)
    for taken in ("source_row", "_pid", "_mid"):   # an input column of that name is an extra column, kept
        if taken in raw.columns:
            raw = raw.withColumnRenamed(taken, f"input_{taken}")
    raw = raw.withColumn("_pid", F.spark_partition_id()).withColumn("_mid", F.monotonically_increasing_id())
    counts = dict(raw.groupBy("_pid").count().collect())
    n_parts = max(counts) + 1 if counts else 0
    offsets = np.zeros(n_parts + 1, np.int64)
    for pid, n in counts.items():
        offsets[pid + 1] = n
    offsets = np.cumsum(offsets)
    offset_col = F.element_at(F.array(*[F.lit(int(o)) for o in offsets[:-1]]), F.col("_pid") + 1) \
        if n_parts else F.lit(0)
    raw = raw.withColumn("source_row", offset_col + F.col("_mid") - F.shiftleft(F.col("_pid").cast("long"), 33))
    return raw.drop("_pid", "_mid"), nanos, int(offsets[-1])


def _nanos_columns(location: str) -> tuple:
    """Timestamp columns stored as Parquet TIMESTAMP(NANOS) (pandas writes these; Spark then reads
    them as int64). Read from the first part's footer with pyarrow's file systems; a scheme pyarrow
    cannot open (s3a://, wasbs://) is Spark-written Parquet, whose micro/INT96 timestamps Spark
    reads as timestamps, so none."""
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    try:
        if is_uri(location):
            fs, path = pafs.FileSystem.from_uri(location)
        else:
            fs, path = pafs.LocalFileSystem(), str(Path(location).resolve())
        if fs.get_file_info(path).type == pafs.FileType.Directory:
            parts = fs.get_file_info(pafs.FileSelector(path, recursive=True))
            files = sorted(f.path for f in parts if f.path.endswith(".parquet"))
        else:
            files = [path]
        if not files:
            return ()
        schema = pq.read_schema(files[0], filesystem=fs)
    except (pa.ArrowException, OSError, ValueError) as exc:
        log.info("no Parquet footer read for %s (%s): assuming Spark-readable timestamps", location, exc)
        return ()
    return tuple(f.name for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "ns")


def _quarantine_frame(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Quarantined request rows collected from Spark, as io.py lays them out (values as text)."""
    if len(rows) == 0:
        return pd.DataFrame()
    rows = rows.sort_values("source_row", kind="stable").reset_index(drop=True)
    values = pd.DataFrame([json.loads(r) for r in rows["raw"]])
    values = values.reindex(columns=[c for c in columns if c in values.columns] +
                            [c for c in values.columns if c not in columns])
    values.insert(0, "source_row", rows["source_row"].to_numpy(np.int64))
    values["reason"] = rows["reason"].to_numpy(dtype=object)
    return values


# ---------------------------------------------------------------- the job

def link_spark(input_path, config=None, *, seed: int = 0, master: str = "local[2]",
               progress: Progress | None = None, spark=None, groups: int | None = None,
               partitions: int | None = None, max_quarantine_share: float | None = 0.5,
               spark_conf: dict | None = None, previous=None, labels: pd.DataFrame | None = None,
               banned=None, history=None, then=None):
    """Run the linkage job on Spark; same outputs as pipeline.link for the same input and seed.

    `input_path` is a local folder or a Spark/Hadoop URI (file://, s3a://, hdfs://…) holding
    keys/accounts/payments files (validated on the driver) and requests as a file or a folder of
    Parquet parts (read by Spark). `spark` reuses a session (else one is started
    on `master` with `partitions` shuffle partitions and the settings `spark_conf` (a dict, e.g.
    {"spark.executor.memory": "4g"}), see spark_session, and stopped at the end);
    `groups` is the number of key, block and token groups (default: spark.sql.shuffle.partitions).
    `previous`, `labels`, `banned` or a prepared `history` as pipeline.link takes them.

    The edges stay on the executors: `then(result)` runs while they are there (run_link_spark
    writes OUT_DIR in it, edges.parquet by the executors) and result.edges is then only their
    count; without `then`, they are collected into result.edges, as pipeline.link returns them.
    """
    from keyfarm import history as hist
    from keyfarm.config import Config

    require_spark()
    config = config or Config.default()
    progress = progress or Progress(quiet=True)
    history = history or hist.prepare(previous, labels=labels, banned=banned)
    own = spark is None
    if own:
        spark = spark_session(master, shuffle_partitions=partitions, conf=spark_conf)
    try:
        result, release = _link(spark, str(input_path), config, seed, progress, groups, max_quarantine_share,
                                history)
        try:
            if then is None:
                result.edges = result.edges.to_pandas()
            else:
                then(result)
        finally:
            release()
        return result
    except (ConnectionError, *_py4j_network_errors()) as exc:
        own = False   # nothing left to stop
        raise KeyfarmError(jvm_stopped_message(exc, jvm_exit_code(spark))) from exc
    finally:
        if own:
            spark.stop()


SPARK_OOM_EXIT = 52   # Spark's exit code for an uncaught OutOfMemoryError (SparkExitCode.OOM)


def jvm_exit_code(spark) -> int | None:
    """The exit status of the driver's JVM when this process started it and it has ended (a
    negative −N: killed by signal N, as subprocess reports it); None when it runs, was started
    elsewhere, or is not known within a few seconds."""
    proc = getattr(getattr(getattr(spark, "sparkContext", None), "_gateway", None), "proc", None)
    if proc is None:
        return None
    try:
        return proc.wait(timeout=5)
    except (subprocess.TimeoutExpired, OSError):
        return None


def jvm_stopped_message(exc, exit_code: int | None) -> str:
    """The one-line error of a job whose driver JVM stopped, by how it stopped (`exit_code` from
    jvm_exit_code): killed by SIGKILL (−9, or 137 through a shell) is the kernel's OOM killer,
    the machine out of memory, where a larger heap only makes it worse; Spark's OutOfMemoryError
    exit (52) is the heap setting; anything else is left to Spark's log."""
    lost = f"the Spark driver's JVM stopped ({exc})"
    if exit_code in (-9, 137):
        return (f"{lost}: it was killed by SIGKILL (exit 137), most likely by the kernel's out-of-memory "
                "killer because the machine ran out of memory (`dmesg` or `journalctl -k` shows \"Out of "
                "memory: Killed process\"). This is not the Java heap setting: a larger "
                "spark.driver.memory makes it more likely. Free memory, or give the job less: fewer "
                "threads in --spark-master local[N], or run it on a cluster")
    if exit_code == SPARK_OOM_EXIT:
        return (f"{lost}: Spark exited with java.lang.OutOfMemoryError (exit {SPARK_OOM_EXIT}): its heap "
                "was too small. On a local master it holds the executors too, and it is spark.driver.memory "
                "(keyfarm's default 2g; e.g. --spark-conf spark.driver.memory=8g)")
    how = "with an unknown status" if exit_code is None else \
        f"killed by signal {-exit_code}" if exit_code < 0 else f"with exit code {exit_code}"
    return (f"{lost} {how}, or cannot be reached; Spark's log above says why. "
            "`java.lang.OutOfMemoryError: Java heap space` there means its heap was too small: on a local "
            "master it holds the executors too, and it is spark.driver.memory (keyfarm's default 2g; e.g. "
            "--spark-conf spark.driver.memory=8g); no such line and an exit by SIGKILL (137) means the "
            "kernel's out-of-memory killer stopped it")


def _py4j_network_errors() -> tuple:
    """py4j's error for a lost gateway (the JVM died, e.g. of an OutOfMemoryError), if py4j is here."""
    try:
        from py4j.protocol import Py4JNetworkError
    except ImportError:
        return ()
    return (Py4JNetworkError,)


def _link(spark, location: str, config, seed: int, progress: Progress, groups: int | None,
          max_quarantine_share: float | None, history):
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from keyfarm import history as hist
    from keyfarm import schema
    from keyfarm.graph.build import hub_table
    from keyfarm.pipeline import (LinkResult, cluster_table, detect_communities, member_table, run_record,
                                  settle_membership)
    from keyfarm.scoring import KeyActivity, activity_span, score_clusters
    from keyfarm.scoring.features import add_edge_features, node_features
    from keyfarm.spark.outputs import SparkEdges, activity_tables, cluster_edge_features, edge_frame, hub_examples
    from keyfarm.graph.build import representative_keys
    from keyfarm.scoring.hubs import hub_rows, judged_hub_tokens
    from keyfarm.signals import registry
    from keyfarm.history.evidence import REMEMBERED_KINDS

    groups = groups or int(spark.conf.get("spark.sql.shuffle.partitions"))
    key_group = group_column(spark, groups, "key")   # a key's rows meet in one group, in every stage
    persisted, broadcasts = [], []

    def keep(frame):
        frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(frame)
        return frame

    try:
        with _stage(progress, spark, "load") as info:
            tables = _load_small_tables(spark, location)
            q_keys = tables.quarantine.get("keys")
            ctx = WorkerContext(
                key_id=pd.Index(tables.keys["key_id"]), account=tables.keys["account"].to_numpy(np.int64),
                account_id=tables.keys["account_id"].to_numpy(dtype=object),
                quarantined_keys=frozenset(q_keys["key_id"].astype(str)) if q_keys is not None and len(q_keys)
                else frozenset(), config=config, initial=hist.initial_labels(history, tables))
            if is_uri(location):
                path = _find(spark, location, "requests", _REQUEST_NAMES)
            else:   # a local folder: found as the local engine finds it (any case, folders of parts)
                from keyfarm.readers import find_table_file
                found = find_table_file(Path(location), "requests")
                path = None if found is None else str(found)
            n_input = 0
            raw_columns: list[str] = []
            if path is not None:
                raw, ctx.nanos_columns, n_input = _read_requests(spark, path)
                raw_columns = [c for c in raw.columns if c != "source_row"]
                from keyfarm.io import check_columns
                check_columns(pd.DataFrame(columns=raw_columns), schema.REQUESTS)
            bc = spark.sparkContext.broadcast(ctx)
            if path is None:
                ok = spark.createDataFrame(stages.conform(pd.DataFrame(), stages.VALID_SCHEMA),
                                           schema=stages.VALID_SCHEMA)
                q_rows = pd.DataFrame(columns=["source_row", "reason", "raw"])
            else:
                checked = keep(raw.mapInPandas(_per_batch(stages.check_batch, bc), stages.CHECKED_SCHEMA))
                ok = keep(checked.filter(F.col("kind") == "ok").select(*stages.VALID_COLUMNS))
                q_rows = checked.filter(F.col("kind") == "q").select("source_row", "reason", "raw").toPandas()
                tables.input_rows["requests"] = n_input
            if len(q_rows):
                tables.quarantine["requests"] = _quarantine_frame(q_rows, raw_columns)
            n_valid = ok.count()   # materialises `ok`, which every later stage scans: `checked` can go
            if path is not None:
                checked.unpersist()
            tables.check_quarantine(max_quarantine_share, valid_rows={"requests": int(n_valid)})
            info["counts"] = f"{len(tables.keys):,} keys, {n_valid:,} requests, " \
                             f"{sum(sum(r.values()) for r in tables.quarantine_counts().values()):,} quarantined"

        with _stage(progress, spark, "signals") as info:
            fns = registry()
            where = {n: SIGNAL_PARTITIONING.get(n, "global") for n in fns}
            for n, w in where.items():
                if n not in SIGNAL_PARTITIONING:
                    log.warning("signal %s has no declared partitioning: it runs in one Spark group", n)
            names = {kind: tuple(n for n in fns if where[n] == kind)
                     for kind in ("driver", "key", "block", "mapreduce", "parts", "global")}
            driver_inc = stages.incidence_rows(fns[n](tables, config) for n in names["driver"])
            parts = [spark.createDataFrame(driver_inc, schema=stages.INCIDENCE_SCHEMA)]
            keyed = keep(ok.withColumn("g", key_group).groupBy("g").applyInPandas(
                _per_group(stages.key_stage, bc, names["key"]), stages.KEY_STAGE_SCHEMA))
            parts.append(keyed.filter(F.col("kind") == "inc").select("key", "token", "weight"))
            if names["block"]:
                block = F.when(F.col("ip_version") == 4, F.col("ip_lo").bitwiseAND(F.lit(0xFFFFFF00))) \
                    .otherwise(F.col("ip_hi").bitwiseAND(F.lit(-65536)))  # /24 of IPv4, /48 of IPv6
                by_block = ok.withColumn("g", group_column(spark, groups, F.col("ip_version"), block))
                parts.append(by_block.groupBy("g").applyInPandas(
                    _per_group(stages.signal_stage, bc, names["block"]), stages.INCIDENCE_SCHEMA))
            if "prompt" in names["mapreduce"]:   # a map per distinct prompt, a reduce per band bucket
                from keyfarm.spark.prompts import prompt_incidence
                parts.append(prompt_incidence(ok, bc, config, _per_batch, keep))
            if "timing" in names["parts"]:   # one task per population part, on distinct rows
                parts.append(timing_incidence(ok, bc, config, _per_group))
            for n in names["global"]:
                parts.append(ok.withColumn("g", F.lit(0)).groupBy("g").applyInPandas(
                    _per_group(stages.signal_stage, bc, (n,)), stages.INCIDENCE_SCHEMA))
            incidence = parts[0]
            for p in parts[1:]:
                incidence = incidence.unionByName(p)
            incidence = keep(incidence)
            n_inc = incidence.count()
            info["counts"] = f"{n_inc:,} incidence rows ({len(driver_inc):,} from the driver)"

        with _stage(progress, spark, "graph") as info:
            tok = keep(incidence.withColumn("g", group_column(spark, groups, "token")).groupBy("g")
                       .applyInPandas(_per_group(stages.token_stage, bc), stages.TOKEN_STAGE_SCHEMA))
            hubs = tok.filter(F.col("kind") == "hub").select("token", "signal", "n_accounts", "n_keys").toPandas()
            hubs = hub_table(hubs.assign(is_hub=True))
            # materialised once with its lineage cut: every later plan (communities, scores, the
            # edges' write) starts here, and their plan strings stay small
            from keyfarm.spark.communities import truncate
            pairs = truncate(_pairs(tok), persisted)
            n_edges = int(pairs.count())
            # only an optimiser other than Leiden (run on the driver) needs the edge list here
            graph = None if config.community.algorithm == "leiden" else _collect_graph(pairs, bc)
            judged = judged_hub_tokens(hubs, config)
            wanted = spark.createDataFrame(judged[["token"]] if len(judged) else pd.DataFrame({"token": []}),
                                           schema="token string")
            hub_members = hub_rows(incidence.join(F.broadcast(wanted), "token", "left_semi")
                                   .select("token", "key").toPandas(), judged)
            info["counts"] = f"{n_edges:,} edges, {len(hubs):,} hub tokens"

        with _stage(progress, spark, "communities") as info:
            account = tables.keys["account"].to_numpy(np.int64)
            communities = None
            if config.community.algorithm == "leiden":   # on the executors, one group per component
                from keyfarm.spark.communities import spark_communities
                communities = spark_communities(pairs, bc, config, seed, groups, _per_batch, _per_group, keep)
                membership = communities.membership(account)
            else:
                membership = detect_communities(graph, tables, config, seed, ctx.initial)
            history.communities = membership
            info["counts"] = f"{int(membership.max()) + 1 if membership.size else 0:,} clusters"
            if communities is not None:
                info["counts"] += f", giant component {communities.giant_component:,} of " \
                                  f"{communities.account.size:,} linked accounts"

        with _stage(progress, spark, "scores") as info:
            sizes = np.bincount(membership, minlength=1) if membership.size else np.zeros(1, np.int64)
            in_scope = np.union1d(np.flatnonzero(sizes[membership] >= 2),
                                  hub_members["key"].to_numpy(np.int64)).astype(np.int64)
            scope = spark.createDataFrame(pd.DataFrame({"key": in_scope}), schema="key long")
            per_key = keyed.filter(F.col("kind").isin("daily", "bin", "fbin", "blocks")) \
                .join(F.broadcast(scope), "key", "left_semi").select("kind", "key", "t", "v1").toPandas()
            totals = keyed.filter(F.col("kind") == "total").select("key", "v1", "v2", "v3", "v4").toPandas()
            span = ok.agg(F.min("ts_ns").alias("lo"), F.max("ts_ns").alias("hi")).collect()[0]
            population = keyed.filter(F.col("kind") == "bin").groupBy("t").count().toPandas()
            activity = _activity(per_key, span, config, KeyActivity, activity_span)
            activity.population = pd.Series(population["count"].to_numpy(np.int64),
                                            index=population["t"].to_numpy(np.int64)).sort_index()
            blocks = per_key[per_key["kind"] == "blocks"]
            activity.blocks = pd.Series(blocks["v1"].to_numpy(np.int64),
                                        index=pd.Index(blocks["key"].to_numpy(np.int64), name="key")).sort_index()
            totals = pd.DataFrame({"total_tokens": totals["v1"].to_numpy(np.int64),
                                   "peak_daily_tokens": totals["v2"].to_numpy(np.int64),
                                   "mean_daily_tokens": totals["v3"].to_numpy(np.float64),
                                   "n_requests": totals["v4"].to_numpy(np.int64)},
                                  index=pd.Index(totals["key"].to_numpy(np.int64), name="key")).sort_index()
            # the remembered kinds' (account, token) rows, as history.adjust would take from incidences
            history.tokens = account_tokens(spark.createDataFrame(
                pd.DataFrame({"kind": list(REMEMBERED_KINDS)}), schema="kind string"), incidence, account)
            membership, hubs = settle_membership(tables, activity, membership, hubs, hub_members, config,
                                                 adjust=lambda m: hist.adjust(history, tables, None, m))
            feats = node_features(tables.keys, tables.accounts, activity, membership, config.scoring)
            cids = feats["cluster_id"].to_numpy(np.int64)
            multi = np.zeros(int(membership.max()) + 1 if membership.size else 0, bool)
            multi[cids] = True
            cbc = spark.sparkContext.broadcast(stages.ClusterContext(membership=membership, multi=multi,
                                                                     hub_members=hub_members))
            broadcasts.append(cbc)
            edge_rows = cluster_edge_features(pairs, bc, cbc, cids, groups, _per_batch, _per_group)
            ends = {end: edge_rows[[c for c in edge_rows.columns if c.startswith(f"{end}_")]]
                    .rename(columns=lambda c: c.split("_", 1)[1]) for end in ("weakest", "strongest")}
            feats = add_edge_features(feats, edge_rows.drop(columns=["cluster_id", *ends["weakest"].columns.map(
                lambda c: f"weakest_{c}"), *ends["strongest"].columns.map(lambda c: f"strongest_{c}")]))
            scored = score_clusters(feats, config.scoring)
            members = member_table(tables, membership, activity, config.scoring.default_daily_limit, totals=totals)
            clusters = cluster_table(scored, ends)
            info["counts"] = f"{len(clusters):,} clusters of 2+ accounts, {int(clusters['flagged'].sum()):,} flagged"
        with progress.stage("history") as info:
            members, clusters, final, changes, state = hist.finish(
                history, tables, members, clusters, pd.DataFrame({"cluster_id": np.arange(multi.size, dtype=np.int64)}))
            info["counts"] = "no previous run" if changes is None else \
                f"{len(changes):,} changes, {int(clusters['returning'].sum()):,} returning"
        with _stage(progress, spark, "activity"):   # for the report: timelines, prompt hubs' text
            activity_out, slots = activity_tables(ok, members, clusters["cluster_id"], config.timing.slot_seconds)
            hubs = hub_examples(ok, incidence, hubs, config)
        # edges.parquet on the executors, with history's output ids (finish maps cluster i to final[i])
        fbc = spark.sparkContext.broadcast(stages.ClusterContext(
            membership=membership, multi=multi, hub_members=hub_members.iloc[:0],
            final=final["cluster_id"].to_numpy(np.int64)))
        broadcasts.append(fbc)
        edges = SparkEdges(edge_frame(pairs, ok, bc, fbc, key_group, representative_keys(account), _per_batch,
                                      _per_cogroup, keep), n_edges)
        run = run_record(tables, config, seed, hubs, members, edges, clusters, progress, n_requests=n_valid)
        run["engine"] = {"name": "spark", "master": spark.sparkContext.master, "groups": groups,
                         "signals": where, "edges_collected": 0 if graph is None else int(graph.n_edges),
                         "edges_written_by": "executors",
                         "per_key_rows_collected": int(len(per_key) + len(totals))}
        if communities is not None:
            run["engine"].update({"account_links": communities.n_links,
                                  "linked_accounts": int(communities.account.size),
                                  "components": int(np.unique(communities.component).size),
                                  "giant_component": communities.giant_component,
                                  "star_rounds": communities.star_rounds})
        run["timings"] = dict(progress.timings)
        if history.previous is not None:
            run["previous_run_id"] = history.previous.run_id
        result = LinkResult(members=members, clusters=clusters, edges=edges, run=run, graph=graph,
                            tables=tables, hubs=hubs, state=state, changes=changes, activity=activity_out,
                            slots=slots)
        # the edges are read from `pairs` and the examples' frames when written: they stay persisted
        return result, lambda: _release(persisted, broadcasts)
    except BaseException:
        _release(persisted, broadcasts)
        raise


def _release(persisted: list, broadcasts: list) -> None:
    """Unpersist the frames and broadcasts a run kept (once its edges are written)."""
    for frame in persisted:
        frame.unpersist()
    for value in broadcasts:
        value.unpersist()
    persisted.clear()
    broadcasts.clear()


def timing_incidence(ok, bc, config, per_group):
    """The timing signal's incidence: each part of signals.timing.incidence_parts in its own group
    (stages.timing_part_stage), fed one row per distinct (key, slot, network prefix of the part)
    with the first request's time and address (what the part's key, token and weight read)."""
    from pyspark.sql import functions as F

    from keyfarm.signals.timing import incidence_parts

    slot_ns = config.timing.slot_seconds * 10**9
    slot = F.expr(f"(ts_ns - pmod(ts_ns, {slot_ns})) div {slot_ns}").alias("slot")  # integer floor, exact
    parts = incidence_parts(config)
    group = bucket_keys(ok.sparkSession, len(parts))   # part i alone in shuffle partition i
    frames = []
    for i, (_, bits) in enumerate(parts):
        by = ["key", slot]
        if bits is not None:   # signals.timing.network_contexts' prefix: IPv4 /bits, IPv6 /2·bits
            by += ["ip_version", F.when(F.col("ip_version") == 6, F.shiftrightunsigned("ip_hi", 64 - 2 * bits))
                   .otherwise(F.shiftrightunsigned("ip_lo", 32 - bits)).alias("prefix")]
        frames.append(ok.groupBy(*by).agg(F.min("ts_ns").alias("ts_ns"), F.min("ip_version").alias("v"),
                                          F.min("ip_hi").alias("ip_hi"), F.min("ip_lo").alias("ip_lo"))
                      .select("key", "ts_ns", F.col("v").alias("ip_version"), "ip_hi", "ip_lo",
                              F.lit(i).alias("part"), F.lit(group[i]).alias("g")))
    rows = frames[0]
    for frame in frames[1:]:
        rows = rows.unionByName(frame)
    return rows.repartition(len(parts), "g").groupBy("g", "part") \
        .applyInPandas(per_group(stages.timing_part_stage, bc), stages.INCIDENCE_SCHEMA)


def bucket_keys(spark, n: int) -> list[int]:
    """For each i < n, an int whose Spark hash lands in partition i of a hash partitioning into n
    (pmod(hash(k), n) = i), so that n groups keyed by them run as n tasks: grouping by 0..n−1
    would put several in one partition (hash(0), hash(1) and hash(3) all land in 3 of 4)."""
    from pyspark.sql import functions as F

    k = F.col("id").cast("int")
    found = dict(spark.range(64 * n).select(F.pmod(F.hash(k), F.lit(n)).alias("b"), k.alias("k"))
                 .groupBy("b").agg(F.min("k")).collect())
    return [int(found.get(i, i)) for i in range(n)]


def group_column(spark, groups: int, *columns):
    """A column numbering `groups` groups of rows by the hash of `columns` (rows equal in them meet
    in one group), labelled with bucket_keys so that group i lands in shuffle partition i when
    the partitions are `groups` (the default): labelled 0..groups−1, several groups shared a
    partition and others had none (the key, token and account link stages read 5.7–8× the
    median task's input in their largest task at 50k keys)."""
    from pyspark.sql import functions as F

    labels = F.array(*[F.lit(k) for k in bucket_keys(spark, groups)])
    return F.element_at(labels, F.pmod(F.hash(*columns), F.lit(groups)) + 1)


@contextlib.contextmanager
def _stage(progress: Progress, spark, name: str):
    """progress.stage, with the Spark jobs it starts described as `keyfarm <name>` (the event log's
    job description, which scripts/spark_stages.py shows per stage)."""
    spark.sparkContext.setJobDescription(f"keyfarm {name}")
    try:
        with progress.stage(name) as info:
            yield info
    finally:
        spark.sparkContext.setJobDescription(None)


def account_tokens(kinds, incidence, account: np.ndarray) -> pd.DataFrame:
    """history.evidence.account_tokens of the Spark incidence: its distinct (key, token) rows of the
    remembered kinds (`kinds`, a one-column frame) collected, then the local function on them."""
    from pyspark.sql import functions as F

    from keyfarm.history.evidence import account_tokens as local_account_tokens

    rows = incidence.withColumn("kind", F.substring_index("token", ":", 1)) \
        .join(F.broadcast(kinds), "kind", "left_semi").select("key", "token").distinct().toPandas()
    rows = pd.DataFrame({"key": rows["key"].to_numpy(np.int64), "token": rows["token"].to_numpy(dtype=object)})
    return local_account_tokens([rows], account)


def _values(args) -> list:
    """Arguments for a stage function on an executor: a broadcast variable's value, others as given."""
    from pyspark.broadcast import Broadcast

    return [a.value if isinstance(a, Broadcast) else a for a in args]


def _per_batch(fn, bc, *args):
    """mapInPandas body: `fn(batch, context, *args)` on every Arrow batch of a partition (a
    broadcast among `args` read on the executor)."""
    def run(batches):
        context, extra = bc.value, _values(args)
        for batch in batches:
            yield fn(batch, context, *extra)
    return run


def _per_group(fn, bc, *args):
    """applyInPandas body (one argument: the group's rows): `fn(rows, context, *args)`."""
    def run(pdf):
        return fn(pdf, bc.value, *_values(args))
    return run


def _per_cogroup(fn, bc):
    """cogroup applyInPandas body (two arguments: the groups' rows): `fn(left, right, context)`."""
    def run(left, right):
        return fn(left, right, bc.value)
    return run


def _pairs(tok):
    """Key pairs with their evidence summed over token groups in Spark: a, b, w<i> (raw sum per
    signal) and t<i> (strongest token per signal)."""
    from pyspark.sql import functions as F

    from keyfarm.graph.weighting import SIGNALS

    aggs = []
    for i in range(len(SIGNALS)):
        aggs.append(F.sum(f"w{i}").alias(f"w{i}"))
        best = F.when(F.col(f"c{i}") > 0, F.struct((-F.col(f"c{i}")).alias("c"), F.col(f"t{i}").alias("t")))
        aggs.append(F.min(best).alias(f"e{i}"))
    pairs = tok.filter(F.col("kind") == "edge").groupBy("a", "b").agg(*aggs)
    return pairs.select("a", "b", *[f"w{i}" for i in range(len(SIGNALS))],
                        *[F.col(f"e{i}.t").alias(f"t{i}") for i in range(len(SIGNALS))])


def _collect_graph(pairs, bc):
    """Collect the key pairs (see _pairs) and build the KeyGraph on the driver (stages.graph_of_pairs)."""
    return stages.graph_of_pairs(pairs.toPandas(), bc.value)


def _activity(per_key: pd.DataFrame, span, config, KeyActivity, activity_span):
    """KeyActivity of the keys in multi-key clusters (what cluster_features reads), in key_activity's
    order and dtypes; the bin span comes from the first and last request of all the logs."""
    daily = per_key[per_key["kind"] == "daily"]
    daily = pd.DataFrame({"key": daily["key"].to_numpy(np.int64), "day": daily["t"].to_numpy(np.int64),
                          "tokens": daily["v1"].to_numpy(np.int64)}) \
        .sort_values(["key", "day"], kind="stable").reset_index(drop=True)
    bins = per_key[per_key["kind"] == "bin"]
    bins = pd.DataFrame({"key": bins["key"].to_numpy(np.int64), "bin": bins["t"].to_numpy(np.int64)}) \
        .sort_values(["key", "bin"], kind="stable").reset_index(drop=True)
    if span["lo"] is None:
        n_bins = 1
    else:
        n_bins = activity_span(int(span["lo"]) // 10**9, int(span["hi"]) // 10**9,
                               config.scoring.sync_bin_seconds)
    fine = per_key[per_key["kind"] == "fbin"]
    fine = pd.DataFrame({"key": fine["key"].to_numpy(np.int64), "bin": fine["t"].to_numpy(np.int64)}) \
        .sort_values(["key", "bin"], kind="stable").reset_index(drop=True)
    return KeyActivity(daily=daily, bins=bins, n_bins_total=n_bins, fine_bins=fine,
                       fine_seconds=config.scoring.cotiming_bin_seconds)


def run_link_spark(input_dir, out_dir, *, config_path=None, seed: int = 0, quiet: bool = False,
                   report: bool = True, master: str = "local[2]", spark=None, partitions: int | None = None,
                   max_quarantine_share: float | None = 0.5, spark_conf: dict | None = None,
                   previous=None, labels_path=None, banned=None):
    """`keyfarm link --engine spark`: link on Spark, write OUT_DIR, then the report (as run_link).
    PREV_OUT, labels and audit log are checked before Spark starts."""
    from keyfarm.config import Config
    from keyfarm.history import prepare
    from keyfarm.pipeline import finish_run
    from keyfarm.scoring.calibrate import read_labels

    require_spark()
    config = Config.from_toml(config_path) if config_path else Config.default()
    history = prepare(previous, labels=read_labels(labels_path) if labels_path else None, banned=banned)
    progress = Progress(quiet)
    return link_spark(input_dir, config, seed=seed, master=master, progress=progress, spark=spark,
                      partitions=partitions, max_quarantine_share=max_quarantine_share,
                      spark_conf=spark_conf, history=history,
                      then=lambda result: finish_run(result, input_dir, out_dir, progress, report=report))
