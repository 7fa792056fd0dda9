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


def test_by_default_pages_are_drawn_without_forking(tmp_path, monkeypatch):
    monkeypatch.setattr(workers, "MIN_PAGES_PER_WORKER", 1)

    def no_fork(*args, **kwargs):
        raise AssertionError("forked by default")

    monkeypatch.setattr(workers.multiprocessing.get_context("fork"), "Pool", no_fork, raising=False)
    out = hostile_out_dir(tmp_path / "out")
    write_report(out, max_nodes=12)
    assert {p.name for p in (out / "report" / "clusters").iterdir()} == {"0.html", "1.html", "2.html"}


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
