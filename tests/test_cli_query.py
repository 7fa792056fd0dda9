"""Querying a run from the shell and from Python: `keyfarm clusters`, `evaluate --labels`,
LinkResult.write / to_networkx / to_igraph / repr, evaluate() on a LinkResult."""
from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from keyfarm.cli import main


@pytest.fixture(scope="module")
def run(small_world_dir, tmp_path_factory):
    from keyfarm.pipeline import run_link

    out = tmp_path_factory.mktemp("query") / "out"
    result = run_link(small_world_dir, out, seed=3, quiet=True, report=False)
    return result, out


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_clusters_filters_by_verdict_score_signal_and_size_highest_score_first(run):
    result, out = run
    clusters = result.clusters
    got = _invoke("clusters", out, "--verdict", "farm", "--min-score", "0.6", "--signal", "payment",
                  "--min-accounts", "3", "--json", "--quiet")
    assert got.exit_code == 0, got.output
    rows = json.loads(got.output)
    expected = clusters[(clusters["verdict"] == "farm") & (clusters["score"] >= 0.6) & (clusters["n_accounts"] >= 3)
                        & clusters["signals"].str.split(",").apply(lambda s: "payment" in s)]
    assert len(expected) > 0
    assert sorted(r["cluster_id"] for r in rows) == sorted(expected["cluster_id"].tolist())
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert set(rows[0]) >= {"cluster_id", "n_keys", "n_accounts", "score", "verdict", "flagged", "signals",
                            "total_tokens", "limit_multiplier", "explanation"}


def test_clusters_repeated_verdicts_limit_and_the_count_on_stderr(run):
    result, out = run
    got = CliRunner().invoke(main, ["clusters", str(out), "--verdict", "farm", "--verdict", "review", "--json"])
    rows = json.loads(got.stdout)
    assert {r["verdict"] for r in rows} <= {"farm", "review"}
    assert len(rows) == int(result.clusters["verdict"].isin(["farm", "review"]).sum())
    assert got.stderr.strip() == f"{len(rows):,} clusters"
    quiet = CliRunner().invoke(main, ["clusters", str(out), "--limit", "2", "--json", "--quiet"])
    assert len(json.loads(quiet.stdout)) == 2 and quiet.stderr == ""


def test_clusters_csv_has_a_header_and_one_row_per_cluster(run):
    result, out = run
    got = _invoke("clusters", out, "--csv", "--quiet")
    assert got.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(got.output)))
    assert len(rows) == len(result.clusters)
    assert set(rows[0]) >= {"cluster_id", "verdict", "score", "explanation"}


def test_clusters_text_table_lists_ids_verdicts_and_scores(run):
    result, out = run
    top = result.clusters.sort_values(["score", "cluster_id"], ascending=[False, True]).iloc[0]
    got = _invoke("clusters", out, "--limit", "1", "--quiet")
    header, line = got.output.strip().splitlines()
    assert header.split()[:3] == ["cluster_id", "verdict", "score"]
    assert line.split()[:3] == [str(top["cluster_id"]), top["verdict"], f"{top['score']:.3f}"]


def test_clusters_csv_defuses_spreadsheet_formulas_and_text_escapes_controls(tmp_path):
    from keyfarm.query import to_csv, to_text

    frame = pd.DataFrame({"cluster_id": [1], "verdict": ["farm"], "score": [0.9], "n_accounts": [3], "n_keys": [3],
                          "limit_multiplier": [2.0], "signals": ["=HYPERLINK(\"http://x\")"],
                          "explanation": ["-2+3"]})
    row = list(csv.reader(io.StringIO(to_csv(frame))))[1]
    assert row[frame.columns.get_loc("signals")].startswith("'=") and row[-1] == "'-2+3"
    assert row[frame.columns.get_loc("score")] == "0.9"   # numbers stay numbers
    from keyfarm.terminal import printable_lines
    shown = printable_lines(to_text(frame.assign(signals=["ip\x1b[2J"])))
    assert "\x1b" not in shown and "\\x1b" in shown


