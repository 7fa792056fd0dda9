"""The HTML report: every data string escaped, no remote assets, reductions stated, stable bytes."""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from click.testing import CliRunner

from keyfarm.report import cluster_html, write_report
from keyfarm.report.command import explore_command, report_command
from keyfarm.report.escape import esc, script_json
from keyfarm.report.graph import pair_rows
from keyfarm.report.testing import IMG_XSS, MARK, SCRIPT_XSS, hostile, hostile_out_dir

# fields whose hostile value must be visible (escaped) somewhere in the pages
SHOWN_FIELDS = ("key_id", "account_id", "org_id", "email_domain", "evidence_payment", "evidence_ip",
                "evidence_device", "evidence_prompt", "prompt_example_a", "prompt_example_b", "explanation",
                "signals", "strongest_key_a", "strongest_key_b", "strongest_evidence", "weakest_key_a",
                "weakest_key_b", "weakest_signal", "strongest_signal", "run_id", "version", "input", "table",
                "reason", "hub_token", "hub_signal", "stage", "hub_verdict", "hub_example", "label_note",
                "label_source", "previous_cluster_ids")
ASSET_URL = re.compile(r"""<(?:script|link|img|iframe|source|embed|object)\b[^>]*\b(?:src|href|data)\s*=\s*["']?\s*(?:https?:)?//""",
                       re.IGNORECASE)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = hostile_out_dir(tmp_path_factory.mktemp("hostile") / "out")
    index = write_report(out, max_nodes=12)
    pages = {p.name: p.read_text(encoding="utf-8") for p in (out / "report" / "clusters").glob("*.html")}
    pages["index.html"] = index.read_text(encoding="utf-8")
    pages["run-info.html"] = (out / "run-info.html").read_text(encoding="utf-8")   # run.json's timings
    return out, pages


def _data_block(page: str):
    found = re.search(r'<script type="application/json" id="kf-data">(.*?)</script>', page, re.S)
    data = json.loads(found.group(1))
    data["edges"] = pair_rows(data["pairs"])   # one dict per pair, as the page's script unpacks them
    return data


def test_no_raw_markup_from_the_data_reaches_any_page(report):
    _, pages = report
    for name, page in pages.items():
        assert MARK not in page, name
        assert SCRIPT_XSS not in page, name
        assert IMG_XSS not in page, name
        assert "<i " not in page, name


def test_every_shown_field_appears_as_escaped_text(report):
    _, pages = report
    everything = "\n".join(pages.values())
    for field in SHOWN_FIELDS:
        assert esc(f'class="xss-{field}">') in everything, field
    assert esc(SCRIPT_XSS) in pages["0.html"]
    assert esc(IMG_XSS) in pages["0.html"]


def test_graph_data_round_trips_hostile_strings_exactly(report):
    _, pages = report
    data = _data_block(pages["0.html"])
    key_ids = {k for n in data["nodes"] for k in n["info"]["keys"]}
    assert {SCRIPT_XSS, IMG_XSS, hostile("key_id", 2)} <= key_ids
    assert IMG_XSS in {n["info"]["account_id"] for n in data["nodes"]}
    tokens = {data["strings"][i] for e in data["edges"] for i in e["ev"].values()}
    for signal in ("payment", "ip", "device", "prompt", "timing"):
        assert any(t.startswith(f'<i class="xss-evidence_{signal}">') for t in tokens), signal
    # prompts live once, in the page's prompts table, as escaped text; links refer to them by number
    assert esc(SCRIPT_XSS) in pages["0.html"].split('<table id="prompts">')[1]
    assert all(isinstance(i, int) for e in data["edges"] for i in e.get("p", []) if i is not None)


