"""OUT_DIR/run-info.html: run.json's stage timings and peak memory, as a page beside it.

Stage: report. Seconds and memory change from run to run, so the report's own pages leave them
out (its folder is the same bytes for the same input and seed) and the index links here; this
page is a view of run.json, rewritten whenever run.json or the report is.
"""
from __future__ import annotations

import json
from pathlib import Path

from keyfarm.report.escape import esc, fmt_float
from keyfarm.report.page import html_page

RUN_INFO = "run-info.html"


def run_info_page(run: dict) -> str:
    """HTML of run-info.html: one row per stage of run.json, its seconds and peak memory."""
    timings = run.get("timings") if isinstance(run.get("timings"), dict) else {}
    peaks = run.get("peak_rss_gib") if isinstance(run.get("peak_rss_gib"), dict) else {}
    rows = "".join(f"<tr><th>{esc(stage)}</th><td class=num>{fmt_float(seconds, 2)}</td>"
                   f"<td class=num>{fmt_float(peaks.get(stage), 2)}</td></tr>" for stage, seconds in timings.items())
    seconds = [v for v in timings.values() if isinstance(v, (int, float))]
    total = f"<tr><th>all stages</th><td class=num>{fmt_float(sum(seconds), 2)}</td><td></td></tr>" if seconds else ""
    body = f"""<header><h1>keyfarm run <span class="mono">{esc(run.get("run_id"))}</span></h1>
<div class="sub"><a href="report/index.html">← the report</a> · keyfarm {esc(run.get("version"))} · seed {esc(run.get("seed"))} ·
input <span class="mono">{esc(run.get("input"))}</span></div></header>
<main><h2>Timings</h2>
<p class="muted">Seconds and peak resident memory of each stage of this run, from run.json (they change from run to run,
so the report's pages, the same bytes for the same input and seed, do not carry them).</p>
{'<table><tr><th>stage</th><th class=num>seconds</th><th class=num>peak GiB</th></tr>' + rows + total + '</table>'
 if rows else '<p class="muted">none recorded</p>'}
</main>"""
    return html_page("keyfarm run", body)


def write_run_info(out_dir) -> Path:
    """Write OUT_DIR/run-info.html from OUT_DIR/run.json (none: an empty page); return its path."""
    out = Path(out_dir)
    try:
        run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        run = {}
    path = out / RUN_INFO
    path.write_text(run_info_page(run if isinstance(run, dict) else {}), encoding="utf-8")
    return path