def test_clusters_rejects_an_unknown_signal_or_a_missing_out_dir_with_exit_2(run, tmp_path):
    _, out = run
    bad = _invoke("clusters", out, "--signal", "telepathy")
    assert bad.exit_code == 2 and "telepathy" in bad.output
    missing = _invoke("clusters", tmp_path / "nope")
    assert missing.exit_code == 2 and "not found" in missing.output and "Traceback" not in missing.output


def test_evaluate_labels_gives_precision_and_recall_against_the_analysts_labels(run, tmp_path):
    import shutil

    result, out = run
    out = shutil.copytree(out, tmp_path / "out")
    clusters = result.clusters
    farm = clusters[clusters["verdict"] == "farm"]["cluster_id"].tolist()
    other = clusters[clusters["verdict"] != "farm"]["cluster_id"].tolist()
    assert len(farm) >= 3 and len(other) >= 1
    # two farm verdicts confirmed, one overturned; a non-farm cluster labelled farm (a miss)
    for cid, label in ((farm[0], "farm"), (farm[1], "farm"), (farm[2], "benign"), (other[0], "farm")):
        assert _invoke("label", out, label, "--cluster", cid, "--quiet").exit_code == 0
    alone = result.members.groupby("cluster_id")["account_id"].transform("nunique") == 1
    lone_account = result.members.loc[alone & ~result.members["cluster_id"].isin(clusters["cluster_id"]),
                                      "account_id"].iloc[0]
    assert _invoke("label", out, "benign", "--account", lone_account, "--quiet").exit_code == 0
    got = _invoke("evaluate", out, "--labels", "--json")
    assert got.exit_code == 0, got.output
    doc = json.loads(got.output)["labels"]
    assert doc["labels"] == 5 and doc["cluster_labels"] == 4 and doc["account_labels"] == 1
    assert doc["precision"] == pytest.approx(2 / 3)
    assert doc["recall"] == pytest.approx(2 / 3)
    assert doc["by_verdict"]["farm"] == {"farm": 2, "benign": 1}
    assert doc["by_verdict"]["alone"] == {"farm": 0, "benign": 1}
    text = _invoke("evaluate", out, "--labels")
    assert "precision 0.6667" in text.output and "recall 0.6667" in text.output


def test_evaluate_labels_file_counts_ids_the_run_lacks_as_unmatched(run, tmp_path):
    result, out = run
    farm = int(result.clusters.loc[result.clusters["verdict"] == "farm", "cluster_id"].iloc[0])
    path = tmp_path / "labels.csv"
    path.write_text(f"cluster_id,account_id,label\n{farm},,farm\n999999,,benign\n,acct-nobody,farm\n")
    doc = json.loads(_invoke("evaluate", out, "--labels", path, "--json").output)["labels"]
    assert doc["unmatched"] == {"cluster": 1, "account": 1}
    assert doc["precision"] == 1.0 and doc["labels"] == 3


def test_evaluate_labels_with_no_labels_and_evaluate_with_nothing_to_compare_exit_2(run):
    _, out = run
    none = _invoke("evaluate", out, "--labels")
    assert none.exit_code == 2 and "keyfarm label" in none.output
    nothing = _invoke("evaluate", out)
    assert nothing.exit_code == 2 and "--truth" in nothing.output


def test_evaluate_with_truth_and_labels_puts_the_label_figures_under_labels(run, small_world_dir, tmp_path):
    result, out = run
    path = tmp_path / "labels.csv"
    farm = int(result.clusters.loc[result.clusters["verdict"] == "farm", "cluster_id"].iloc[0])
    path.write_text(f"cluster_id,label\n{farm},farm\n")
    doc = json.loads(_invoke("evaluate", out, "--truth", small_world_dir / "truth.parquet", "--labels", path,
                             "--json").output)
    assert 0 <= doc["precision"] <= 1 and doc["labels"]["precision"] == 1.0


