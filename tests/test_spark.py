"""The Spark engine gives the local engine's outputs, byte for byte (keyfarm.spark, local[2])."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

from keyfarm.errors import KeyfarmError
from keyfarm.outputs import read_table
from keyfarm.pipeline import run_link
from keyfarm.synth import generate_world, write_world

SEED = 3


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    """A 2,000-key world with malformed request rows of every kind."""
    return write_world(generate_world(2000, seed=21, dirty_rows=40), tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def local_out(world_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    run_link(world_dir, out, seed=SEED, quiet=True, report=False)
    return out


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    from keyfarm.spark import spark_session

    session = spark_session("local[2]", shuffle_partitions=4)
    yield session
    session.stop()


OUTPUTS = ("members", "clusters", "edges", "hubs", "activity", "slots")


def _same_outputs(a, b, names=OUTPUTS):
    """Local OUT_DIR `a` and Spark OUT_DIR `b` hold the same tables: byte for byte, but for the
    edges, which Spark's executors write as a folder of parts: the same rows in the same order."""
    for name in names:
        assert (b / f"{name}.parquet").exists(), name
        if name == "edges":
            assert (a / "edges.parquet").is_file() and (b / "edges.parquet").is_dir()
            local, spark = read_table(a / "edges.parquet", "edges"), read_table(b / "edges.parquet", "edges")
            assert len(spark)
            pd.testing.assert_frame_equal(spark, local)
            continue
        assert (a / f"{name}.parquet").read_bytes() == (b / f"{name}.parquet").read_bytes(), name
    # the state a next run reads (ids, remembered farm evidence, communities for the warm start)
    state = sorted(p.relative_to(a) for p in (a / "state").rglob("*") if p.is_file())
    assert state and state == sorted(p.relative_to(b) for p in (b / "state").rglob("*") if p.is_file())
    for rel in state:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


@pytest.mark.spark
def test_spark_engine_reproduces_local_members_clusters_and_edges(spark, world_dir, local_out, tmp_path):
    from keyfarm.spark import run_link_spark

    out = tmp_path / "spark"
    # one shuffle partition per group, not coalesced: edges.parquet is then several parts, each sorted
    spark.conf.set("spark.sql.adaptive.coalescePartitions.enabled", "false")
    try:
        result = run_link_spark(world_dir, out, seed=SEED, quiet=True, report=False, spark=spark)
    finally:
        spark.conf.unset("spark.sql.adaptive.coalescePartitions.enabled")
    assert len(list((out / "edges.parquet").glob("part-*.parquet"))) >= 2
    _same_outputs(local_out, out)
    # the tables compared hold what they are for: timelines, shared slots, prompt hubs' text
    assert len(pd.read_parquet(out / "activity.parquet")) and len(pd.read_parquet(out / "slots.parquet"))
    hubs = pd.read_parquet(out / "hubs.parquet")
    assert hubs.loc[hubs["signal"] == "prompt", "example"].notna().any()
    assert hubs.loc[hubs["signal"] != "prompt", "example"].isna().all()
    local_run = json.loads((local_out / "run.json").read_text())
    spark_run = json.loads((out / "run.json").read_text())
    for field in ("run_id", "quarantined", "input_rows", "valid_rows", "counts", "hubs", "n_hubs"):
        assert spark_run[field] == local_run[field], field
    # quarantined rows: same rows, reasons and values (Spark hands the values back as text)
    q_local = pd.read_parquet(local_out / "quarantine" / "requests.parquet")
    q_spark = pd.read_parquet(out / "quarantine" / "requests.parquet")
    assert q_spark["source_row"].tolist() == q_local["source_row"].tolist()
    assert q_spark["reason"].tolist() == q_local["reason"].tolist()
    assert q_spark["key_id"].tolist() == q_local["key_id"].astype(str).tolist()
    # the driver held only the small tables, never the requests or the edge list
    assert len(result.tables.requests) == 0 and result.graph is None
    assert result.run["engine"]["edges_collected"] == 0 and len(result.edges) == spark_run["counts"]["edges"] > 0
    # every signal, the timing signal's tokens of each kind included, links keys in this world
    edges = read_table(out / "edges.parquet", "edges")
    for signal in ("payment", "ip", "device", "prompt", "timing"):
        assert (edges[f"w_{signal}"] > 0).any(), signal
    assert {"slot", "tset", "tgrp"} <= set(edges["evidence_timing"].dropna().str.split(":").str[0])
    # communities ran on the executors, one group per component
    engine = result.run["engine"]
    assert engine["components"] >= 2 and 2 <= engine["giant_component"] < engine["linked_accounts"]


