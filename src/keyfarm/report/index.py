"""The report's front page: what changed, a score histogram, a filterable table of clusters, hubs.

Stage: report. `index_page` returns `report/index.html`: the changes since the previous run
first (changes.parquet, when the run had `--previous`), a histogram of scores by verdict (inline
SVG), one row per cluster (≥ 2 accounts) with filters by verdict, score, signal and size, a search
by key or account id (through `assets/members.js`, written by `members_lookup_js`), CSV export of
the rows shown, the hubs with their verdicts (and the text of prompt hubs), then run.json's summary (its
timings are in OUT_DIR/run-info.html: report.runinfo).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from keyfarm.report.escape import esc, fmt_float, fmt_int, plain, script_json
from keyfarm.report.page import html_page

MAX_HUBS = 500
MAX_CHANGES = 2000
HIST_BINS = 20
VERDICTS = ("farm", "review", "clear")
COLUMNS = (  # (column, header, kind)
    ("cluster_id", "cluster", "id"), ("score", "score", "f3"), ("verdict", "verdict", "verdict"),
    ("label", "label", "str"), ("n_accounts", "accounts", "int"), ("n_keys", "keys", "int"),
    ("limit_multiplier", "limit ×", "f2"), ("total_tokens", "tokens", "int"), ("signals", "signals", "str"),
    ("explanation", "explanation", "str"),
)


def _kv_table(pairs) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td class=num>{v}</td></tr>" for k, v in pairs)
    return f"<table>{rows}</table>" if rows else '<p class="muted">none recorded</p>'


def _summary(run: dict, quarantined: dict) -> str:
    counts = run.get("counts") if isinstance(run.get("counts"), dict) else {}
    input_rows = run.get("input_rows") if isinstance(run.get("input_rows"), dict) else {}
    valid_rows = run.get("valid_rows") if isinstance(run.get("valid_rows"), dict) else {}
    tables = sorted(set(input_rows) | set(valid_rows))
    rows_table = "".join(f'<tr><th>{esc(t)}</th><td class=num>{fmt_int(input_rows.get(t))}</td>'
                         f'<td class=num>{fmt_int(valid_rows.get(t))}</td></tr>' for t in tables)
    quarantine = "".join(f'<tr><td>{esc(t)}</td><td>{esc(reason)}</td><td class=num>{fmt_int(n)}</td></tr>'
                         for t, reasons in sorted(quarantined.items()) if isinstance(reasons, dict)
                         for reason, n in sorted(reasons.items()))
    return f"""<div class="grid" style="grid-template-columns: repeat(auto-fit, minmax(260px, 1fr));">
<section><h2>Counts</h2>{_kv_table((k, fmt_int(v)) for k, v in counts.items())}</section>
<section><h2>Input rows</h2>{'<table><tr><th>table</th><th class=num>read</th><th class=num>valid</th></tr>'
                             + rows_table + '</table>' if rows_table else '<p class="muted">none recorded</p>'}</section>
<section><h2>Quarantined rows</h2>{'<table><tr><th>table</th><th>reason</th><th class=num>rows</th></tr>'
                                   + quarantine + '</table>' if quarantine else '<p class="muted">none</p>'}</section>
<section><h2>Timings</h2><p class="muted">Seconds and memory of each stage change from run to run, so this
report (the same bytes for the same input and seed) leaves them to <a href="../run-info.html">run-info.html</a>,
beside run.json.</p></section>
</div>"""


def _hubs(hubs: pd.DataFrame | None, run: dict) -> str:
    """Hub tokens, most accounts first, with the verdict of their group and a prompt hub's text."""
    if hubs is None:   # older runs: the largest hubs listed in run.json
        hubs = pd.DataFrame([h for h in run.get("hubs", []) if isinstance(h, dict)]) \
            if isinstance(run.get("hubs"), list) else pd.DataFrame()
    if not len(hubs):
        return '<p class="muted">No hub tokens.</p>'
    for column in ("token", "signal", "n_accounts", "n_keys", "score", "verdict", "example"):
        if column not in hubs:
            hubs = hubs.assign(**{column: None})
    counts = hubs["signal"].astype(str).value_counts().sort_index()
    hubs = hubs.assign(_n=pd.to_numeric(hubs["n_accounts"], errors="coerce"), _t=hubs["token"].astype(str)) \
        .sort_values(["_n", "_t"], ascending=[False, True], kind="stable")
    shown = hubs.head(MAX_HUBS)
    rows = "".join(f'<tr><td class="mono">{esc(h["token"])}</td><td>{esc(h["signal"])}</td>'
                   f'<td class=num>{fmt_int(h["n_accounts"])}</td><td class=num>{fmt_int(h["n_keys"])}</td>'
                   f'<td>{esc(h["verdict"])}</td><td class=num>{fmt_float(h["score"], 3)}</td>'
                   f'<td>{"<blockquote>" + esc(h["example"]) + "</blockquote>" if isinstance(h["example"], str) else ""}</td></tr>'
                   for h in shown.to_dict("records"))
    more = f'<p class="muted">The {MAX_HUBS:,} largest of {len(hubs):,}; all are in hubs.parquet.</p>' \
        if len(hubs) > MAX_HUBS else ""
    return (f'<p class="muted">Values shared too widely to count as pairwise evidence; each hub\'s group of accounts '
            f'is judged as a group. Per signal: {esc(", ".join(f"{k} {v}" for k, v in counts.items()))}</p>'
            '<div class="scroll"><table><tr><th>token</th><th>signal</th><th class=num>accounts</th><th class=num>keys'
            '</th><th>verdict of its group</th><th class=num>score</th><th>prompt text</th></tr>'
            f"{rows}</table></div>{more}")


