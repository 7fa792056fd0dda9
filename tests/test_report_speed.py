"""The report's faster paths draw what the plain ones do: forked page workers, one-pass timelines,
column-wise account pairs, and tables read without a sort they do not need."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import keyfarm.report.workers as workers
from keyfarm.report import write_report
from keyfarm.report.outputs import sort_rows
from keyfarm.report.testing import hostile_out_dir
from keyfarm.report.timeline import Timelines, timeline_svg


def _pages(out) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "report").rglob("*")) if p.is_file()}


@pytest.mark.skipif("fork" not in __import__("multiprocessing").get_all_start_methods(), reason="needs fork")
def test_forked_workers_write_the_same_bytes_as_one_process(tmp_path, monkeypatch):
    monkeypatch.setattr(workers, "MIN_PAGES_PER_WORKER", 1)   # the fixture has 3 pages: fork anyway
    forked = []
    real_pool = workers.multiprocessing.get_context("fork").Pool

    def counting_pool(n):
        forked.append(n)
        return real_pool(n)

    monkeypatch.setattr(workers.multiprocessing.get_context("fork"), "Pool", counting_pool, raising=False)
    one = hostile_out_dir(tmp_path / "one")
    two = hostile_out_dir(tmp_path / "two")
    write_report(one, max_nodes=12, workers=1)
    write_report(two, max_nodes=12, workers=2)
    assert forked == [2]   # the second report was drawn by two forked workers
    assert _pages(one) == _pages(two)
    assert len(_pages(two)) > 3


def test_by_default_a_large_report_or_one_core_draws_without_forking(tmp_path, monkeypatch):
    monkeypatch.setattr(workers, "MIN_PAGES_PER_WORKER", 1)

    def no_fork(*args, **kwargs):
        raise AssertionError("forked by default")

    monkeypatch.setattr(workers.multiprocessing.get_context("fork"), "Pool", no_fork, raising=False)
    out = hostile_out_dir(tmp_path / "out")
    monkeypatch.setattr(workers, "AUTO_MAX_KEYS", 10)   # the fixture's 39 keys count as large
    write_report(out, max_nodes=12)
    monkeypatch.setattr(workers, "AUTO_MAX_KEYS", 10**6)
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 1)
    write_report(out, max_nodes=12)
    assert {p.name for p in (out / "report" / "clusters").iterdir()} == {"0.html", "1.html", "2.html"}


@pytest.mark.skipif("fork" not in __import__("multiprocessing").get_all_start_methods(), reason="needs fork")
def test_by_default_a_small_report_on_two_cores_forks_two_workers_after_moving_the_old_pages_aside(
        tmp_path, monkeypatch):
    import keyfarm.report.folders as folders

    monkeypatch.setattr(workers, "MIN_PAGES_PER_WORKER", 1)
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 2)
    events = []
    real_pool = workers.multiprocessing.get_context("fork").Pool

    def counting_pool(n):
        events.append(("fork", n, any(t.name == "keyfarm-report-remover" for t in folders.threading.enumerate())))
        return real_pool(n)

    monkeypatch.setattr(workers.multiprocessing.get_context("fork"), "Pool", counting_pool, raising=False)
    out = hostile_out_dir(tmp_path / "out")
    write_report(out, max_nodes=12, workers=1)
    one = _pages(out)
    write_report(out, max_nodes=12)   # over the first report: its pages are removed in the background
    assert events == [("fork", 2, False)]   # two workers, forked before the remover's thread started
    assert _pages(out) == one
    assert sorted(p.name for p in (out / "report").iterdir()) == ["assets", "clusters", "index.html"]


def test_one_pass_timelines_draw_each_cluster_as_if_alone(tmp_path):
    out = hostile_out_dir(tmp_path / "out")
    activity = pd.read_parquet(out / "activity.parquet")
    slots = pd.read_parquet(out / "slots.parquet")
    members = pd.read_parquet(out / "members.parquet")
    created = members.groupby("account_id")["created_at"].min().to_dict()
    # a second copy of the activity under other cluster ids, shifted a week: other columns and rows
    shifted = activity.assign(cluster_id=activity["cluster_id"] + 10, bin=activity["bin"] + pd.Timedelta(days=7))
    many = Timelines(pd.concat([activity, shifted]), slots)
    drawn = 0
    for cid in sorted(activity["cluster_id"].unique()):
        alone = timeline_svg(activity[activity["cluster_id"] == cid], slots[slots["cluster_id"] == cid], created)
        assert many.svg(int(cid), created) == alone
        drawn += 1
    assert drawn >= 2
    assert "No activity recorded" in many.svg(999, created)


def test_tables_in_order_are_not_resorted_and_others_are():
    in_order = pd.DataFrame({"key_a": ["a", "a", "b"], "key_b": ["x", "y", "a"]})
    assert sort_rows(in_order, ["key_a", "key_b"]) is in_order
    shuffled = in_order.iloc[[2, 0, 1]]
    assert sort_rows(shuffled, ["key_a", "key_b"]).index.tolist() == [0, 1, 2]
    with_null = pd.DataFrame({"key_a": ["b", None, "a"]})
    assert sort_rows(with_null, ["key_a"])["key_a"].tolist()[:2] == ["a", "b"]
    mixed = pd.DataFrame({"cluster_id": np.array([3, 1, 2], np.int64)})
    assert sort_rows(mixed, ["cluster_id"])["cluster_id"].tolist() == [1, 2, 3]


def test_report_command_takes_a_worker_count(tmp_path):
    from click.testing import CliRunner

    from keyfarm.cli import main

    out = hostile_out_dir(tmp_path / "out")
    ok = CliRunner().invoke(main, ["report", str(out), "--workers", "2", "--quiet"])
    assert ok.exit_code == 0, ok.output
    assert (out / "report" / "clusters" / "0.html").is_file()
    bad = CliRunner().invoke(main, ["report", str(out), "--workers", "0"])
    assert bad.exit_code == 2 and "--workers" in bad.output


def test_link_draws_its_report_from_memory_and_keyfarm_report_from_disk_the_same_bytes(days, tmp_path, monkeypatch):
    """`keyfarm link` hands the report the frames it wrote (no read-back); the pages are the bytes
    `keyfarm report OUT_DIR` writes from the files: on a daily run (changes.parquet, statuses),
    re-linked into its OUT_DIR over its own report, with analysts' labels."""
    import keyfarm.report.outputs as report_outputs
    from keyfarm.labels import append_label
    from keyfarm.pipeline import run_link

    out = tmp_path / "o2"
    run_link(days / "w2", out, previous=days / "o1", quiet=True)
    clusters = pd.read_parquet(out / "clusters.parquet")
    farm = int(clusters.loc[clusters["verdict"] == "farm", "cluster_id"].iloc[0])
    append_label(out, "benign", cluster_id=farm, note="<b>appeal</b> & ticket")
    (out / "report" / "clusters" / "999999.html").write_text("a page of a cluster that is gone")

    read = []
    real_read_output = report_outputs.read_output

    def recording(out_dir, table, *args, **kwargs):
        read.append(table)
        return real_read_output(out_dir, table, *args, **kwargs)

    monkeypatch.setattr(report_outputs, "read_output", recording)
    result = run_link(days / "w2", out, previous=days / "o1", quiet=True)   # over its own report
    assert read == []   # drawn from the frames link holds
    from_memory = _pages(out)
    assert "report/clusters/999999.html" not in from_memory
    assert not list((out / "report").glob(".clusters.old-*"))
    assert "changes" in result.output_tables() and result.changes is not None
    assert "appeal" in from_memory[f"report/clusters/{farm}.html"].decode()

    write_report(out)
    assert {"members", "clusters", "edges", "changes"} <= set(read)   # this one read the files
    from_disk = _pages(out)
    assert from_disk.keys() == from_memory.keys()
    assert [k for k in from_disk if from_disk[k] != from_memory[k]] == []   # the index too: it holds no timings