@pytest.mark.spark
def test_spark_engine_with_a_previous_run_reproduces_the_local_daily_run(spark, world_dir, local_out, tmp_path):
    """--previous (warm start per component, stable ids, returning farms, changes.parquet) and a
    labels table: the same outputs and state as the local engine's run on the same PREV_OUT."""
    from keyfarm.spark import run_link_spark

    clusters = pd.read_parquet(local_out / "clusters.parquet")
    members = pd.read_parquet(local_out / "members.parquet")
    benign = members.loc[members["cluster_id"] == clusters.loc[~clusters["flagged"], "cluster_id"].iloc[0], "account_id"]
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"account_id": benign.iloc[:1], "label": "benign"}).to_csv(labels, index=False)
    local = tmp_path / "local2"
    run_link(world_dir, local, seed=SEED, quiet=True, report=False, previous=local_out, labels_path=labels)
    out = tmp_path / "spark2"
    result = run_link_spark(world_dir, out, seed=SEED, quiet=True, report=False, spark=spark,
                            previous=local_out, labels_path=labels)
    _same_outputs(local, out, (*OUTPUTS, "changes"))
    assert result.run["previous_run_id"] == json.loads((local_out / "run.json").read_text())["run_id"]
    assert json.loads((out / "run.json").read_text())["run_id"] == json.loads((local / "run.json").read_text())["run_id"]


@pytest.mark.spark
def test_spark_engine_ignores_row_order_and_reads_a_folder_of_parts(spark, world_dir, local_out, tmp_path):
    from keyfarm.spark import run_link_spark

    world = tmp_path / "world"
    world.mkdir()
    for name in ("keys", "accounts", "payments"):
        (world / f"{name}.parquet").write_bytes((world_dir / f"{name}.parquet").read_bytes())
    requests = pd.read_parquet(world_dir / "requests.parquet")
    shuffled = requests.sample(frac=1.0, random_state=np.random.default_rng(5).integers(2**31))
    parts = world / "requests.parquet"
    parts.mkdir()
    half = len(shuffled) // 2
    shuffled.iloc[:half].to_parquet(parts / "part-0.parquet", index=False)
    shuffled.iloc[half:].to_parquet(parts / "part-1.parquet", index=False)
    out = tmp_path / "spark"
    run_link_spark(world, out, seed=SEED, quiet=True, report=False, spark=spark)
    _same_outputs(local_out, out)


@pytest.mark.spark
def test_spark_engine_reads_a_uri_as_spark_does(spark, world_dir, local_out, tmp_path):
    """A lakehouse path (here file://) is read by Spark, small tables included, with the same result."""
    from keyfarm.spark import run_link_spark

    out = tmp_path / "spark"
    result = run_link_spark(world_dir.resolve().as_uri(), out, seed=SEED, quiet=True, report=False, spark=spark)
    _same_outputs(local_out, out)
    assert result.run["quarantined"] == json.loads((local_out / "run.json").read_text())["quarantined"]


def test_spark_engine_names_a_uri_without_keys(spark, tmp_path):
    from keyfarm.spark import run_link_spark

    with pytest.raises(KeyfarmError, match="table keys: no keys file under file://"):
        run_link_spark(tmp_path.as_uri(), tmp_path / "out", quiet=True, report=False, spark=spark)


def test_missing_java_is_a_one_line_error(monkeypatch):
    pytest.importorskip("pyspark")
    from keyfarm.spark import engine

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(engine.shutil, "which", lambda name: None)
    with pytest.raises(KeyfarmError, match="Java 17") as err:
        engine.require_spark()
    assert "\n" not in str(err.value)


def test_missing_pyspark_names_the_extra_to_install(monkeypatch):
    from keyfarm.spark import engine

    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(KeyfarmError, match=r"pip install 'keyfarm\[spark\]'"):
        engine.require_spark()


@pytest.mark.parametrize("master, threads", [("local", 1), ("local[2]", 2), ("local[8, 3]", 8),
                                             ("local[*]", os.cpu_count()), ("yarn", None),
                                             ("spark://10.0.0.1:7077", None), ("k8s://https://api:443", None)])
def test_local_masters_get_two_shuffle_partitions_per_thread_clusters_keep_their_own(master, threads):
    from keyfarm.spark.engine import local_threads

    assert local_threads(master) == threads