def test_script_json_cannot_close_a_script_element():
    text = script_json({"a": SCRIPT_XSS, "b": "<!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": SCRIPT_XSS, "b": "<!-- & \u2028"}


def test_pages_reference_no_remote_asset(report):
    _, pages = report
    for name, page in pages.items():
        assert not ASSET_URL.search(page), name
        assert "url(http" not in page and "@import" not in page, name
        assert "default-src 'none'" in page, name


def test_each_cluster_of_two_accounts_gets_a_page_linked_from_the_index(report):
    out, pages = report
    assert sorted(pages) == ["0.html", "1.html", "2.html", "index.html", "run-info.html"]
    for cid in (0, 1, 2):
        assert f'href="clusters/{cid}.html"' in pages["index.html"]
    assert (out / "report" / "assets" / "vis-network.min.js").stat().st_size > 100_000


def test_graph_has_one_node_per_account_with_its_keys_on_demand(report):
    _, pages = report
    data = _data_block(pages["2.html"])
    assert data["level"] == "account"
    assert len(data["nodes"]) == 10                      # 30 keys in 10 accounts
    assert sorted(len(n["info"]["keys"]) for n in data["nodes"]) == [3] * 10
    small = _data_block(pages["0.html"])
    assert len(small["nodes"]) == 4 and len(small["edges"]) == 6   # 6 keys, 4 accounts, every pair linked


def test_a_pair_carries_every_signal_of_its_key_links(tmp_path):
    out = hostile_out_dir(tmp_path / "out")
    edges = pd.read_parquet(out / "edges.parquet")
    members = pd.read_parquet(out / "members.parquet")
    write_report(out, max_nodes=12)
    data = _data_block((out / "report" / "clusters" / "0.html").read_text())
    account = dict(zip(members["key_id"], members["account_id"]))
    for pair in data["edges"]:
        a, b = data["nodes"][pair["a"]]["info"]["account_id"], data["nodes"][pair["b"]]["info"]["account_id"]
        mine = edges[[{account[x], account[y]} == {a, b} for x, y in zip(edges["key_a"], edges["key_b"])]]
        expected = {s: round(float(mine[f"w_{s}"].max()), 3) for s in ("payment", "ip", "device", "prompt", "timing")
                    if mine[f"w_{s}"].max() > 0}
        assert pair["w"] == expected
        assert pair["n"] == len(mine)


def test_cluster_above_max_nodes_draws_the_strongest_accounts_and_says_so(tmp_path):
    out = hostile_out_dir(tmp_path / "out")
    write_report(out, max_nodes=4)
    page = (out / "report" / "clusters" / "2.html").read_text()
    assert len(_data_block(page)["nodes"]) == 4 and "10 accounts exceed the 4-node limit" in page


def test_link_cap_keeps_a_spanning_forest_and_says_so(tmp_path):
    out = hostile_out_dir(tmp_path / "out", big_cluster_keys=36)
    write_report(out, max_nodes=12)   # 12 accounts, 66 linked pairs > 36
    page = (out / "report" / "clusters" / "2.html").read_text()
    data = _data_block(page)
    assert len(data["edges"]) == 36 and "maximum spanning forest" in page
    import networkx as nx
    g = nx.Graph([(e["a"], e["b"]) for e in data["edges"]])
    assert g.number_of_nodes() == 12 and nx.is_connected(g)


def test_layout_is_precomputed_and_physics_off(report):
    _, pages = report
    data = _data_block(pages["0.html"])
    assert data["options"]["physics"]["enabled"] is False
    assert all(isinstance(n["x"], float) and isinstance(n["y"], float) for n in data["nodes"])


def test_report_is_byte_identical_across_runs_and_row_orders(tmp_path):
    first = hostile_out_dir(tmp_path / "a")
    second = hostile_out_dir(tmp_path / "b")
    for name in ("members", "edges", "clusters", "activity", "slots", "hubs"):   # shuffle rows of the second copy
        frame = pd.read_parquet(second / f"{name}.parquet")
        frame.sample(frac=1.0, random_state=3).to_parquet(second / f"{name}.parquet", index=False)
    write_report(first, max_nodes=12)
    write_report(second, max_nodes=12)
    for page in ("index.html", "clusters/0.html", "clusters/2.html"):
        assert (first / "report" / page).read_bytes() == (second / "report" / page).read_bytes(), page


def test_missing_extra_columns_show_less_but_do_not_fail(tmp_path):
    out = hostile_out_dir(tmp_path / "out")
    pd.read_parquet(out / "members.parquet")[["key_id", "account_id", "cluster_id"]] \
        .to_parquet(out / "members.parquet", index=False)
    pd.read_parquet(out / "clusters.parquet")[["cluster_id", "n_keys", "n_accounts", "score", "flagged", "signals",
                                               "total_tokens", "limit_multiplier", "explanation"]] \
        .to_parquet(out / "clusters.parquet", index=False)
    pd.read_parquet(out / "edges.parquet")[["key_a", "key_b", "weight", "w_account", "w_payment", "w_ip",
                                            "w_device", "w_prompt"]].to_parquet(out / "edges.parquet", index=False)
    for name in ("run.json", "activity.parquet", "slots.parquet", "hubs.parquet", "labels.parquet",
                 "changes.parquet"):
        (out / name).unlink()
    index = write_report(out)
    assert "keyfarm report" in index.read_text() and "Changes since" not in index.read_text()
    page = (out / "report" / "clusters" / "0.html").read_text()
    assert len(_data_block(page)["nodes"]) == 4
    assert "No score breakdown" in page and "No activity recorded" in page


def test_missing_members_is_a_clear_input_error(tmp_path):
    from keyfarm.errors import KeyfarmInputError

    out = hostile_out_dir(tmp_path / "out")
    (out / "members.parquet").unlink()
    with pytest.raises(KeyfarmInputError, match="members"):
        write_report(out)


def test_self_contained_cluster_page_inlines_vis_network(report):
    out, _ = report
    page = cluster_html(out, 1)
    assert "<script src=" not in page and "vis.Network" in page and MARK not in page


def test_report_command_prints_index_path(tmp_path):
    out = hostile_out_dir(tmp_path / "out")
    result = CliRunner().invoke(report_command, [str(out), "--quiet", "--max-nodes", "12"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("index.html")


def test_explore_prints_cluster_page_and_rejects_unknown_cluster(tmp_path):
    out = hostile_out_dir(tmp_path / "out")
    result = CliRunner().invoke(explore_command, [str(out), "--cluster", "0", "--print-path"])
    assert result.exit_code == 0 and result.stdout.strip().endswith("clusters/0.html")
    assert "writing it" in result.stderr   # the report had to be written first: said on stderr
    as_json = CliRunner().invoke(explore_command, [str(out), "--key", "m1", "--json", "--quiet"])
    doc = json.loads(as_json.stdout)
    assert doc["path"].endswith(".html") and doc["found_by"].startswith("key") and as_json.stderr == ""
    bad = CliRunner().invoke(explore_command, [str(out), "--cluster", "3", "--print-path"])
    assert bad.exit_code == 2 and "cluster 3" in bad.output


def test_commands_have_help_text():
    for command in (report_command, explore_command):
        assert "Example" in CliRunner().invoke(command, ["--help"]).output


def test_a_table_cut_short_says_so_and_a_whole_one_does_not(tmp_path, monkeypatch):
    import keyfarm.report.cluster as cluster

    monkeypatch.setattr(cluster, "MAX_TABLE_ROWS", 5)
    out = hostile_out_dir(tmp_path / "out")
    write_report(out, max_nodes=12)
    big = (out / "report" / "clusters" / "2.html").read_text()   # 30 keys of 10 accounts
    small = (out / "report" / "clusters" / "1.html").read_text()  # 2 keys of 2 accounts
    assert "First 5 of 30 keys." in big and "First 5 of 10 accounts." in big
    assert "First " not in small
