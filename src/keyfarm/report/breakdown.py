"""Why a cluster got its verdict: the score as a waterfall of feature contributions, and the evidence.

Stage: report. The verdict model is a logistic regression over scaled features
(keyfarm.scoring.verdict): logit = bias + Σ weight × feature. `breakdown` recomputes each
contribution from the cluster's `f_<feature>` columns and the run's fitted weights (run.json's
config), in the manner of Splink's match-weight waterfall; the bars end at the score's logit.
`evidence_html` lists the evidence of control and of evasion, what counted against, and for
`review` and `clear` what is missing for `farm` (keyfarm.scoring.explain.evidence_parts).
Everything is inline SVG and HTML built here, so the page stays offline under its CSP.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from keyfarm.report.escape import esc, fmt_float, plain

FEATURE_MEANING = {
    "payment": "largest group of accounts joined by shared payment instruments (share of the cluster)",
    "timing": "largest group joined by the same unusual time slots",
    "device": "largest group joined by a rare device fingerprint beside a card or shared slots",
    "control_span": "largest group joined by any evidence of one actor",
    "pool": "accounts share addresses while each rotates through many address blocks (a proxy pool)",
    "prompt": "share of accounts sending near-duplicate prompts",
    "burst": "accounts opened close together in time",
    "activation": "keys first used close together in time",
    "synchrony": "accounts active in the same 5-minute bins, against the population's rhythm",
    "cotiming": "share of accounts that keep acting in bursts of the cluster's own activity (its own rhythm explains none)",
    "usage": "how close each key runs to its daily limit",
    "multiplier": "limits drawn together (log2 of the limit multiplier / 3)",
    "size": "number of accounts (log scale)",
    "declared_org": "all accounts declare one organisation (benign indicator)",
    "institutional_domain": "all accounts on one institutional email domain (benign indicator)",
    "control_evasion": "strongest control evidence × limits drawn",
}
WIDTH, ROW, LABEL_W, VALUE_W = 720, 18, 150, 150


@dataclass
class Breakdown:
    """The score's logit split into bias and per-feature contributions (largest |contribution| first)."""

    bias: float
    rows: list[tuple[str, float, float, float]]   # (feature, scaled value, weight, contribution)
    logit: float                                  # bias + Σ contributions
    score: float | None                           # the stored score (rounded to 6 digits by scoring)


def scoring_config(run: dict):
    """The run's ScoringConfig from run.json, or None when the run does not record one."""
    from keyfarm.scoring.verdict import ScoringConfig

    config = run.get("config") if isinstance(run.get("config"), dict) else {}
    scoring = config.get("scoring")
    if not isinstance(scoring, dict):
        return None
    try:
        return ScoringConfig(**scoring)
    except Exception:  # noqa: BLE001 - a foreign or older run.json: the page shows no breakdown
        return None


def scaled_features(cluster: dict) -> dict | None:
    """The cluster's scaled model features from its `f_<feature>` columns (None if any is missing)."""
    from keyfarm.scoring.verdict import MODEL_FEATURES

    values = {}
    for name in MODEL_FEATURES:
        value = plain(cluster.get(f"f_{name}"))
        if value is None or isinstance(value, (str, bool)):
            return None
        values[name] = float(value)
    for name, column in (("network", "share_ip"), ("infra", "span_ip")):   # gate-only, not in the model
        value = plain(cluster.get(column))
        values[name] = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
    return values


def all_contributions(clusters: pd.DataFrame, config) -> dict:
    """cluster_id → {feature: contribution} for every cluster, in one vectorised call (a report's
    pages would otherwise each pay pandas' overhead); empty without features or weights."""
    from keyfarm.scoring.explain import contributions
    from keyfarm.scoring.verdict import MODEL_FEATURES

    columns = [f"f_{n}" for n in MODEL_FEATURES]
    if config is None or not len(clusters) or any(c not in clusters for c in columns):
        return {}
    scaled = clusters[columns].apply(pd.to_numeric, errors="coerce")
    scaled.columns = list(MODEL_FEATURES)
    ok = scaled.notna().all(axis=1).to_numpy()
    contrib = contributions(scaled[ok], config)
    ids = clusters["cluster_id"].to_numpy(np.int64)[ok]
    return {int(c): dict(zip(MODEL_FEATURES, row)) for c, row in zip(ids, contrib.to_numpy(np.float64).tolist())}


