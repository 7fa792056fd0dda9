"""The page of one cluster: the account graph with a details panel, why the verdict, when they
acted, and the evidence tables (links, prompts, labels, accounts, keys).

Stage: report. `cluster_page` returns the HTML of `report/clusters/<cluster_id>.html`; every data
string goes through `esc` (HTML) or `script_json` (the graph's data), see escape.py. Example
prompts are written once, in the page's prompts table; links refer to them by number.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from keyfarm.report.breakdown import breakdown_html
from keyfarm.report.escape import esc, fmt_float, fmt_int, plain, records
from keyfarm.report.graph import LINK_SIGNALS, SIGNAL_COLOURS, ClusterDrawing, account_nodes, cluster_drawing, pair_rows
from keyfarm.report.page import html_page
from keyfarm.report.timeline import timeline_svg

SIGNAL_MEANING = {"account": "keys of one account", "payment": "shared payment instrument",
                  "ip": "shared IP address or range", "device": "shared device / TLS fingerprint",
                  "prompt": "near-duplicate prompts", "timing": "same unusual time slots"}
FEATURES = (  # (column, label, format, meaning)
    ("score", "score", "f3", "0..1: how farm-like the scoring model finds the cluster"),
    ("verdict", "verdict", "str", "farm, review or clear"),
    ("n_accounts", "accounts", "int", "distinct accounts: limits apply per account"),
    ("n_keys", "keys", "int", ""),
    ("signals", "linking signals", "str", "signals that link keys of different accounts"),
    ("total_tokens", "total tokens", "int", ""),
    ("limit_multiplier", "limit multiplier", "x", "peak daily tokens of the cluster / median daily limit of its keys"),
    ("usage", "usage", "f2", "how close the keys run to their limits"),
    ("creation_spread_hours", "creation spread (h)", "f1", "how tightly in time the accounts were created"),
    ("synchrony", "synchrony", "f2", "activity of different accounts in the same time bins"),
    ("prompt_homogeneity", "prompt homogeneity", "f2", "share of near-duplicate prompts across accounts"),
    ("declared_org", "one declared org", "bool", "benign indicator"),
    ("institutional_domain", "institutional domain", "bool", "benign indicator"),
)
MAX_TABLE_ROWS = 2000
TOP_LINKS = 50
VERDICT_BADGE = {"farm": "flagged", "review": "review", "clear": "clear"}


def _value(value, kind: str) -> str:
    value = plain(value)
    if value is None:
        return ""
    if kind == "int":
        return fmt_int(value)
    if kind == "x":
        return fmt_float(value, 2) + "×"
    if kind.startswith("f"):
        return fmt_float(value, int(kind[1:]))
    if kind == "bool":
        return "yes" if value else "no"
    return esc(value)


def _link_text(cluster: dict, end: str) -> str:
    a, b = plain(cluster.get(f"{end}_key_a")), plain(cluster.get(f"{end}_key_b"))
    if a is None or b is None:
        return ""
    text = (f'<span class="mono">{esc(a)}</span> ↔ <span class="mono">{esc(b)}</span><br>'
            f'weight {fmt_float(cluster.get(f"{end}_weight"), 3)}, {esc(cluster.get(f"{end}_signal"))}')
    evidence = plain(cluster.get(f"{end}_evidence"))
    if evidence:
        text += f'<br><span class="mono">{esc(evidence)}</span>'
    return text


def _features(cluster: dict) -> str:
    rows = []
    for column, label, kind, meaning in FEATURES:
        shown = _value(cluster.get(column), kind)
        if shown:
            rows.append(f'<tr><th title="{esc(meaning)}">{esc(label)}</th><td>{shown}</td></tr>')
    for end in ("strongest", "weakest"):
        text = _link_text(cluster, end)
        if text:
            rows.append(f"<tr><th>{end} link</th><td>{text}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _legend(drawing: ClusterDrawing) -> str:
    counts = {s: sum(1 for v in drawing.pairs["w"].get(s, ()) if v > 0) for s in LINK_SIGNALS}
    signals = "".join(
        f'<li data-signal="{s}"><span class="sw" style="background:{SIGNAL_COLOURS[s]}"></span>'
        f'{s}: {esc(SIGNAL_MEANING[s])} ({fmt_int(counts[s])})</li>' for s in LINK_SIGNALS)
    return (f'<div class="legend"><h2>Signals</h2><div class="muted">One line per signal a pair of accounts '
            f'shares (click to hide or show; the pair\'s other signals stay):</div><ul>{signals}</ul>'
            '<div class="muted">Nodes: one per account, sized by tokens drawn; click one for its keys. '
            "Line width: the signal's weight.</div></div>")


def _prompt_ref(index) -> str:
    return "" if index is None else f'<a href="#prompt-{int(index)}">#{int(index) + 1}</a>'


def _links_table(drawing: ClusterDrawing, account_of_node: list[str]) -> str:
    if not drawing.n_pairs:
        return '<p class="muted">No links.</p>'
    pairs = drawing.pairs
    strongest = np.lexsort((pairs["b"], pairs["a"], -np.array(pairs["weight"], np.float64)))[:TOP_LINKS]
    top = pair_rows(pairs, strongest.tolist())
    head = ("<tr><th>account a</th><th>account b</th><th class=num>weight</th><th>signals (weight)</th>"
            + "".join(f"<th>{esc(s)}</th>" for s in LINK_SIGNALS) + "<th>example prompts</th></tr>")
    body = []
    for p in top:
        signals = ", ".join(f"{s} {p['w'][s]:.2f}" for s in LINK_SIGNALS if s in p["w"])
        tokens = "".join(f'<td class="mono">{esc(drawing.strings[p["ev"][s]]) if s in p["ev"] else ""}</td>'
                         for s in LINK_SIGNALS)
        prompts = " ".join(_prompt_ref(i) for i in p.get("p", []) if i is not None)
        body.append(f'<tr><td class="mono">{esc(account_of_node[p["a"]])}</td>'
                    f'<td class="mono">{esc(account_of_node[p["b"]])}</td><td class="num">{p["weight"]:.3f}</td>'
                    f"<td>{esc(signals)}</td>{tokens}<td>{prompts}</td></tr>")
    more = (f'<p class="muted">The {TOP_LINKS} strongest of {drawing.n_pairs:,} drawn account pairs.</p>'
            if drawing.n_pairs > TOP_LINKS else "")
    return f'<div class="scroll"><table>{head}{"".join(body)}</table></div>{more}'


def _prompts_table(drawing: ClusterDrawing) -> str:
    if not drawing.prompts:
        return '<p class="muted">No prompt examples on the drawn links.</p>'
    rows = "".join(f'<tr id="prompt-{i}"><th class=num>#{i + 1}</th><td><blockquote>{esc(p)}</blockquote></td></tr>'
                   for i, p in enumerate(drawing.prompts))
    return f'<div class="scroll"><table id="prompts">{rows}</table></div>'


def _accounts_table(nodes: list[dict], account_labels: dict) -> str:
    rows = "".join(f'<tr><td class="mono">{esc(r["account_id"])}</td><td class="num">{fmt_int(r["n_keys"])}</td>'
                   f'<td class="num">{fmt_int(r["total_tokens"])}</td><td class="mono">{esc(r["org_id"])}</td>'
                   f'<td class="mono">{esc(r["email_domain"])}</td><td>{esc(r["created_at"])}</td>'
                   f'<td>{esc(account_labels.get(r["account_id"], ""))}</td></tr>'
                   for r in nodes[:MAX_TABLE_ROWS])
    return ('<div class="scroll"><table><tr><th>account</th><th class=num>keys</th><th class=num>total tokens</th>'
            '<th>org</th><th>email domain</th><th>first key created</th><th>label</th></tr>'
            f"{rows}</table></div>{_first_of(nodes, 'accounts')}")


KEY_COLUMNS = ["key_id", "account_id", "created_at", "daily_token_limit", "peak_daily_tokens", "total_tokens",
               "n_requests"]


def _first_of(rows: list, what: str) -> str:
    """The note under a table cut to MAX_TABLE_ROWS rows (nothing when it is whole)."""
    return f'<p class="muted">First {MAX_TABLE_ROWS:,} of {len(rows):,} {what}.</p>' if len(rows) > MAX_TABLE_ROWS else ""


def _keys_table(rows: list[dict]) -> str:
    cells = "".join(
        f'<tr><td class="mono">{esc(r["key_id"])}</td><td class="mono">{esc(r["account_id"])}</td>'
        f'<td>{esc(r["created_at"])}</td><td class="num">{fmt_int(r["daily_token_limit"])}</td>'
        f'<td class="num">{fmt_int(r["peak_daily_tokens"])}</td><td class="num">{fmt_int(r["total_tokens"])}</td>'
        f'<td class="num">{fmt_int(r["n_requests"])}</td></tr>'
        for r in rows[:MAX_TABLE_ROWS])
    return ('<div class="scroll"><table><tr><th>key</th><th>account</th><th>created</th><th class=num>daily limit</th>'
            '<th class=num>peak day tokens</th><th class=num>total tokens</th><th class=num>requests</th></tr>'
            f"{cells}</table></div>{_first_of(rows, 'keys')}")


def _labels_section(cluster_id, labels: pd.DataFrame | None) -> str:
    hint = (f'<p class="muted">Record a verdict: <code>keyfarm label OUT_DIR --cluster {esc(cluster_id)} farm|benign '
            '[--note TEXT]</code> (or <code>--account ID</code>); labels feed <code>keyfarm calibrate</code>.</p>')
    if labels is None or not len(labels):
        return '<p class="muted">No analyst labels yet.</p>' + hint
    rows = "".join(f'<tr><td>{esc(r.get("ts"))}</td><td>{"cluster" if plain(r.get("cluster_id")) is not None else "account"}'
                   f'</td><td class="mono">{esc(r.get("account_id"))}</td><td><span class="badge lab-{esc(r.get("label"))}">'
                   f'{esc(r.get("label"))}</span></td><td>{esc(r.get("source"))}</td><td>{esc(r.get("note"))}</td></tr>'
                   for r in labels.to_dict("records"))
    return ('<table><tr><th>when</th><th>of</th><th>account</th><th>label</th><th>source</th><th>note</th></tr>'
            f"{rows}</table>{hint}")


def _label_badge(cluster_label: str | None) -> str:
    return "" if not cluster_label else f' <span class="badge lab-{esc(cluster_label)}">labelled {esc(cluster_label)}</span>'


def cluster_page(cluster: dict, members: pd.DataFrame, edges: pd.DataFrame, *, run: dict | None = None,
                 max_nodes: int = 500, vis: str = "../assets/vis-network.min.js",
                 index_href: str | None = "../index.html", activity: pd.DataFrame | None = None,
                 slots: pd.DataFrame | None = None, labels: pd.DataFrame | None = None,
                 nodes: list[dict] | None = None, pairs: dict[str, list] | None = None,
                 keys_of: dict | None = None, key_rows: list[dict] | None = None,
                 scoring=None, contrib: dict | None = None, timeline: str | None = None) -> str:
    """HTML of one cluster's page from its clusters row, members and intra-cluster edges; its
    rows of activity.parquet and slots.parquet (timeline) and of labels.parquet (this cluster's
    and its accounts' labels, oldest first), each optional.

    `vis="inline"` embeds vis-network, giving a self-contained page (for notebooks and e-mail).
    `nodes`, `pairs`, `keys_of`, `key_rows`: the cluster's records of graph.account_nodes, its
    graph.account_pairs as columns (graph.pair_columns), graph.keys_by_account and its members'
    records (KEY_COLUMNS, by key_id), when computed for
    all clusters at once (write_report does); likewise `scoring` (the run's ScoringConfig) and
    `contrib` (the cluster's breakdown.all_contributions entry), and `timeline` (its SVG from
    timeline.Timelines, which replaces `activity` and `slots`).
    """
    run = run or {}
    if nodes is None:
        nodes = records(account_nodes(members).drop(columns=["cluster_id"], errors="ignore"))
    if key_rows is None:
        key_rows = records(members.sort_values("key_id", kind="stable")[KEY_COLUMNS])
    drawing = cluster_drawing(members, edges, max_nodes=max_nodes, nodes=nodes, pairs=pairs, keys_of=keys_of)
    cid = plain(cluster.get("cluster_id"))
    verdict = plain(cluster.get("verdict")) or ("farm" if plain(cluster.get("flagged")) else "clear")
    badge = f'<span class="badge {VERDICT_BADGE.get(verdict, "clear")}">{esc(verdict)}</span>'
    labels = labels if labels is not None else None
    cluster_label, account_labels = None, {}
    if labels is not None and len(labels):
        ordered = labels.sort_values("ts", kind="stable", na_position="first")
        own = ordered[ordered["cluster_id"].notna()]
        cluster_label = plain(own["label"].iloc[-1]) if len(own) else None
        acc = ordered[ordered["account_id"].notna()].drop_duplicates("account_id", keep="last")
        account_labels = dict(zip(acc["account_id"].astype(str), acc["label"].astype(str)))
    back = f'<a href="{esc(index_href)}">← all clusters</a> · ' if index_href else ""
    notes = "".join(f'<div class="note">{esc(n)}</div>' for n in drawing.notes)
    drawn = (f"{len(drawing.nodes):,} accounts and {drawing.n_pairs:,} linked pairs drawn "
             f"({drawing.n_nodes_total:,} accounts, {fmt_int(cluster.get('n_keys'))} keys, "
             f"{drawing.n_edges_total:,} linked pairs in the cluster)")
    body = f"""<header><h1>Cluster {esc(cid)} {badge}{_label_badge(cluster_label)} <span class="sub">score {fmt_float(cluster.get("score"), 3)}</span></h1>
<div class="sub">{back}run <span class="mono">{esc(run.get("run_id"))}</span> · {drawn} ·
<a href="#why">why</a> · <a href="#timeline">when</a> · <a href="#links">links</a> · <a href="#prompts-h">prompts</a> ·
<a href="#labels">labels</a> · <a href="#accounts">accounts</a> · <a href="#keys">keys</a></div></header>
<main>
<p class="explanation">{esc(cluster.get("explanation"))}</p>
{notes}
<div class="controls"><label>Find an account or key: <input type="search" id="find" placeholder="account or key id"></label>
<span class="muted">Hover a node or link for details; click to show them in the panel; drag to move.</span></div>
<div class="grid"><div id="graph"></div>
<aside><div id="selection"><p class="muted">Click an account or a link: its details appear here.</p></div>
{_legend(drawing)}<h2>Features</h2>{_features(cluster)}</aside></div>
<h2 id="why">Why {esc(verdict)}: the score, feature by feature</h2>{breakdown_html(cluster, run, config=scoring, contrib=contrib)}
<h2 id="timeline">Activity over time</h2>
<div class="controls"><label><input type="radio" name="tl" value="tokens" checked> tokens</label>
<label><input type="radio" name="tl" value="requests"> requests</label></div>
{timeline if timeline is not None else timeline_svg(activity, slots, {n["account_id"]: n["created_at"] for n in nodes})}
<h2 id="links">Strongest links and their evidence</h2>{_links_table(drawing, [n["info"]["account_id"] for n in drawing.nodes])}
<h2 id="prompts-h">Example prompts</h2>{_prompts_table(drawing)}
<h2 id="labels">Analyst labels</h2>{_labels_section(cid, labels)}
<h2 id="accounts">Accounts</h2>{_accounts_table(nodes, account_labels)}
<h2 id="keys">Keys</h2>{_keys_table(key_rows)}
</main>"""
    data = {"level": "account", "nodes": drawing.nodes, "pairs": drawing.pairs, "strings": drawing.strings,
            "colours": SIGNAL_COLOURS, "labels": account_labels, "options": drawing.options}
    assets = None if vis == "inline" else "../assets/"
    return html_page(f"keyfarm cluster {cid}", body, scripts=["cluster.js"], data=data, vis=vis, assets=assets,
                     data_plain=True)