def test_two_links_of_one_input_and_seed_write_the_same_report_bytes_and_their_timings_beside(days, tmp_path):
    """Every file of report/ is the same bytes in two runs; each run's stage timings (which differ)
    are in OUT_DIR/run-info.html, which the index links to, and which --no-report removes."""
    import json

    from keyfarm.pipeline import run_link

    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        run_link(days / "w1", out, seed=3, quiet=True)
    pages = _pages(first)
    assert len(pages) > 5 and "report/index.html" in pages
    assert pages == _pages(second)
    assert b"../run-info.html" in pages["report/index.html"]
    for out in (first, second):
        run = json.loads((out / "run.json").read_text())
        info = (out / "run-info.html").read_text(encoding="utf-8")
        assert {"report", "write", "signals"} <= set(run["timings"])
        for stage, seconds in run["timings"].items():
            assert f"<tr><th>{stage}</th><td class=num>{seconds:,.2f}</td>" in info
    run_link(days / "w1", first, seed=3, quiet=True, report=False)
    assert not (first / "run-info.html").exists() and not (first / "report").exists()


def test_run_info_escapes_run_json(tmp_path):
    from keyfarm.report.runinfo import write_run_info
    from keyfarm.report.testing import hostile

    out = hostile_out_dir(tmp_path / "out")
    text = write_run_info(out).read_text(encoding="utf-8")
    assert "xss-" in text and "<i class=" not in text and "&lt;i class=&quot;xss-stage&quot;&gt;" in text
    assert hostile("stage") not in text