def test_evaluate_takes_a_link_result_as_it_takes_its_out_dir(run, small_world_dir):
    from keyfarm.evaluate import evaluate

    result, out = run
    truth = pd.read_parquet(small_world_dir / "truth.parquet")
    assert evaluate(result, truth) == evaluate(out, small_world_dir / "truth.parquet")


def test_link_result_write_gives_the_out_dir_link_writes(run, tmp_path):
    result, out = run
    written = result.write(tmp_path / "again")
    for table in ("members", "clusters", "edges", "hubs"):
        assert pd.read_parquet(written / f"{table}.parquet").equals(pd.read_parquet(out / f"{table}.parquet")), table
    assert json.loads((written / "run.json").read_text())["run_id"] == json.loads((out / "run.json").read_text())["run_id"]


def test_account_graph_carries_cluster_verdict_score_and_signal_weights(run):
    result, _ = run
    g = result.to_networkx()
    members, clusters = result.members, result.clusters
    assert g.number_of_nodes() == members["account_id"].nunique()
    farm = clusters[clusters["verdict"] == "farm"].iloc[0]
    account = members.loc[members["cluster_id"] == farm["cluster_id"], "account_id"].iloc[0]
    node = g.nodes[account]
    assert node["cluster_id"] == farm["cluster_id"] and node["verdict"] == "farm"
    assert node["score"] == pytest.approx(farm["score"])
    assert node["n_keys"] == int((members["account_id"] == account).sum())
    edges = result.edges
    key_a, key_b = edges.iloc[0]["key_a"], edges.iloc[0]["key_b"]
    acc = dict(zip(members["key_id"], members["account_id"]))
    link = g.edges[acc[key_a], acc[key_b]]
    assert link["weight"] >= edges.iloc[0]["weight"] - 1e-12
    assert {"w_payment", "w_ip", "w_device", "w_prompt", "w_timing"} <= set(link)
    lone = clusters["cluster_id"].tolist()
    outside = members.loc[~members["cluster_id"].isin(lone), "account_id"].iloc[0]
    assert g.nodes[outside]["verdict"] == "alone" and g.nodes[outside]["score"] is None

    h = result.to_igraph()
    assert h.vcount() == g.number_of_nodes() and h.ecount() == g.number_of_edges()
    v = h.vs.find(name=account)
    assert v["verdict"] == "farm" and v["cluster_id"] == farm["cluster_id"]


def test_link_result_repr_is_one_short_line_of_counts(run):
    result, _ = run
    text = repr(result)
    assert "\n" not in text and len(text) < 200
    assert f"{len(result.clusters):,} clusters" in text
    assert f"farm {int((result.clusters['verdict'] == 'farm').sum()):,}" in text


def test_relinking_without_a_report_removes_the_earlier_runs_report(run, small_world_dir, tmp_path):
    import io

    from keyfarm.pipeline import finish_run
    from keyfarm.progress import Progress

    result, _ = run
    out = tmp_path / "out"
    (out / "report" / "clusters").mkdir(parents=True)
    (out / "report" / "index.html").write_text("<p>yesterday</p>")
    said = io.StringIO()
    finish_run(result, small_world_dir, out, Progress(file=said), report=False)
    assert not (out / "report").exists() and (out / "members.parquet").is_file()
    assert "earlier run" in said.getvalue()


def test_clusters_ids_prints_one_id_per_line_for_shell_loops(run):
    result, out = run
    got = _invoke("clusters", out, "--verdict", "farm", "--ids", "--quiet")
    farm = result.clusters[result.clusters["verdict"] == "farm"]
    assert sorted(int(x) for x in got.output.split()) == sorted(farm["cluster_id"].tolist())
    assert _invoke("clusters", out, "--ids", "--json").exit_code == 2
