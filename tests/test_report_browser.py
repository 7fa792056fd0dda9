"""The report in a real headless Chromium: the graph draws, no script error, no XSS, no request.

Chromium is Debian's `chromium` package; when missing and running as root, the module installs it
with apt-get (CI), otherwise it skips saying why. A probe script is placed before the page's
Content-Security-Policy: it records errors, CSP violations and alert() calls, then writes what it
saw into the DOM, which `--dump-dom` prints.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from keyfarm.report import write_report
from keyfarm.report.graph import pair_rows
from keyfarm.report.testing import IMG_XSS, SCRIPT_XSS, hostile_out_dir

pytestmark = pytest.mark.browser

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
PROBE = r"""
window.__probe = {errors: [], alerts: 0, violations: []};
window.addEventListener("error", function (e) {
  __probe.errors.push(String(e.message || ("resource failed: " + (e.target && (e.target.src || e.target.href)))));
}, true);
window.addEventListener("unhandledrejection", function (e) { __probe.errors.push("rejection: " + e.reason); });
window.alert = window.confirm = window.prompt = function () { __probe.alerts += 1; };
document.addEventListener("securitypolicyviolation", function (e) {
  __probe.violations.push(e.violatedDirective + " " + e.blockedURI);
});
function __titles(items) {
  return items.map(function (x) { return x.title; }).filter(function (t) { return t instanceof Element; });
}
window.addEventListener("load", function () { setTimeout(function () {
  var out = Object.assign({}, __probe);
  out.graphReady = document.body.getAttribute("data-graph-ready");
  out.timelineShapes = document.body.getAttribute("data-timeline");
  out.indexReady = document.body.getAttribute("data-index-ready");
  out.injected = document.querySelectorAll("img, i, iframe, object, embed").length;
  if (window.kfNetwork) {
    out.drawn = Object.keys(window.kfNetwork.getPositions()).length;
    var tips = __titles(window.kfNetwork.body.data.nodes.get()).concat(__titles(window.kfNetwork.body.data.edges.get()));
    out.tips = tips.length;
    out.tipText = tips.map(function (t) { return t.textContent; }).join("\n");
    out.injectedInTips = tips.reduce(function (n, t) { return n + t.querySelectorAll("img, i, script, iframe").length; }, 0);
    var canvas = document.querySelector("#graph canvas");
    var px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data, painted = 0;
    for (var i = 0; i < px.length; i += 4) { if (px[i + 3] > 0 && (px[i] < 250 || px[i + 1] < 250 || px[i + 2] < 250)) { painted += 1; } }
    out.paintedPixels = painted;
  }
  var table = document.getElementById("clusters");
  if (table) {
    var box = document.getElementById("flagged-only");
    box.checked = true; box.dispatchEvent(new Event("change"));
    out.flaggedRows = Array.prototype.filter.call(table.tBodies[0].rows, function (r) { return !r.hidden; }).length;
    box.checked = false; box.dispatchEvent(new Event("change"));
    var score = table.tHead.rows[0].cells[1];
    score.click(); out.topByScoreDesc = table.tBodies[0].rows[0].cells[0].textContent;
    score.click(); out.topByScoreAsc = table.tBodies[0].rows[0].cells[0].textContent;
    function visible() { return Array.prototype.filter.call(table.tBodies[0].rows, function (r) { return !r.hidden; }).length; }
    function set(id, value, ev) { var e = document.getElementById(id); e.value = value; e.dispatchEvent(new Event(ev)); }
    set("f-verdict", "review", "change"); out.reviewRows = visible(); set("f-verdict", "", "change");
    set("f-min", "0.99", "input"); out.rowsAbove099 = visible(); set("f-min", "0", "input");
    set("f-size", "5", "input"); out.rowsOf5Accounts = visible(); set("f-size", "2", "input");
    set("filter", window.__searchKey || "", "input"); out.searchRows = visible();
    out.searchFound = document.getElementById("found").textContent;
    out.csv = window.kfCsv();
    set("filter", "", "input");
    out.csvAll = window.kfCsv();
  }
  var pre = document.createElement("pre"); pre.id = "kf-probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 300); });
"""


def _install_chromium() -> str:
    """apt-get install chromium (root only); returns the log tail on failure."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "not root or no apt-get"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log = []
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
        log.append(done.stdout[-500:] + done.stderr[-500:])
        if done.returncode != 0:
            return "\n".join(log)
    return ""


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        problem = _install_chromium()
        found = shutil.which("chromium")
        if not found:
            pytest.skip(f"headless Chromium unavailable and could not be installed: {problem}")
    return found


def probe(chromium: str, page: Path, *, keep_csp: bool = True, search: str | None = None) -> dict:
    """Load a copy of `page` (beside it, so relative assets resolve) with the probe; return its report."""
    work = Path(tempfile.mkdtemp(prefix="kf-probe-"))
    (work / "probe.js").write_text(PROBE)
    text = page.read_text(encoding="utf-8")
    if not keep_csp:
        text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text)
    text = text.replace("<head>", f'<head><script src="{(work / "probe.js").as_uri()}"></script>', 1)
    text = text.replace("</head>", f'<script src="{(work / "search.js").as_uri()}"></script></head>', 1)
    (work / "search.js").write_text(f"window.__searchKey = {json.dumps(search)};" if search else "")
    copy = page.with_name(f"_probe_{page.name}")
    copy.write_text(text, encoding="utf-8")
    try:
        done = subprocess.run([chromium, *FLAGS, f"--user-data-dir={work / 'profile'}", "--dump-dom",
                               "--virtual-time-budget=8000", copy.as_uri()],
                              capture_output=True, text=True, timeout=120)
    finally:
        copy.unlink()
        shutil.rmtree(work, ignore_errors=True)
    found = re.search(r'<pre id="kf-probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"probe did not report; chromium said: {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    out = hostile_out_dir(tmp_path_factory.mktemp("browser") / "out")
    write_report(out, max_nodes=12)
    return out / "report"


def _data(page: Path) -> dict:
    found = re.search(r'<script type="application/json" id="kf-data">(.*?)</script>', page.read_text(), re.S)
    data = json.loads(found.group(1))
    data["edges"] = pair_rows(data["pairs"])   # one dict per pair, as the page's script unpacks them
    return data


def test_cluster_page_draws_every_account_and_signal_without_script_errors(chromium, hostile_report):
    page = hostile_report / "clusters" / "0.html"
    seen = probe(chromium, page)
    assert seen["errors"] == [] and seen["violations"] == []
    assert seen["graphReady"] == "4" and seen["drawn"] == 4
    assert seen["paintedPixels"] > 1000
    lines = sum(len(p["w"]) for p in _data(page)["edges"])   # one line per signal of each pair
    assert lines > 6 and seen["tips"] == 4 + lines
    assert int(seen["timelineShapes"]) > 0


def test_xss_strings_render_as_text_and_never_execute(chromium, hostile_report):
    page = hostile_report / "clusters" / "0.html"
    for keep_csp in (True, False):   # without the CSP too: escaping alone must hold
        seen = probe(chromium, page, keep_csp=keep_csp)
        assert seen["alerts"] == 0, keep_csp
        assert seen["injected"] == 0 and seen["injectedInTips"] == 0, keep_csp
        assert seen["violations"] == [] and seen["errors"] == [], keep_csp
        assert SCRIPT_XSS in seen["tipText"] and IMG_XSS in seen["tipText"]


def test_account_level_page_draws_one_node_per_account(chromium, hostile_report):
    seen = probe(chromium, hostile_report / "clusters" / "2.html")
    assert seen["errors"] == [] and seen["graphReady"] == "10" and seen["drawn"] == 10


def test_index_sorts_filters_searches_and_exports_without_errors(chromium, hostile_report):
    import pandas as pd

    clusters = pd.read_parquet(hostile_report.parent / "clusters.parquet").sort_values("score")
    for keep_csp in (True, False):
        seen = probe(chromium, hostile_report / "index.html", keep_csp=keep_csp, search=SCRIPT_XSS)
        assert seen["errors"] == [] and seen["violations"] == [] and seen["alerts"] == 0
        assert seen["injected"] == 0
        assert seen["indexReady"] == "3" and seen["flaggedRows"] == 1
        assert seen["topByScoreDesc"] == str(clusters["cluster_id"].iloc[-1])
        assert seen["topByScoreAsc"] == str(clusters["cluster_id"].iloc[0])
        assert seen["reviewRows"] == 1 and seen["rowsAbove099"] == int((clusters["score"] >= 0.99).sum())
        assert seen["rowsOf5Accounts"] == int((clusters["n_accounts"] >= 5).sum())
        # a key id typed in the search box finds its cluster through the members lookup
        assert seen["searchRows"] == 1 and seen["searchFound"].endswith("is in cluster 0")
        assert SCRIPT_XSS in seen["searchFound"]
        # CSV of the rows shown: the searched cluster, then all three; markup stays text
        lines = seen["csv"].strip().split("\r\n")
        assert lines[0].startswith("cluster,score,verdict") and len(lines) == 2 and lines[1].startswith("0,")
        assert len(seen["csvAll"].strip().split("\r\n")) == 1 + 3


def test_run_info_page_shows_hostile_run_json_as_text(chromium, hostile_report):
    from keyfarm.report.runinfo import write_run_info

    page = write_run_info(hostile_report.parent)
    for keep_csp in (True, False):
        seen = probe(chromium, page, keep_csp=keep_csp)
        assert seen["errors"] == [] and seen["violations"] == [] and seen["alerts"] == 0, keep_csp
        assert seen["injected"] == 0, keep_csp


@pytest.mark.slow
def test_a_1500_node_cluster_draws_within_the_page_load(chromium, tmp_path):
    out = hostile_out_dir(tmp_path / "out", big_cluster_keys=1500, big_cluster_links=3)
    write_report(out, max_nodes=1500)
    seen = probe(chromium, out / "report" / "clusters" / "2.html")
    assert seen["errors"] == [] and seen["graphReady"] == "500" and seen["drawn"] == 500   # 3 keys per account


def test_probe_catches_unescaped_markup(chromium, hostile_report):
    """The checks above mean something: raw markup in a page is seen executing (or blocked)."""
    page = hostile_report / "clusters" / "_broken.html"
    page.write_text((hostile_report / "clusters" / "1.html").read_text().replace("<main>", "<main>" + IMG_XSS, 1))
    try:
        bare = probe(chromium, page, keep_csp=False)
        guarded = probe(chromium, page, keep_csp=True)
    finally:
        page.unlink()
    assert bare["alerts"] == 1 and bare["injected"] == 1
    assert guarded["alerts"] == 0 and any("script-src" in v for v in guarded["violations"])


@pytest.mark.slow
def test_report_of_a_real_run_on_the_sample_dataset(chromium, tmp_path):
    import pandas as pd

    from keyfarm.pipeline import run_link

    sample = Path(__file__).resolve().parents[1] / "datasets" / "sample"
    out = tmp_path / "out"
    run_link(sample, out, quiet=True)          # writes the report too
    clusters = pd.read_parquet(out / "clusters.parquet")
    pages = sorted(int(p.stem) for p in (out / "report" / "clusters").glob("*.html"))
    assert pages == sorted(clusters["cluster_id"].tolist())
    largest = clusters.sort_values(["n_accounts", "cluster_id"]).iloc[-1]
    seen = probe(chromium, out / "report" / "clusters" / f"{largest['cluster_id']}.html")
    assert seen["errors"] == [] and seen["violations"] == [] and seen["drawn"] == largest["n_accounts"]
    assert int(seen["timelineShapes"]) > 0
    index = probe(chromium, out / "report" / "index.html")
    assert index["errors"] == [] and index["indexReady"] == str(len(clusters))
    assert index["flaggedRows"] == int(clusters["flagged"].sum())