def test_spark_conf_items_become_settings_and_a_bad_item_names_itself():
    from keyfarm.errors import KeyfarmConfigError
    from keyfarm.spark.engine import parse_spark_conf

    assert parse_spark_conf(["spark.executor.memory=4g", "spark.driver.extraJavaOptions=-Da=b -Dc=d",
                             "spark.executor.memory=8g"]) == \
        {"spark.executor.memory": "8g", "spark.driver.extraJavaOptions": "-Da=b -Dc=d"}
    assert parse_spark_conf(()) == {}
    for bad in ("spark.executor.memory", "=4g", "spark executor=1"):
        with pytest.raises(KeyfarmConfigError, match="expected KEY=VALUE"):
            parse_spark_conf([bad])


def test_spark_conf_on_the_command_line_is_checked_before_anything_runs(tmp_path):
    from click.testing import CliRunner

    from keyfarm.cli import main

    runner = CliRunner()
    bad = runner.invoke(main, ["link", str(tmp_path), "--out", str(tmp_path / "o"), "--engine", "spark",
                               "--spark-conf", "spark.executor.memory"])
    assert bad.exit_code == 2 and "--spark-conf 'spark.executor.memory': expected KEY=VALUE" in bad.output
    local = runner.invoke(main, ["link", str(tmp_path), "--out", str(tmp_path / "o"),
                                 "--spark-conf", "spark.executor.memory=1g"])
    assert local.exit_code == 2 and "--spark-conf needs --engine spark" in local.output
    assert not (tmp_path / "o").exists()


def test_spark_conf_reaches_the_session(spark):
    from keyfarm.spark import spark_session

    session = spark_session("local[2]", conf={"spark.keyfarm.probe": "on", "spark.sql.shuffle.partitions": "3"})
    assert session.conf.get("spark.keyfarm.probe") == "on"
    assert session.conf.get("spark.sql.shuffle.partitions") == "3"
    session.conf.set("spark.sql.shuffle.partitions", "4")   # the module's session is shared


@pytest.mark.spark
def test_prompt_map_and_bucket_reduce_give_the_local_signals_incidence(spark, world_dir):
    """The prompt signal's rows, weights bit for bit, from the per-batch map and the per-bucket reduce,
    with prompts spread over many partitions (so texts, buckets and keys meet only in the reduce)."""
    from keyfarm.config import Config
    from keyfarm.io import load_tables
    from keyfarm.signals import prompt
    from keyfarm.spark import engine, stages
    from keyfarm.spark.prompts import prompt_incidence

    config = Config.default()
    tables = load_tables(world_dir)
    local = prompt.incidence(tables, config)
    assert local["token"].str.startswith("lsh:").any() and local["token"].str.startswith("pdup:").any()
    ctx = stages.WorkerContext(key_id=pd.Index(tables.keys["key_id"]), account=tables.keys["account"].to_numpy(np.int64),
                               account_id=tables.keys["account_id"].to_numpy(dtype=object),
                               quarantined_keys=frozenset(), config=config)
    req = tables.requests
    ok = spark.createDataFrame(pd.DataFrame({"key": req["key"].to_numpy(np.int64),
                                             "prompt": req["prompt"].to_numpy(dtype=object)}),
                               schema="key long, prompt string").repartition(7)
    got = prompt_incidence(ok, spark.sparkContext.broadcast(ctx), config, engine._per_batch).toPandas()
    order = ["key", "token"]
    got = got.sort_values(order).reset_index(drop=True)
    want = local[["key", "token", "weight"]].sort_values(order).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True, check_dtype=False)


@pytest.mark.spark
def test_large_star_small_star_components_equal_union_find(spark):
    """Paths, stars, a cycle, isolated pairs and a random sparse graph: each node's component is the
    smallest node of its union-find component."""
    from keyfarm.community.components import union_find_roots
    from keyfarm.spark.communities import connected_components

    rng = np.random.default_rng(4)
    u = [1, 2, 3, 4, 10, 10, 10, 20, 21, 22, 23, 30]
    v = [2, 3, 4, 5, 11, 12, 13, 21, 22, 23, 20, 31]
    ru, rv = rng.integers(100, 400, 260), rng.integers(100, 400, 260)
    ok = ru != rv
    u, v = np.r_[u, ru[ok]].astype(np.int64), np.r_[v, rv[ok]].astype(np.int64)
    edges = spark.createDataFrame(pd.DataFrame({"u": u, "v": v}), schema="u long, v long")
    persisted = []
    got, rounds = connected_components(edges, persisted)
    got = got.toPandas().set_index("node")["component"].sort_index()
    roots = union_find_roots(u, v, np.int64(400))
    nodes = np.unique(np.r_[u, v])
    assert got.index.tolist() == nodes.tolist()
    assert got.to_numpy().tolist() == roots[nodes].tolist()
    assert rounds >= 2
    for frame in persisted:
        frame.unpersist()