def histogram_svg(clusters: pd.DataFrame, bins: int = HIST_BINS) -> str:
    """Clusters per score bin, stacked by verdict; bar heights on a log scale (most clusters are clear)."""
    width, height, left, bottom = 620, 170, 40, 24
    score = pd.to_numeric(clusters["score"], errors="coerce").to_numpy(np.float64)
    verdict = clusters["verdict"].astype(str).to_numpy()
    ok = np.isfinite(score)
    which = np.clip((score[ok] * bins).astype(np.int64), 0, bins - 1)
    counts = {v: np.bincount(which[verdict[ok] == v], minlength=bins) for v in VERDICTS}
    total = sum(counts.values())
    top = np.log1p(total.max()) if total.size and total.max() > 0 else 1.0
    bw = (width - left - 10) / bins
    plot_h = height - bottom - 10
    out = [f'<svg class="histogram" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           '><title>clusters per score bin, by verdict</title>']
    for b in range(bins):
        n = int(total[b])
        if not n:
            continue
        full = plot_h * np.log1p(n) / top
        y = 10 + plot_h
        for v in VERDICTS:   # each verdict's share of the bar's (log) height
            k = int(counts[v][b])
            if not k:
                continue
            h = full * k / n
            y -= h
            out.append(f'<rect x="{left + b * bw + 1:.1f}" y="{y:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" class="{v}">'
                       f"<title>score {b / bins:.2f}–{(b + 1) / bins:.2f}: {k:,} {v}</title></rect>")
    for t in (0.0, 0.2, 0.5, 1.0):
        x = left + t * bins * bw
        out.append(f'<line x1="{x:.1f}" y1="{10 + plot_h}" x2="{x:.1f}" y2="{14 + plot_h}" stroke="#6b7280"/>'
                   f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" class="muted">{t:g}</text>')
    legend = "".join(f'<rect x="{left + 8 + i * 90}" y="4" width="10" height="10" class="{v}"/>'
                     f'<text x="{left + 22 + i * 90}" y="13">{v} {int(counts[v].sum()):,}</text>'
                     for i, v in enumerate(VERDICTS))
    out.append(legend + f'<text x="{left - 4}" y="{14 + plot_h}" text-anchor="end" class="muted">0</text>'
               f'<text x="{left - 4}" y="18" text-anchor="end" class="muted">{int(total.max()) if total.size else 0:,}</text>'
               "</svg>")
    return "".join(out)


def _cluster_labels(labels: pd.DataFrame | None, clusters: pd.DataFrame) -> dict:
    """cluster_id → the latest label of the cluster itself."""
    if labels is None or not len(labels):
        return {}
    from keyfarm.labels import latest_labels

    own, _ = latest_labels(labels)
    return {int(c): str(lab) for c, lab in zip(own["cluster_id"], own["label"])}


def _cell(value, kind: str) -> str:
    value = plain(value)
    if kind == "id":
        return f'<td class=num data-sort="{esc(value)}"><a href="clusters/{esc(value)}.html">{esc(value)}</a></td>'
    if kind == "verdict":
        badge = {"farm": "flagged"}.get(value, value)   # the stylesheet's badge classes
        return f'<td data-sort="{esc(value)}"><span class="badge {esc(badge)}">{esc(value)}</span></td>'
    if kind == "int":
        return f'<td class=num data-sort="{esc(value)}">{fmt_int(value)}</td>'
    if kind.startswith("f"):
        return f'<td class=num data-sort="{esc(value)}">{fmt_float(value, int(kind[1:]))}</td>'
    return f"<td>{esc(value)}</td>"


def _clusters_table(clusters: pd.DataFrame, labels: dict) -> str:
    ordered = clusters.sort_values(["score", "cluster_id"], ascending=[False, True], kind="stable", na_position="last")
    head = "".join(f'<th class="{"num" if kind not in ("str", "verdict") else ""}">{esc(h)}</th>' for _, h, kind in COLUMNS)
    rows = []
    for row in ordered.to_dict("records"):
        row["label"] = labels.get(int(row["cluster_id"]), "")
        verdict = plain(row.get("verdict"))
        signals = plain(row.get("signals"))
        cls = ' class="flagged"' if verdict == "farm" else ""
        rows.append(f'<tr{cls} data-verdict="{esc(verdict)}" data-score="{esc(row.get("score"))}" '
                    f'data-accounts="{esc(row.get("n_accounts"))}" data-signals="{esc(signals)}">'
                    + "".join(_cell(row.get(c), kind) for c, _, kind in COLUMNS) + "</tr>")
    return (f'<table id="clusters" class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


CHANGE_ORDER = {"new": 0, "grown": 1, "merged": 2, "split": 3, "shrunk": 4, "disappeared": 5}
CHANGE_COLUMNS = {"cluster_id", "status", "n_accounts_before", "n_accounts_after", "n_keys_before", "n_keys_after",
                  "previous_cluster_ids", "returning", "verdict_before", "verdict_after"}


def _changes_as_they_come(changes: pd.DataFrame, run: dict) -> str:
    """A changes table of a layout this version does not know: every column, escaped."""
    head = "".join(f"<th>{esc(c)}</th>" for c in changes.columns)
    rows = "".join("<tr>" + "".join(f"<td>{esc(plain(v))}</td>" for v in r.values()) + "</tr>"
                   for r in changes.head(MAX_CHANGES).to_dict("records"))
    return (f'<h2 id="changes">Changes since run <span class="mono">{esc(run.get("previous_run_id"))}</span> '
            f'({fmt_int(len(changes))})</h2><div class="scroll"><table><tr>{head}</tr>{rows}</table></div>')


def _changes(changes: pd.DataFrame | None, run: dict) -> str:
    """Changes since the previous run: returning farms and flagged clusters first."""
    if changes is None:
        return ""
    if not len(changes):
        return f"<h2 id=\"changes\">Changes since run {esc(run.get('previous_run_id'))}</h2><p class=\"muted\">none</p>"
    if not CHANGE_COLUMNS <= set(changes.columns):   # another layout (a newer keyfarm): as it comes
        return _changes_as_they_come(changes, run)
    frame = changes.assign(_o=changes["status"].map(CHANGE_ORDER).fillna(9),
                           _f=~(changes["verdict_after"].astype(object) == "farm"),
                           _r=~changes["returning"].astype(bool))
    frame = frame.sort_values(["_r", "_f", "_o", "cluster_id"], kind="stable")
    rows = []
    for r in frame.head(MAX_CHANGES).to_dict("records"):
        cid = plain(r["cluster_id"])
        link = esc(cid) if r["status"] == "disappeared" else f'<a href="clusters/{esc(cid)}.html">{esc(cid)}</a>'
        rows.append(f"<tr><td class=num>{link}</td><td>{esc(r['status'])}</td>"
                    f"<td class=num>{fmt_int(r['n_accounts_before'])} → {fmt_int(r['n_accounts_after'])}</td>"
                    f"<td class=num>{fmt_int(r['n_keys_before'])} → {fmt_int(r['n_keys_after'])}</td>"
                    f"<td>{esc(plain(r['previous_cluster_ids']))}</td><td>{'returning' if r['returning'] else ''}</td>"
                    f"<td>{esc(plain(r['verdict_before']))} → {esc(plain(r['verdict_after']))}</td></tr>")
    counts = ", ".join(f"{esc(k)} {v}" for k, v in changes["status"].value_counts().sort_index().items())
    return (f"<h2 id=\"changes\">Changes since run <span class=\"mono\">{esc(run.get('previous_run_id'))}</span> ({counts})</h2>"
            '<div class="scroll"><table><tr><th class=num>cluster</th><th>status</th><th class=num>accounts</th>'
            '<th class=num>keys</th><th>from</th><th>returning</th><th>verdict</th></tr>'
            + "".join(rows) + "</table></div>"
            + (f'<p class="muted">First {MAX_CHANGES:,} of {len(frame):,}.</p>' if len(frame) > MAX_CHANGES else ""))


def _filters(clusters: pd.DataFrame) -> str:
    signals = sorted({s for v in clusters["signals"].dropna().astype(str) for s in v.split(",") if s})
    options = "".join(f'<option value="{esc(s)}">{esc(s)}</option>' for s in signals)
    return f"""<div class="controls">
<label>verdict <select id="f-verdict"><option value="">any</option><option>farm</option><option>review</option>
<option>clear</option></select></label>
<label>score from <input type="number" id="f-min" min="0" max="1" step="0.05" value="0"></label>
<label>to <input type="number" id="f-max" min="0" max="1" step="0.05" value="1"></label>
<label>signal <select id="f-signal"><option value="">any</option>{options}</select></label>
<label>accounts ≥ <input type="number" id="f-size" min="2" step="1" value="2"></label>
<label><input type="checkbox" id="flagged-only"> farm only</label>
<input type="search" id="filter" placeholder="text in the row, or a key / account id">
<button type="button" id="csv">CSV of the rows shown</button>
<span id="shown" class="muted"></span></div>
<div id="found" class="muted"></div>"""


def members_lookup_js(members: pd.DataFrame, clusters: pd.DataFrame) -> str:
    """`assets/members.js`: key id and account id → cluster_id, for the members of the report's
    clusters (a key in no cluster of 2+ accounts is not listed: the index says so). A script
    file rather than the index's own data, so the index stays small and loads at once."""
    ids = clusters["cluster_id"].to_numpy(np.int64)
    inside = members[members["cluster_id"].isin(ids)]
    keys = dict(zip(inside["key_id"].astype(str), inside["cluster_id"].astype(int)))
    accounts = dict(zip(inside["account_id"].astype(str), inside["cluster_id"].astype(int)))
    return ("// keyfarm report: key and account ids of the clusters of two or more accounts → cluster_id\n"
            f"window.kfMembers = {script_json({'keys': keys, 'accounts': accounts})};\n")


def index_page(run: dict, clusters: pd.DataFrame, quarantined: dict, *, hubs: pd.DataFrame | None = None,
               labels: pd.DataFrame | None = None, changes: pd.DataFrame | None = None,
               lookup: str | None = None, assets: str | None = None) -> str:
    """HTML of report/index.html; `lookup`: the relative URL of the members lookup script;
    `assets`: of the assets folder (None: the page inlines its stylesheet and script)."""
    counts = clusters["verdict"].astype(str).value_counts() if len(clusters) else pd.Series(dtype=int)
    n_labels = 0 if labels is None else len(labels)
    nav = ('<nav class="top">' + ('<a href="#changes">changes</a>' if changes is not None else "")
           + '<a href="#scores">scores</a><a href="#clusters-h">clusters</a><a href="#hubs">hubs</a>'
           '<a href="#run">run</a></nav>')
    body = f"""<header><h1>keyfarm report</h1>
<div class="sub">run <span class="mono">{esc(run.get("run_id"))}</span> · keyfarm {esc(run.get("version"))} ·
seed {esc(run.get("seed"))} · input <span class="mono">{esc(run.get("input"))}</span> ·
{fmt_int(n_labels)} analyst labels</div></header>
<main>
{nav}
{_changes(changes, run)}
<h2 id="scores">Scores by verdict</h2>{histogram_svg(clusters)}
<h2 id="clusters-h">Clusters of two or more accounts ({fmt_int(len(clusters))}: {fmt_int(counts.get("farm", 0))} farm,
{fmt_int(counts.get("review", 0))} review, {fmt_int(counts.get("clear", 0))} clear)</h2>
{_filters(clusters)}
<p class="muted">Click a column header to sort.</p>
{_clusters_table(clusters, _cluster_labels(labels, clusters))}
<h2 id="hubs">Hub tokens</h2>{_hubs(hubs, run)}
<h2 id="run">Run</h2>
{_summary(run, quarantined)}
</main>"""
    # the lookup is a file beside the page (allowed by the CSP), loaded before the index script
    return html_page("keyfarm report", body, scripts=["index.js"], sources=[lookup] if lookup else [],
                     assets=assets)
