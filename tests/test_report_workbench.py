"""The analyst's workbench: why (score breakdown), when (timeline), labels, index search and export."""
from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
from click.testing import CliRunner

from keyfarm.cli import main
from keyfarm.labels import append_label, read_out_labels
from keyfarm.report import explore, write_report
from keyfarm.report.breakdown import breakdown, scoring_config
from keyfarm.report.escape import esc
from keyfarm.report.testing import IMG_XSS, MARK, SCRIPT_XSS, hostile, hostile_out_dir
from keyfarm.report.timeline import timeline_svg


@pytest.fixture()
def out(tmp_path):
    return hostile_out_dir(tmp_path / "out")


def _page(out, name):
    return (out / "report" / name).read_text(encoding="utf-8")


def test_breakdown_sums_to_the_logit_of_the_score(out):
    clusters = pd.read_parquet(out / "clusters.parquet")
    run = json.loads((out / "run.json").read_text())
    config = scoring_config(run)
    for row in clusters.to_dict("records"):
        b = breakdown(row, config)
        assert b.logit == pytest.approx(b.bias + sum(r[3] for r in b.rows))
        assert 1 / (1 + math.exp(-b.logit)) == pytest.approx(row["score"], abs=1e-5)


def test_breakdown_is_drawn_with_the_missing_evidence_of_a_review(out):
    write_report(out, max_nodes=12)
    review = _page(out, "clusters/2.html")   # verdict review
    assert '<svg class="waterfall"' in review and "Missing for farm" in review
    farm = _page(out, "clusters/0.html")
    assert '<svg class="waterfall"' in farm and "Missing for farm" not in farm
    assert "Evidence of one actor (control)" in farm and "Evidence of evasion" in farm


def test_timeline_shows_each_account_and_the_shared_slots(out):
    write_report(out, max_nodes=12)
    page = _page(out, "clusters/0.html")
    svg = re.search(r'<svg class="timeline".*?</svg>', page, re.S).group(0)
    assert svg.count('class="tl-acc"') == 4 and svg.count('class="tl-first"') == 4   # 4 accounts
    assert 'class="tl-slot"' in svg and ("▲" in svg or "◀" in svg)
    assert '<g class="tl-tokens">' in svg and '<g class="tl-requests" style="display:none">' in svg
    assert esc(IMG_XSS) in svg and MARK not in svg


def test_timeline_merges_bins_to_fit_long_logs():
    start = pd.Timestamp("2026-01-01", tz="UTC")
    activity = pd.DataFrame({"cluster_id": 0, "account_id": ["a", "b"] * 500,
                             "bin": [start + pd.Timedelta(minutes=15 * i) for i in range(1000)],
                             "n_requests": 1, "tokens": 10})
    svg = timeline_svg(activity, pd.DataFrame(), pd.DataFrame({"account_id": ["a", "b"], "created_at": [start] * 2}))
    assert "per 2 h" in svg   # 1,000 bins of 15 min → at most 192 columns


def test_label_round_trips_and_calibrate_reads_it(out):
    append_label(out, "farm", cluster_id=0, note=SCRIPT_XSS, ts="2026-02-01T00:00:00Z")
    append_label(out, "benign", account_id="acct m0", ts="2026-02-01T01:00:00Z")
    labels = read_out_labels(out)
    assert list(labels.columns[:6]) == ["account_id", "cluster_id", "label", "source", "ts", "note"]
    assert labels["label"].tolist()[-2:] == ["farm", "benign"]
    assert labels["cluster_id"].iloc[-2] == 0 and pd.isna(labels["cluster_id"].iloc[-1])
    assert pd.isna(labels["account_id"].iloc[-2]) and labels["account_id"].iloc[-1] == "acct m0"
    assert labels["note"].iloc[-2] == SCRIPT_XSS and str(labels["ts"].dtype) == "datetime64[ns, UTC]"
    from keyfarm.scoring.calibrate import check_labels, labelled_clusters

    check_labels(labels)
    # calibrate needs the f_ features: the hostile fixture has them; cluster 0 farm, cluster 1 benign
    y = labelled_clusters([out], labels.assign(out_dir=str(out))).set_index("cluster_id")["y"]
    assert y.to_dict() == {0: 1, 1: 0}