def test_event_log_stage_table_counts_tasks_times_and_inputs(tmp_path, capsys, monkeypatch):
    """scripts/spark_stages.py on a hand-written event log: per stage tasks, median/max task time,
    input (file + shuffle bytes), and single-task stages over data named on stderr."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "spark_stages", Path(__file__).resolve().parents[1] / "scripts" / "spark_stages.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "spark_stages", module)   # dataclasses look their module up
    spec.loader.exec_module(module)

    def task(stage, ms, file_bytes=0, shuffle=0):
        return {"Event": "SparkListenerTaskEnd", "Stage ID": stage,
                "Task Metrics": {"Executor Run Time": ms, "Input Metrics": {"Bytes Read": file_bytes},
                                 "Shuffle Read Metrics": {"Remote Bytes Read": 0, "Local Bytes Read": shuffle}}}

    def done(stage, name, at, scopes=()):
        rdds = [{"Name": "MapPartitionsRDD", "Scope": json.dumps({"id": str(i), "name": n})}
                for i, n in enumerate(scopes)]
        return {"Event": "SparkListenerStageCompleted",
                "Stage Info": {"Stage ID": stage, "Stage Name": name, "Number of Tasks": 3, "Completion Time": at,
                               "RDD Info": rdds}}

    events = [{"Event": "SparkListenerJobStart", "Stage IDs": [0], "Properties": {"spark.job.description": "keyfarm signals"}},
              task(0, 100, file_bytes=2**20), task(0, 300, file_bytes=2**21), task(0, 200, file_bytes=3 * 2**20),
              done(0, "mapInPandas at /x/engine.py:10", 2, ("Exchange", "MapInPandas", "WholeStageCodegen (1)")), task(1, 50, shuffle=2**22), done(1, "toPandas at y.py:3", 1),
              {"Event": "SparkListenerJobEnd"}]
    log = tmp_path / "events_1_local-1"
    log.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    rows = module.stage_table(module.read_events(log))
    assert [r["stage"] for r in rows] == [1, 0]          # completion order
    assert rows[1]["tasks"] == 3 and rows[1]["median_task_s"] == 0.2 and rows[1]["max_task_s"] == 0.3
    assert rows[1]["median_input_mib"] == 2.0 and rows[1]["max_over_median_input"] == 1.5
    assert module.main([str(log), "--markdown"]) == 0
    out = capsys.readouterr()
    assert "| 0 | keyfarm signals | 3 | 0.20 | 0.30 | 2.0 | 3.0 | 1.50 | MapInPandas | mapInPandas at engine.py:10 |" \
        in out.out
    assert "| 1 |  | 1 | 0.05 | 0.05 | 4.0 | 4.0 | 1.00 | - | toPandas at y.py:3 |" in out.out
    assert "1 read data in a single task: 1" in out.err
    jobs = module.job_table(module.collect_stages(module.read_events(log)))
    assert [(j["job"], j["stages"], j["tasks"], j["max_task_s"], j["single_task_stages_over_data"]) for j in jobs] == \
        [("", 1, 1, 0.05, 1), ("keyfarm signals", 1, 3, 0.3, 0)]
    # a run still writing its log: the stages done so far, and a note that the log is not complete
    growing = tmp_path / "events_1_local-2"
    growing.write_text(log.read_text() + json.dumps(task(2, 10))[:25])
    assert [r["stage"] for r in module.stage_table(module.read_events(growing))] == [1, 0]
    assert "not yet complete" in capsys.readouterr().err
    broken = tmp_path / "events_1_local-3"
    broken.write_text("not json\n" + log.read_text())
    with pytest.raises(SystemExit, match="line 1: not a JSON event"):
        module.stage_table(module.read_events(broken))


@pytest.mark.spark
def test_group_column_puts_each_group_of_keys_in_its_own_partition(spark):
    """The key, token and account link groups (engine.group_column): rows of a key meet in one
    group, and the n groups of a hash partitioning into n land in n distinct partitions, where
    pmod(hash(key), n) itself put several groups in one partition and left others empty."""
    from pyspark.sql import functions as F

    from keyfarm.spark.engine import group_column

    keys = spark.range(2000).select(F.col("id").alias("key"))
    keys = keys.unionByName(keys)   # every key twice: both rows in one group
    for n in (4, 5):
        frame = keys.withColumn("g", group_column(spark, n, "key")).repartition(n, "g") \
            .select("key", "g", F.spark_partition_id().alias("p")).toPandas()
        assert (frame.groupby("key")["g"].nunique() == 1).all()
        assert frame["g"].nunique() == n and (frame.groupby("g")["p"].nunique() == 1).all()
        assert sorted(frame.groupby("g")["p"].first()) == list(range(n)), n
        naive = keys.withColumn("g", F.pmod(F.hash("key"), F.lit(n))).repartition(n, "g") \
            .select(F.spark_partition_id()).distinct().count()
        assert naive < n   # what the labels are for


@pytest.mark.spark
def test_bucket_keys_put_each_timing_part_in_its_own_partition(spark):
    """n groups keyed by bucket_keys(n) land in n distinct partitions of a hash partitioning into n
    (the timing signal's parts then run as n tasks; keys 0..n−1 would share partitions)."""
    from pyspark.sql import functions as F

    from keyfarm.spark.engine import bucket_keys

    for n in (4, 5, 8):
        keys = bucket_keys(spark, n)
        frame = spark.createDataFrame(pd.DataFrame({"g": keys}), schema="g int").repartition(n, "g")
        placed = dict(frame.select("g", F.spark_partition_id().alias("p")).toPandas().itertuples(index=False))
        assert sorted(placed.values()) == list(range(n)), (n, placed)
    naive = spark.createDataFrame(pd.DataFrame({"g": range(5)}), schema="g int").repartition(4, "g")
    assert naive.select(F.spark_partition_id()).distinct().count() < 4


def test_a_jvm_that_died_is_one_error_naming_the_heap_setting(monkeypatch, tmp_path):
    """The JVM of a local master killed by an OutOfMemoryError leaves py4j a refused connection:
    the job stops with one KeyfarmError naming spark.driver.memory, and does not try to stop the
    dead session (which would raise again)."""
    pytest.importorskip("pyspark")
    from keyfarm.spark import engine

    stopped = []

    class DeadSession:
        def stop(self):
            stopped.append(True)
            raise ConnectionRefusedError(111, "Connection refused")

    def dies(*args):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(engine, "spark_session", lambda *a, **k: DeadSession())
    monkeypatch.setattr(engine, "_link", dies)
    with pytest.raises(KeyfarmError, match="spark.driver.memory") as caught:
        engine.link_spark(tmp_path)
    assert "Connection refused" in str(caught.value) and not stopped



@pytest.mark.parametrize("code, says, not_says", [
    (-9, "SIGKILL", "heap was too small"), (137, "out-of-memory killer", "heap was too small"),
    (52, "spark.driver.memory=8g", "SIGKILL"), (None, "unknown status", "killed by SIGKILL"),
    (1, "exit code 1", "killed by SIGKILL")])
def test_the_message_of_a_stopped_jvm_says_how_it_stopped(code, says, not_says):
    from keyfarm.spark.engine import jvm_stopped_message

    message = jvm_stopped_message(ConnectionRefusedError(111, "Connection refused"), code)
    assert says in message and not_says not in message and "Connection refused" in message
    if code in (-9, 137):   # the kernel, not the heap: a bigger heap is no fix
        assert "not the Java heap setting" in message and "\n" not in message


def test_a_jvm_killed_by_the_kernel_is_not_blamed_on_the_heap(monkeypatch, tmp_path):
    """A driver JVM that got SIGKILL (what the OOM killer sends): the error reads its exit status
    from the process this one started and names the kernel, not spark.driver.memory's size."""
    pytest.importorskip("pyspark")
    import signal
    import subprocess
    from types import SimpleNamespace

    from keyfarm.spark import engine

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    proc.send_signal(signal.SIGKILL)
    session = SimpleNamespace(sparkContext=SimpleNamespace(_gateway=SimpleNamespace(proc=proc)))

    def dies(*args):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(engine, "spark_session", lambda *a, **k: session)
    monkeypatch.setattr(engine, "_link", dies)
    with pytest.raises(KeyfarmError, match="killed by SIGKILL") as caught:
        engine.link_spark(tmp_path)
    assert "out-of-memory killer" in str(caught.value) and "heap was too small" not in str(caught.value)