def test_drawing_from_memory_leaves_the_frames_as_they_were(tmp_path):
    out = hostile_out_dir(tmp_path / "out")
    tables = {name: pd.read_parquet(out / f"{name}.parquet")
              for name in ("members", "clusters", "edges", "hubs", "changes", "activity", "slots")}
    copies = {name: frame.copy() for name, frame in tables.items()}
    write_report(out, max_nodes=12, tables=tables)
    for name, frame in tables.items():
        pd.testing.assert_frame_equal(frame, copies[name])
    assert len(_pages(out)) > 3


def test_old_pages_are_removed_in_the_background_and_gone_when_the_report_is(tmp_path):
    from keyfarm.report.folders import aside_name, swap_in_empty

    pages = tmp_path / "report" / "clusters"
    pages.mkdir(parents=True)
    for i in range(50):
        (pages / f"{i}.html").write_text("old")
    (pages / "sub").mkdir()
    (pages / "sub" / "x").write_text("old")
    left = aside_name(pages, 7)   # left aside by an interrupted run
    left.mkdir()
    (left / "1.html").write_text("older")
    (tmp_path / "report" / ".clusters.old-1-0").write_text("a file where a folder was left")
    remover = swap_in_empty(pages)
    assert pages.is_dir() and not list(pages.iterdir())
    remover.join()
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["clusters"]


def test_page_chunks_hand_out_the_dearest_pages_first_each_page_once():
    costs = np.array([1.0, 50.0, 1.0, 2.0, 30.0, 1.0, 1.0, 1.0, 3.0, 1.0])
    tasks = workers.chunks(costs, 4)
    assert sorted(i for chunk in tasks for i in chunk) == list(range(costs.size))
    assert tasks[0] == [1] and tasks[1] == [4]   # each dearer than a chunk's share (22.75): alone, first
    assert [i for chunk in tasks for i in chunk][:4] == [1, 4, 8, 3]
    assert workers.chunks(np.ones(6), 3, in_order=True) == [[0, 1], [2, 3], [4, 5]]
    assert workers.chunks(np.zeros(0), 4) == []


def test_column_values_of_a_part_of_a_column_array_are_that_part_of_its_values():
    """Pages turn only the pairs they draw into plain values (graph.ColumnsByCluster): any part of
    escape.column_array(series) must give that part of column_values(series), whatever the dtype."""
    from keyfarm.report.escape import column_array, column_values

    n = 200   # above escape.FEW: both the value-by-value and the vectorised text paths
    rng = np.random.default_rng(5)
    text = np.array([f"k{i}" for i in range(n)], dtype=object)
    text[::7], text[3::11] = None, np.nan
    columns = {
        "text": pd.Series(text), "mixed": pd.Series([1, "a", None, 2.5] * (n // 4), dtype=object),
        "float": pd.Series(np.where(np.arange(n) % 9 == 0, np.nan, rng.random(n))).replace(
            {0: np.inf}).where(np.arange(n) != 4, -np.inf),
        "int": pd.Series(rng.integers(0, 9, n)), "bool": pd.Series(rng.random(n) > 0.5),
        "nullable": pd.Series(pd.array([1, None] * (n // 2), dtype="Int64")),
        "string": pd.Series(pd.array(["a", None] * (n // 2), dtype="string")),
        "time": pd.Series(pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC")),
    }
    for name, series in columns.items():
        whole, array = column_values(series), column_array(series)
        assert column_values(array) == whole, name
        for rows in (np.arange(0, n, 3), np.array([5, 1, 2]), np.arange(0), np.arange(7, 30)):
            assert column_values(array[rows]) == [whole[i] for i in rows], (name, rows[:3])


@pytest.mark.parametrize("n_workers", [1, 2])
def test_pages_written_by_background_writers_are_all_there_and_a_failed_write_raises(tmp_path, monkeypatch, n_workers):
    monkeypatch.setattr(workers, "MIN_PAGES_PER_WORKER", 1)
    records = [{"cluster_id": i} for i in range(40)]
    draw = lambda r: f"page {r['cluster_id']} " * (r["cluster_id"] + 1)   # noqa: E731
    workers.write_pages(draw, records, tmp_path, workers=n_workers)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{i}.html" for i in range(40))
    for r in records:
        assert (tmp_path / f"{r['cluster_id']}.html").read_text(encoding="utf-8") == draw(r)
    with pytest.raises(OSError):
        workers.write_pages(draw, records, tmp_path / "missing", workers=n_workers)