def breakdown(cluster: dict, config, contrib: dict | None = None, scaled: dict | None = None) -> Breakdown | None:
    """Per-feature contributions to the cluster's logit under `config` (None without features).
    `contrib`: the cluster's entry of `all_contributions`, when computed for many at once;
    `scaled`: its `scaled_features`, when the caller has them already."""
    scaled = scaled_features(cluster) if scaled is None else scaled
    if scaled is None or config is None:
        return None
    if contrib is None:
        row = pd.DataFrame({"cluster_id": [plain(cluster.get("cluster_id")) or 0],
                            **{f"f_{n}": [v] for n, v in scaled.items()}})
        contrib = next(iter(all_contributions(row, config).values()))
    rows = [(name, float(scaled[name]), float(config.weights.get(name, 0.0)), float(c))
            for name, c in contrib.items()]
    rows.sort(key=lambda r: (-abs(r[3]), r[0]))
    score = plain(cluster.get("score"))
    return Breakdown(bias=float(config.bias), rows=rows, logit=float(config.bias) + float(sum(contrib.values())),
                     score=float(score) if isinstance(score, (int, float)) else None)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def waterfall_svg(b: Breakdown, config) -> str:
    """An inline SVG waterfall: bias, then each nonzero contribution from the running total, then
    the logit (and score); dashed lines at the farm and review thresholds' logits."""
    rows = [r for r in b.rows if abs(r[3]) >= 5e-4]
    steps = [("bias", None, None, b.bias)] + rows
    totals = np.cumsum([s[3] for s in steps])
    marks = [_logit(config.threshold)] if 0 < config.threshold < 1 else []
    if 0 < config.review_threshold < 1:
        marks.append(_logit(config.review_threshold))
    lo = min(0.0, float(totals.min()), *marks, b.logit) - 0.5
    hi = max(0.0, float(totals.max()), *marks, b.logit) + 0.5
    plot_w = WIDTH - LABEL_W - VALUE_W
    x = lambda v: LABEL_W + (v - lo) / (hi - lo) * plot_w  # noqa: E731
    height = ROW * (len(steps) + 2) + 34
    out = [f'<svg class="waterfall" role="img" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
           '><title>score breakdown: contribution of each feature to the '
           'logit of the score</title>']
    start = 0.0
    for i, ((name, value, weight, contrib), total) in enumerate(zip(steps, totals)):
        y = 16 + i * ROW
        left, right = sorted((x(start), x(total)))
        colour = "#9ca3af" if name == "bias" else ("#dc2626" if contrib > 0 else "#16a34a")
        tip = (f"{name}: {contrib:+.3f}" if value is None else
               f"{name} = {value:.3f} × weight {weight:+.3f} = {contrib:+.3f}")
        out.append(f'<g><title>{esc(tip)}</title><text x="{LABEL_W - 6}" y="{y + 12}" text-anchor="end">{esc(name)}</text>'
                   f'<rect x="{left:.1f}" y="{y + 2}" width="{max(right - left, 1):.1f}" height="{ROW - 5}" fill="{colour}"/>'
                   f'<text x="{WIDTH - VALUE_W + 8}" y="{y + 12}">{contrib:+.3f}'
                   + ("" if value is None else f' <tspan class="muted">({value:.2f} × {weight:+.2f})</tspan>')
                   + "</text></g>")
        start = total
    y = 16 + len(steps) * ROW
    score = "" if b.score is None else f" → score {b.score:.3f}"
    out.append(f'<text x="{LABEL_W - 6}" y="{y + 12}" text-anchor="end" font-weight="600">logit</text>'
               f'<rect x="{min(x(0), x(b.logit)):.1f}" y="{y + 2}" width="{max(abs(x(b.logit) - x(0)), 1):.1f}" '
               f'height="{ROW - 5}" fill="#1f2937"/><text x="{WIDTH - VALUE_W + 8}" y="{y + 12}" font-weight="600">'
               f"{b.logit:+.3f}{esc(score)}</text>")
    axis_y = 16 + (len(steps) + 1) * ROW
    out.append(f'<line x1="{x(0):.1f}" y1="10" x2="{x(0):.1f}" y2="{axis_y}" stroke="#6b7280"/>')
    for k, (v, label) in enumerate(zip(marks, (f"farm ≥ {config.threshold:g}", f"review ≥ {config.review_threshold:g}"))):
        out.append(f'<line x1="{x(v):.1f}" y1="10" x2="{x(v):.1f}" y2="{axis_y + 12 * k}" stroke="#6b7280" '
                   f'stroke-dasharray="4 3"/><text x="{x(v) + 3:.1f}" y="{axis_y + 10 + 12 * k}" class="muted">{esc(label)}</text>')
    out.append(f'<text x="{x(0) - 3:.1f}" y="{axis_y + 14}" text-anchor="end" class="muted">0</text></svg>')
    return "".join(out)


