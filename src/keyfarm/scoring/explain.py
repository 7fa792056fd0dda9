"""Explanations (scores stage): one sentence per cluster naming its evidence of control and of
evasion, what counted against it, and for `review` and `clear` what is missing for `farm`."""
from __future__ import annotations

import numpy as np
import pandas as pd

_CONTROL_TEXT = {
    "payment": "{n} of {N} accounts joined by shared payment instruments",
    "timing": "{n} of {N} accounts joined by the same unusual time slots",
    "device": "{n} of {N} accounts joined by a rare device fingerprint",
    "cotiming": "{n} of {N} accounts keep acting in the same bursts of the cluster's own activity",
    "burst": "accounts opened within {creation_spread_hours:.0f} h",
    "activation": "keys activated within {activation_spread_hours:.0f} h",
    "pool": "accounts rotate through one address pool (median {rotation_blocks:.0f} address blocks each)",
    "infra": "{n} of {N} accounts joined by the same private addresses",
}
_INFRA_TEXT = {
    "network": "{n} of {N} accounts share addresses",
    "prompt": "{n} of {N} accounts send near-duplicate prompts",
}
_SHARE_COLUMN = {"payment": "span_payment", "timing": "span_timing", "device": "span_device",
                 "infra": "span_ip", "cotiming": "cotiming", "network": "share_ip", "prompt": "share_prompt"}


def _facts(row, names, texts, scaled_row, floor: float) -> list[str]:
    out = []
    fmt = None
    for name in names:
        if scaled_row[name] < floor:
            continue
        if fmt is None:
            fmt = dict(row)   # a Series or a plain dict (the report passes dicts)
        col = _SHARE_COLUMN.get(name)
        fmt["N"] = int(row["n_accounts"])
        share = row.get(col) if col else None   # an older run or a reader's subset may lack it
        share = scaled_row[name] if share is None or share != share else share
        fmt["n"] = int(round(float(share) * row["n_accounts"])) if col else 0
        out.append(texts[name].format(**fmt))
    return out


def evidence_parts(row, s, config) -> dict:
    """The parts of one cluster's explanation, as lists of phrases: `control` (evidence of one
    actor), `infra` (shared infrastructure or interest), `evasion` (one phrase), `against`
    (benign indicators) and, for `review` and `clear`, `missing` (what `farm` would need).

    `row` (a Series or dict) holds the cluster's features with score, verdict and control; `s` its
    scaled features (keyfarm.scoring.verdict.feature_scales, `network` included). Read-only: `explain` joins these
    phrases into the sentence, the report lists them beside the score breakdown.
    """
    control = _facts(row, _CONTROL_TEXT, _CONTROL_TEXT, s, 0.5)
    infra = _facts(row, _INFRA_TEXT, _INFRA_TEXT, s, 0.5)
    mult = float(np.nan_to_num(row["limit_multiplier"]))
    evasion = f"together {mult:.1f}× one account's daily limit at {row['usage']:.0%} median use of each"
    against = []
    if row["declared_org"]:
        against.append("one declared organisation")
    if row["institutional_domain"]:
        against.append("one institutional email domain")
    missing = []
    if row["verdict"] != "farm":
        if not control or row["control"] < config.min_control:
            missing.append("evidence of one actor (no shared card, unusual time slots, activity "
                           "in the cluster's own bursts, rare device, private addresses or burst)")
        if mult < config.min_multiplier:
            missing.append(f"drawing beyond one account (needs {config.min_multiplier:g}× a limit)")
        if row["n_accounts"] < config.min_accounts:
            missing.append(f"at least {config.min_accounts} accounts")
        if not missing:
            missing.append(f"a score of {config.threshold:g}")
    return {"control": control, "infra": infra, "evasion": evasion, "against": against, "missing": missing}


def contributions(scaled: pd.DataFrame, config) -> pd.DataFrame:
    """Each model feature's contribution to the logit (scaled value × fitted weight), one column
    per MODEL_FEATURES name: bias + the row's sum is the score's logit, as in Splink's match-weight
    waterfall. Read-only: the same product keyfarm.scoring.verdict.model_logit sums."""
    from keyfarm.scoring.verdict import model_logit

    return model_logit(scaled, config)[1]


def explain(out: pd.DataFrame, scaled: pd.DataFrame, contrib: pd.DataFrame, config) -> list[str]:
    """The explanation of every row of `out` (features with score and verdict). Rows are read as
    plain dicts (`to_dict("records")`): a 1M-key run explains ~10⁵ clusters and hubs, and a pandas
    row lookup per cluster cost more than the sentence."""
    sentences = []
    scaled_rows = scaled.loc[out.index].to_dict("records")
    for row, scaled_row in zip(out.to_dict("records"), scaled_rows):
        parts = evidence_parts(row, scaled_row, config)
        head = {"farm": "Farm", "review": "Review", "clear": "Clear"}[row["verdict"]]
        text = f"{head} (score {row['score']:.2f}): control — " + \
            ("; ".join(parts["control"]) if parts["control"] else "none")
        if parts["infra"]:
            text += f"; shared infrastructure or interest — {'; '.join(parts['infra'])}"
        text += f"; evasion — {parts['evasion']}"
        if parts["against"]:
            text += "; against: " + ", ".join(parts["against"])
        if parts["missing"]:
            text += "; missing for farm: " + ", ".join(parts["missing"])
        sentences.append(text + ".")
    return sentences
