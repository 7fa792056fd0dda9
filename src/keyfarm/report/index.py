"""The report's front page: the run summary and a sortable, filterable table of clusters.

Stage: report. `index_page` returns `report/index.html`: what changed since the previous run
(changes.parquet, when the run had --previous) first, then inputs, counts, quarantine and timings
from run.json, one row per cluster (≥ 2 accounts) linking to its page, then the largest hubs
(all of them are in hubs.parquet).
"""
from __future__ import annotations

import pandas as pd

from keyfarm.report.escape import esc, fmt_float, fmt_int, plain
from keyfarm.report.page import asset, html_page

TOP_HUBS = 30
COLUMNS = (  # (column, header, kind)
    ("cluster_id", "cluster", "id"), ("score", "score", "f3"), ("flagged", "flagged", "bool"),
    ("n_accounts", "accounts", "int"), ("n_keys", "keys", "int"), ("limit_multiplier", "limit ×", "f2"),
    ("total_tokens", "tokens", "int"), ("signals", "signals", "str"), ("explanation", "explanation", "str"),
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
    timings = run.get("timings") if isinstance(run.get("timings"), dict) else {}
    return f"""<div class="grid" style="grid-template-columns: repeat(auto-fit, minmax(260px, 1fr));">
<section><h2>Counts</h2>{_kv_table((k, fmt_int(v)) for k, v in counts.items())}</section>
<section><h2>Input rows</h2>{'<table><tr><th>table</th><th class=num>read</th><th class=num>valid</th></tr>'
                             + rows_table + '</table>' if rows_table else '<p class="muted">none recorded</p>'}</section>
<section><h2>Quarantined rows</h2>{'<table><tr><th>table</th><th>reason</th><th class=num>rows</th></tr>'
                                   + quarantine + '</table>' if quarantine else '<p class="muted">none</p>'}</section>
<section><h2>Timings (s)</h2>{_kv_table((k, fmt_float(v, 2)) for k, v in timings.items())}</section>
</div>"""


def _hubs(run: dict) -> str:
    """The largest hub tokens (below the clusters: an analyst comes for the clusters first)."""
    hubs = run.get("hubs") if isinstance(run.get("hubs"), list) else []
    hub_rows = "".join(f'<tr><td class="mono">{esc(h.get("token"))}</td><td>{esc(h.get("signal"))}</td>'
                       f'<td class=num>{fmt_int(h.get("n_accounts"))}</td><td class=num>{fmt_int(h.get("n_keys"))}</td></tr>'
                       for h in hubs[:TOP_HUBS] if isinstance(h, dict))
    n_hubs = run.get("n_hubs") if isinstance(run.get("n_hubs"), dict) else {}
    return f"""<h2>Hub tokens (shared too widely to count as evidence; not projected)</h2>
<p class="muted">Per signal: {esc(", ".join(f"{k} {v}" for k, v in sorted(n_hubs.items()))) or "none"}</p>
{'<div class="scroll"><table><tr><th>token</th><th>signal</th><th class=num>accounts</th><th class=num>keys</th></tr>'
 + hub_rows + '</table></div>' if hub_rows else ''}"""


def _cell(value, kind: str) -> str:
    value = plain(value)
    if kind == "id":
        return (f'<td class=num data-sort="{esc(value)}"><a href="clusters/{esc(value)}.html">{esc(value)}</a></td>')
    if kind == "bool":
        return f'<td data-sort="{1 if value else 0}">{"flagged" if value else ""}</td>'
    if kind == "int":
        return f'<td class=num data-sort="{esc(value)}">{fmt_int(value)}</td>'
    if kind.startswith("f"):
        return f'<td class=num data-sort="{esc(value)}">{fmt_float(value, int(kind[1:]))}</td>'
    return f"<td>{esc(value)}</td>"


def _clusters_table(clusters: pd.DataFrame) -> str:
    ordered = clusters.sort_values(["score", "cluster_id"], ascending=[False, True], kind="stable", na_position="last")
    head = "".join(f'<th class="{"num" if kind not in ("str", "bool") else ""}">{esc(h)}</th>' for _, h, kind in COLUMNS)
    rows = []
    for row in ordered.to_dict("records"):
        cls = ' class="flagged"' if plain(row.get("flagged")) else ""
        rows.append(f"<tr{cls}>" + "".join(_cell(row.get(c), kind) for c, _, kind in COLUMNS) + "</tr>")
    return (f'<table id="clusters" class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


CHANGE_ORDER = {"new": 0, "grown": 1, "merged": 2, "split": 3, "shrunk": 4, "disappeared": 5}


def _changes(changes: pd.DataFrame | None, run: dict) -> str:
    """Changes since the previous run: returning farms and flagged clusters first."""
    if changes is None:
        return ""
    if not len(changes):
        return f"<h2>Changes since run {esc(run.get('previous_run_id'))}</h2><p class=\"muted\">none</p>"
    frame = changes.assign(_o=changes["status"].map(CHANGE_ORDER).fillna(9),
                           _f=~(changes["verdict_after"].astype(object) == "farm"),
                           _r=~changes["returning"].astype(bool))
    frame = frame.sort_values(["_r", "_f", "_o", "cluster_id"], kind="stable")
    rows = []
    for r in frame.to_dict("records"):
        cid = plain(r["cluster_id"])
        link = esc(cid) if r["status"] == "disappeared" else f'<a href="clusters/{esc(cid)}.html">{esc(cid)}</a>'
        rows.append(f"<tr><td class=num>{link}</td><td>{esc(r['status'])}</td>"
                    f"<td class=num>{fmt_int(r['n_accounts_before'])} → {fmt_int(r['n_accounts_after'])}</td>"
                    f"<td class=num>{fmt_int(r['n_keys_before'])} → {fmt_int(r['n_keys_after'])}</td>"
                    f"<td>{esc(plain(r['previous_cluster_ids']))}</td><td>{'returning' if r['returning'] else ''}</td>"
                    f"<td>{esc(plain(r['verdict_before']))} → {esc(plain(r['verdict_after']))}</td></tr>")
    counts = ", ".join(f"{esc(k)} {v}" for k, v in changes["status"].value_counts().sort_index().items())
    return (f"<h2>Changes since run <span class=\"mono\">{esc(run.get('previous_run_id'))}</span> ({counts})</h2>"
            '<div class="scroll"><table><tr><th class=num>cluster</th><th>status</th><th class=num>accounts</th>'
            '<th class=num>keys</th><th>from</th><th>returning</th><th>verdict</th></tr>'
            + "".join(rows) + "</table></div>")


def index_page(run: dict, clusters: pd.DataFrame, quarantined: dict, changes: pd.DataFrame | None = None) -> str:
    """HTML of report/index.html (`changes`: changes.parquet of a run with --previous)."""
    n_flagged = int(clusters["flagged"].sum()) if len(clusters) else 0
    body = f"""<header><h1>keyfarm report</h1>
<div class="sub">run <span class="mono">{esc(run.get("run_id"))}</span> · keyfarm {esc(run.get("version"))} ·
seed {esc(run.get("seed"))} · input <span class="mono">{esc(run.get("input"))}</span></div></header>
<main>
{_changes(changes, run)}
{_summary(run, quarantined)}
<h2>Clusters of two or more accounts ({fmt_int(len(clusters))}, {fmt_int(n_flagged)} flagged)</h2>
<div class="controls"><input type="search" id="filter" placeholder="filter: any text in the row">
<label><input type="checkbox" id="flagged-only"> flagged only</label>
<span id="shown" class="muted"></span><span class="muted">Click a column header to sort.</span></div>
{_clusters_table(clusters)}
{_hubs(run)}
</main>"""
    return html_page("keyfarm report", body, scripts=[asset("index.js")])
