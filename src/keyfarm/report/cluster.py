"""The page of one cluster: the pyvis graph, the cluster's features, a legend and evidence tables.

Stage: report. `cluster_page` returns the HTML of `report/clusters/<cluster_id>.html`; every data
string goes through `esc` (HTML) or `script_json` (the graph's data), see escape.py.
"""
from __future__ import annotations

import pandas as pd

from keyfarm.report.escape import esc, fmt_float, fmt_int, plain
from keyfarm.report.graph import SIGNAL_COLOURS, cluster_drawing, strongest_signal
from keyfarm.report.outputs import SIGNALS
from keyfarm.report.page import asset, html_page

SIGNAL_MEANING = {"account": "keys of one account", "payment": "shared payment instrument",
                  "ip": "shared IP address or range", "device": "shared device / TLS fingerprint",
                  "prompt": "near-duplicate prompts", "timing": "same unusual time slots"}
FEATURES = (  # (column, label, format, meaning)
    ("score", "score", "f3", "0..1: how farm-like the scoring model finds the cluster"),
    ("n_accounts", "accounts", "int", "distinct accounts: limits apply per account"),
    ("n_keys", "keys", "int", ""),
    ("signals", "linking signals", "str", "signals that link keys of different accounts"),
    ("n_signals", "independent signals", "int", ""),
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


def _legend(drawing) -> str:
    signals = "".join(
        f'<li data-signal="{s}"><span class="sw" style="background:{SIGNAL_COLOURS[s]}"></span>'
        f'{s}: {esc(SIGNAL_MEANING[s])}</li>' for s in SIGNALS)
    shown = drawing.accounts[:12]
    accounts = "".join(f'<li><span class="dot" style="background:{colour}"></span>'
                       f'<span class="mono">{esc(acc)}</span></li>' for acc, colour in shown)
    if len(drawing.accounts) > len(shown):
        accounts += f'<li class="muted">… {len(drawing.accounts) - len(shown):,} more accounts (colours repeat)</li>'
    unit = "key" if drawing.level == "key" else "account"
    return (f'<div class="legend"><h2>Legend</h2><div class="muted">Links by strongest signal '
            f'(click to hide or show):</div><ul>{signals}</ul>'
            f'<div class="muted">Nodes: one per {unit}, coloured by account, sized by total tokens; '
            f'link width: link weight.</div><ul>{accounts}</ul></div>')


def _links_table(edges: pd.DataFrame) -> str:
    if len(edges) == 0:
        return '<p class="muted">No links.</p>'
    top = edges.assign(_signal=strongest_signal(edges)) \
        .sort_values(["weight", "key_a", "key_b"], ascending=[False, True, True], kind="stable").head(TOP_LINKS)
    head = ("<tr><th>key a</th><th>key b</th><th class=num>weight</th><th>strongest signal</th>"
            "<th>payment</th><th>IP / range</th><th>device</th><th>prompt bucket</th><th>time slot</th>"
            "<th>example prompts</th></tr>")
    body = []
    for row in top.to_dict("records"):
        prompts = "".join(f"<blockquote>{esc(row[c])}</blockquote>" for c in ("prompt_example_a", "prompt_example_b")
                          if isinstance(row.get(c), str))
        body.append(f'<tr><td class="mono">{esc(row["key_a"])}</td><td class="mono">{esc(row["key_b"])}</td>'
                    f'<td class="num">{fmt_float(row["weight"], 3)}</td><td>{esc(row["_signal"])}</td>'
                    + "".join(f'<td class="mono">{esc(row.get(f"evidence_{s}"))}</td>'
                              for s in ("payment", "ip", "device", "prompt", "timing"))
                    + f"<td>{prompts}</td></tr>")
    more = f'<p class="muted">The {TOP_LINKS} strongest of {len(edges):,} links.</p>' if len(edges) > TOP_LINKS else ""
    return f'<div class="scroll"><table>{head}{"".join(body)}</table></div>{more}'


def _accounts_table(members: pd.DataFrame) -> str:
    tokens = pd.to_numeric(members["total_tokens"], errors="coerce")
    per = members.assign(_tokens=tokens).groupby("account_id", sort=True).agg(
        keys=("key_id", "size"), tokens=("_tokens", "sum"), org=("org_id", "first"),
        domain=("email_domain", "first"), created=("created_at", "min"))
    rows = "".join(f'<tr><td class="mono">{esc(acc)}</td><td class="num">{fmt_int(r["keys"])}</td>'
                   f'<td class="num">{fmt_int(r["tokens"])}</td><td class="mono">{esc(r["org"])}</td>'
                   f'<td class="mono">{esc(r["domain"])}</td><td>{esc(r["created"])}</td></tr>'
                   for acc, r in per.head(MAX_TABLE_ROWS).iterrows())
    return ('<div class="scroll"><table><tr><th>account</th><th class=num>keys</th><th class=num>total tokens</th>'
            f'<th>org</th><th>email domain</th><th>first key created</th></tr>{rows}</table></div>')


def _keys_table(members: pd.DataFrame) -> str:
    rows = "".join(
        f'<tr><td class="mono">{esc(r["key_id"])}</td><td class="mono">{esc(r["account_id"])}</td>'
        f'<td>{esc(r["created_at"])}</td><td class="num">{fmt_int(r["daily_token_limit"])}</td>'
        f'<td class="num">{fmt_int(r["peak_daily_tokens"])}</td><td class="num">{fmt_int(r["total_tokens"])}</td>'
        f'<td class="num">{fmt_int(r["n_requests"])}</td></tr>'
        for r in members.head(MAX_TABLE_ROWS).to_dict("records"))
    more = f'<p class="muted">First {MAX_TABLE_ROWS:,} of {len(members):,} keys.</p>' \
        if len(members) > MAX_TABLE_ROWS else ""
    return ('<div class="scroll"><table><tr><th>key</th><th>account</th><th>created</th><th class=num>daily limit</th>'
            '<th class=num>peak day tokens</th><th class=num>total tokens</th><th class=num>requests</th></tr>'
            f"{rows}</table></div>{more}")


def cluster_page(cluster: dict, members: pd.DataFrame, edges: pd.DataFrame, *, run: dict | None = None,
                 max_nodes: int = 500, vis: str = "../assets/vis-network.min.js",
                 index_href: str | None = "../index.html") -> str:
    """HTML of one cluster's page from its clusters row, its members and its intra-cluster edges.

    `vis="inline"` embeds vis-network, giving a self-contained page (for notebooks and e-mail).
    """
    run = run or {}
    drawing = cluster_drawing(members, edges, max_nodes=max_nodes, seed=int(plain(run.get("seed")) or 0))
    cid = esc(cluster.get("cluster_id"))
    flagged = bool(plain(cluster.get("flagged")))
    badge = '<span class="badge flagged">flagged</span>' if flagged else '<span class="badge clear">not flagged</span>'
    back = f'<a href="{esc(index_href)}">← all clusters</a> · ' if index_href else ""
    notes = "".join(f'<div class="note">{esc(n)}</div>' for n in drawing.notes)
    drawn = (f"{len(drawing.nodes):,} {drawing.level}s and {len(drawing.edges):,} links drawn "
             f"({drawing.n_nodes_total:,} {drawing.level}s, {drawing.n_edges_total:,} links in the cluster)")
    body = f"""<header><h1>Cluster {cid} {badge} <span class="sub">score {fmt_float(cluster.get("score"), 3)}</span></h1>
<div class="sub">{back}run <span class="mono">{esc(run.get("run_id"))}</span> · {drawn}</div></header>
<main>
<p class="explanation">{esc(cluster.get("explanation"))}</p>
{notes}
<div class="controls"><label>Find a key or account: <input type="search" id="find" placeholder="key or account id"></label>
<span class="muted">Hover a node or link for details; click to pin them in the panel; drag to move.</span></div>
<div class="grid"><div id="graph"></div>
<aside><h2>Features</h2>{_features(cluster)}{_legend(drawing)}<div id="selection"></div></aside></div>
<h2>Strongest links and their evidence</h2>{_links_table(edges)}
<h2>Accounts</h2>{_accounts_table(members)}
<h2>Keys</h2>{_keys_table(members.sort_values("key_id", kind="stable"))}
</main>"""
    data = {"level": drawing.level, "nodes": drawing.nodes, "edges": drawing.edges,
            "options": drawing.network.options}
    return html_page(f"keyfarm cluster {plain(cluster.get('cluster_id'))}", body,
                     scripts=[asset("cluster.js")], data=data, vis=vis)