def evidence_html(cluster: dict, config, scaled: dict | None = None) -> str:
    """The evidence lists of the verdict (empty when the run lacks the features they need);
    `scaled`: the cluster's `scaled_features`, when the caller has them already."""
    from keyfarm.scoring.explain import evidence_parts

    scaled = scaled_features(cluster) if scaled is None else scaled
    if scaled is None or config is None:
        return ""
    try:
        parts = evidence_parts(cluster, scaled, config)
    except (KeyError, TypeError, ValueError):
        return ""
    items = [("Evidence of one actor (control)", parts["control"] or ["none at 0.5 or more"]),
             ("Shared infrastructure or interest", parts["infra"]),
             ("Evidence of evasion", [parts["evasion"]]),
             ("Against", parts["against"])]
    if parts["missing"]:
        items.append(("Missing for farm", parts["missing"]))
    return "".join(f'<div class="evidence"><h3>{esc(title)}</h3><ul>'
                   + "".join(f"<li>{esc(v)}</li>" for v in values) + "</ul></div>"
                   for title, values in items if values)


@lru_cache(maxsize=None)
def _meaning(feature: str) -> str:
    return esc(FEATURE_MEANING.get(feature, ""))


def breakdown_html(cluster: dict, run: dict, *, config=None, contrib: dict | None = None) -> str:
    """The 'why' section: waterfall, evidence lists, and a table of every feature's contribution.
    `config`: the run's ScoringConfig (read from `run` when not given)."""
    config = scoring_config(run) if config is None else config
    scaled = scaled_features(cluster)
    b = breakdown(cluster, config, contrib, scaled)
    if b is None:
        return ('<p class="muted">No score breakdown: this run does not record the scaled features '
                "(f_&lt;feature&gt; columns) or the fitted weights (run.json config.scoring).</p>"
                + evidence_html(cluster, config, scaled))
    rows = "".join(f'<tr><th title="{_meaning(n)}">{esc(n)}</th><td class=num>{v:.3f}</td>'
                   f'<td class=num>{w:+.3f}</td><td class=num>{c:+.3f}</td></tr>' for n, v, w, c in b.rows)
    table = ('<details><summary>every feature</summary><table><tr><th>feature</th><th class=num>value (0..1)</th>'
             f'<th class=num>weight</th><th class=num>contribution</th></tr>{rows}'
             f'<tr><th>bias</th><td></td><td></td><td class=num>{b.bias:+.3f}</td></tr>'
             f'<tr><th>logit</th><td></td><td></td><td class=num>{b.logit:+.3f}</td></tr></table></details>')
    return (f'<div class="why"><div>{waterfall_svg(b, config)}'
            f'<p class="muted">Score = 1 / (1 + e<sup>−logit</sup>) = {fmt_float(1 / (1 + math.exp(-b.logit)), 3)}; '
            "red raises the score, green lowers it. A farm also needs the gates: control evidence, "
            "limits drawn and accounts (see below).</p>"
            f"{table}</div><div>{evidence_html(cluster, config, scaled)}</div></div>")