def test_label_command_appends_refreshes_pages_and_rejects_unknown_ids(out):
    write_report(out, max_nodes=12)
    before = len(read_out_labels(out))
    done = CliRunner().invoke(main, ["label", str(out), "benign", "--cluster", "1", "--note", IMG_XSS, "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["cluster_id"] == 1 and len(read_out_labels(out)) == before + 1
    page = _page(out, "clusters/1.html")
    assert "labelled benign" in page and esc(IMG_XSS) in page and IMG_XSS not in page
    for args in (["--cluster", "3"], ["--account", "nobody"], ["--cluster", "1", "--account", "acct m0"], []):
        bad = CliRunner().invoke(main, ["label", str(out), "farm", *args])
        assert bad.exit_code == 2 and "Traceback" not in bad.output, args
    assert len(read_out_labels(out)) == before + 1


def test_calibrate_reads_the_labels_of_the_out_dir(out):
    (out / "labels.parquet").unlink()
    none = CliRunner().invoke(main, ["calibrate", str(out)])
    assert none.exit_code == 2 and "keyfarm label" in none.output
    append_label(out, "farm", cluster_id=0)
    # one labelled cluster passes the verdict's gates: read, counted, and too few to fit
    done = CliRunner().invoke(main, ["calibrate", str(out)])
    assert done.exit_code == 2 and "1 of 1 labelled clusters are farms" in done.output


def test_index_searches_members_and_lists_changes_first(out):
    write_report(out, max_nodes=12)
    index = _page(out, "index.html")
    lookup = _page(out, "assets/members.js")
    data = json.loads(lookup.split("window.kfMembers = ", 1)[1].rstrip().rstrip(";"))
    assert data["keys"][SCRIPT_XSS] == 0 and data["accounts"][IMG_XSS] == 0 and "solo" not in data["keys"]
    assert "<" not in lookup.split("\n", 1)[1]
    assert index.index('id="changes"') < index.index('id="scores"') < index.index('id="clusters-h"')
    assert '<svg class="histogram"' in index and 'id="csv"' in index and 'id="f-signal"' in index
    assert esc(hostile("hub_example")) in index and 'data-verdict="review"' in index
    assert '<script src="assets/members.js"></script>' in index


def test_pages_hold_no_url_outside_the_report(out):
    """Only the index's link to OUT_DIR/run-info.html (run.json's timings, beside the report) and
    that page's link back leave the report folder."""
    write_report(out, max_nodes=12)
    for path in [*(out / "report").rglob("*.html"), out / "run-info.html"]:
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text.replace('http-equiv', '') and "https://" not in text, path
        if path.name == "index.html":
            assert text.count('href="../run-info.html"') == 1
            text = text.replace('href="../run-info.html"', "")
        if path.name == "run-info.html":
            assert text.count('href="report/index.html"') == 1
            text = text.replace('href="report/index.html"', "")
        assert not re.search(r'(?:src|href)="(?!\.\./assets/|assets/|clusters/|\.\./index\.html|#)', text), path


def test_explore_finds_the_page_of_an_account_or_a_key(out):
    page = explore(out, key=SCRIPT_XSS)
    assert page.cluster_id == 0 and page.path.name == "0.html"
    assert explore(out, account="acct m1").cluster_id == 1
    shown = page._repr_html_()
    assert shown.startswith("<iframe srcdoc=") and "<script>" not in shown and SCRIPT_XSS not in shown
    done = CliRunner().invoke(main, ["explore", str(out), "--account", IMG_XSS, "--print-path"])
    assert done.exit_code == 0 and done.output.strip().endswith("clusters/0.html")
    for args in (["--key", "nope"], ["--account", "acct solo"], ["--key", "m0", "--account", "acct m0"]):
        bad = CliRunner().invoke(main, ["explore", str(out), *args, "--print-path"])
        assert bad.exit_code == 2 and "Traceback" not in bad.output, args


def test_an_account_outside_any_cluster_can_be_labelled(out):
    done = CliRunner().invoke(main, ["label", str(out), "benign", "--account", "acct solo", "--quiet"])
    assert done.exit_code == 0 and done.output == ""
    assert read_out_labels(out)["account_id"].iloc[-1] == "acct solo"


def test_a_100_account_cluster_page_stays_small(tmp_path):
    out = hostile_out_dir(tmp_path / "out", big_cluster_keys=300, big_cluster_links=30)   # 100 accounts
    write_report(out)
    page = out / "report" / "clusters" / "2.html"
    assert page.stat().st_size < 1_500_000
    assert page.read_text().count('<tr id="prompt-') <= 120   # prompts once per page, capped
