"""The verdict model (scores stage): scaled features → calibrated `score` → farm / review / clear.

A farm needs two things, answered apart: evidence that one actor controls the accounts (a shared
card, the same unusual time slots, a rare device, accounts or keys opened in one burst) and
evidence that together they draw what one account may not (`limit_multiplier`). `score` is a
logistic model over the scaled features, fitted on labelled clusters by `keyfarm calibrate`
(keyfarm.scoring.calibrate); the package's defaults are the fit that scripts/calibrate_defaults.py
wrote to `defaults.toml` beside this module, never hand-set. The policy on top is fixed and
documented: `farm` needs score ≥ threshold, ≥ min_accounts accounts, some control evidence at
min_control or more, and limit_multiplier ≥ min_multiplier; other clusters scoring at least
review_threshold are `review` (an analyst looks, enforcement does not act); the rest `clear`.
"""
from __future__ import annotations

import functools
import math
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

# scaled features the model weighs, in this order (each in [0, 1], 1 = farm-like unless noted)
MODEL_FEATURES = ("payment", "timing", "device", "control_span", "pool", "prompt", "burst",
                  "activation", "synchrony", "cotiming", "usage", "multiplier", "size", "declared_org",
                  "institutional_domain", "control_evasion")
# The sign each weight may take when fitted (`keyfarm calibrate`): +1 for evidence of common control
# or of limit evasion (a shared card or an activation burst must never argue for innocence, whatever
# collinearity a training world has), -1 for evidence of a legitimate organisation, 0 for free.
# Unconstrained, the fit on generated worlds gave payment -2.6 beside control_span and
# control_evasion: the three carry one signal, and the split among them is an accident of the worlds.
FEATURE_SIGNS = {"payment": 1, "timing": 1, "device": 1, "control_span": 1, "pool": 1, "prompt": 0,
                 "burst": 1, "activation": 1, "synchrony": 1, "cotiming": 1, "usage": 1, "multiplier": 1, "size": 0,
                 "declared_org": -1, "institutional_domain": -1, "control_evasion": 1}
# Shared addresses are not a model feature: fitted, they weighed −6 (most address-linked clusters of
# the training worlds are offices and campuses) and sank every farm that runs from its own machines.
# They enter through `pool` (a rotating proxy pool) and the explanation; offices and campuses are
# kept out of `farm` by the control gate, not by a penalty on addresses.
# evidence a crowd cannot share by chance: the model's control index (control_evasion) is their maximum
CONTROL_FEATURES = ("control_span", "pool", "burst", "activation", "cotiming")
# the gate of `farm` also accepts private infrastructure (accounts on one set of exact addresses that
# draw alike, `_infrastructure`): evidence of control that an office shares too, so it opens the
# gate but weighs nothing in the score, which must come from evasion and the other evidence
GATE_FEATURES = CONTROL_FEATURES + ("infra",)
DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")


def _defaults() -> dict:
    """The fitted weights shipped with the package (bias, weights, and what they were fitted on),
    read once per version of the file (calibrate_defaults.py rewrites it between runs)."""
    stat = DEFAULTS_FILE.stat()
    data = _read_defaults(stat.st_mtime_ns, stat.st_size)
    return {"bias": data["bias"], "weights": dict(data["weights"]), "fitted_on": data["fitted_on"]}


@functools.lru_cache(maxsize=4)
def _read_defaults(mtime_ns: int, size: int) -> dict:
    data = tomllib.loads(DEFAULTS_FILE.read_text())["scoring"]
    return {"bias": float(data["bias"]), "weights": {k: float(v) for k, v in data["weights"].items()},
            "fitted_on": str(data.get("fitted_on", ""))}


@dataclass(frozen=True)
class ScoringConfig:
    """Feature scales, the fitted verdict model and the verdict policy (see module docstring)."""

    default_daily_limit: int = 100_000   # tokens, for keys without (or with a non-positive) limit
    sync_bin_seconds: int = 300          # activity bins for synchrony
    cotiming_bin_seconds: int = 60       # fine bins for co-timing (divides 3600: bins keep clock positions)
    burst_window_hours: float = 336.0    # burst scale: 1 at one instant, 0.5 at half of this (a week), 0 beyond
    min_accounts: int = 3                # never `farm` below this many accounts
    threshold: float = 0.5               # `farm` when score >= threshold (and the gates below)
    review_threshold: float = 0.2        # `review` when not farm and score >= this
    min_control: float = 0.6             # `farm` needs one control feature at least this strong: more
    #                                      than half the accounts (a family card on two of four is not the four)
    min_multiplier: float = 1.5          # `farm` needs the accounts to draw this many limits together
    signal_share: float = 0.05           # a signal "links" a cluster when it carries this share of weight
    bias: float = field(default_factory=lambda: _defaults()["bias"])
    weights: dict = field(default_factory=lambda: _defaults()["weights"])
    fitted_on: str = field(default_factory=lambda: _defaults()["fitted_on"])

    def __post_init__(self):
        from keyfarm.errors import KeyfarmConfigError
        if self.sync_bin_seconds < 1:
            raise KeyfarmConfigError(f"setting scoring.sync_bin_seconds must be >= 1, got {self.sync_bin_seconds!r}")
        if self.cotiming_bin_seconds < 1 or 3600 % self.cotiming_bin_seconds:
            raise KeyfarmConfigError("setting scoring.cotiming_bin_seconds must divide 3600, "
                                     f"got {self.cotiming_bin_seconds!r}")
        if self.burst_window_hours <= 0:
            raise KeyfarmConfigError("setting scoring.burst_window_hours must be > 0, "
                                     f"got {self.burst_window_hours!r}")
        if self.default_daily_limit < 1:
            raise KeyfarmConfigError("setting scoring.default_daily_limit must be >= 1, "
                                     f"got {self.default_daily_limit!r}")
        for name in ("threshold", "review_threshold", "min_control"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise KeyfarmConfigError(f"setting scoring.{name} must be within 0..1, got {value!r}")
        unknown = [k for k in self.weights if k not in MODEL_FEATURES]
        if unknown:
            raise KeyfarmConfigError(f"unknown key scoring.weights.{unknown[0]} (known: {', '.join(MODEL_FEATURES)})")
        if self.min_accounts < 1:
            raise KeyfarmConfigError(f"setting scoring.min_accounts must be >= 1, got {self.min_accounts!r}")
        if self.min_multiplier < 0:
            raise KeyfarmConfigError(f"setting scoring.min_multiplier must be >= 0, got {self.min_multiplier!r}")
        if not 0.0 < self.signal_share <= 1.0:
            raise KeyfarmConfigError(f"setting scoring.signal_share must be within (0, 1], got {self.signal_share!r}")
        for name, value in (("bias", self.bias), *((f"weights.{k}", v) for k, v in self.weights.items())):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise KeyfarmConfigError(f"setting scoring.{name} must be a finite number, got {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def feature_scales(feats: pd.DataFrame, config: ScoringConfig) -> pd.DataFrame:
    """Each model feature scaled to [0, 1], one column per MODEL_FEATURES name.

    The scales are fixed with a reason, not fitted: payment, timing and device are spans (the
    largest group of accounts the signal joins, as a share of the cluster: ten labs on ten cards
    span a tenth), control_span the same for the three together; network and prompt are shares of
    accounts tied to another member at all (infrastructure and interest); pool is the network share
    × (the median account's distinct public /24 or /48 blocks − 5)/10; cotiming is the share of
    accounts that keep acting in the cluster's own bursts (scoring.features._cotiming); accounts that share addresses
    while each rotates through fifteen or more blocks run on one proxy pool (a gateway's tenants,
    on its addresses and their own, reach about seven); a burst is 1
    when every account was opened at once and 0 at burst_window_hours apart; the multiplier is
    log2(limits drawn)/3, 0 at one limit and 1 at eight; size is log(accounts/2)/log(100).
    """
    def burst(column):
        spread = feats[column].to_numpy(np.float64)
        return np.where(np.isfinite(spread), np.clip(1.0 - spread / config.burst_window_hours, 0, 1), 0.0)

    mult = feats["limit_multiplier"].to_numpy(np.float64)
    scaled = pd.DataFrame({
        "payment": feats["span_payment"], "timing": feats["span_timing"], "device": feats["span_device"],
        "control_span": feats["span_control"],
        "network": feats["share_ip"], "prompt": feats["share_prompt"],
        "infra": _infrastructure(feats),
        "pool": feats["share_ip"].to_numpy(np.float64) * np.clip(
            (feats["rotation_blocks"].to_numpy(np.float64) - 5.0) / 10.0, 0, 1),
        "burst": burst("creation_spread_hours"), "activation": burst("activation_spread_hours"),
        "synchrony": np.clip(feats["synchrony"].to_numpy(np.float64), 0, 1),
        "cotiming": np.clip(feats["cotiming"].to_numpy(np.float64), 0, 1) if "cotiming" in feats else 0.0,
        "usage": np.clip(feats["usage"].to_numpy(np.float64), 0, 1),
        "multiplier": np.clip(np.log2(np.maximum(np.nan_to_num(mult, nan=0.0, posinf=1e6), 1e-12)) / 3.0, 0, 1),
        "size": np.clip(np.log(np.maximum(feats["n_accounts"].to_numpy(np.float64), 2) / 2) / math.log(100), 0, 1),
        "declared_org": feats["declared_org"].astype(float),
        "institutional_domain": feats["institutional_domain"].astype(float),
    }, index=feats.index).astype(np.float64)
    scaled["control_evasion"] = control_index(scaled) * scaled["multiplier"]
    return scaled[list(MODEL_FEATURES) + ["network", "infra"]]


def _infrastructure(feats: pd.DataFrame) -> np.ndarray:
    """Private infrastructure as evidence of one actor: the span of accounts on the same exact
    addresses × how alike they draw (the lower quartile of use over the median, at most 1). One
    actor's script keeps each account near the same share of its limit; the tenants of a gateway or
    the staff of an office are independent users whose use spreads out (a quarter of a gateway's
    tenants under a fifth of the median), so their shared addresses alone do not open the gate."""
    if "span_ip" not in feats:
        return np.zeros(len(feats))
    usage = feats["usage"].to_numpy(np.float64)
    low = feats["usage_low"].to_numpy(np.float64)
    alike = np.where(usage > 0, np.clip(np.nan_to_num(low / np.where(usage > 0, usage, 1.0)), 0, 1), 0.0)
    return feats["span_ip"].to_numpy(np.float64) * alike


def control_index(scaled: pd.DataFrame, features=CONTROL_FEATURES) -> np.ndarray:
    """The strongest evidence of common control among `features` (0..1): CONTROL_FEATURES for the
    model, GATE_FEATURES for the gate of `farm`."""
    return scaled[list(features)].max(axis=1).to_numpy(np.float64)


def model_logit(scaled: pd.DataFrame, config: ScoringConfig) -> tuple[np.ndarray, pd.DataFrame]:
    """(logit, per-feature contributions) of the fitted model."""
    weights = pd.Series({k: float(config.weights.get(k, 0.0)) for k in MODEL_FEATURES})
    contrib = scaled[weights.index] * weights
    return config.bias + contrib.sum(axis=1).to_numpy(np.float64), contrib


def verdicts(score: np.ndarray, control: np.ndarray, feats: pd.DataFrame,
             config: ScoringConfig) -> np.ndarray:
    """`farm`, `review` or `clear` per cluster under the policy of the module docstring
    (`control`: the gate's control index, control_index over GATE_FEATURES)."""
    farm = (score >= config.threshold) & (feats["n_accounts"].to_numpy() >= config.min_accounts) \
        & (control >= config.min_control) \
        & (np.nan_to_num(feats["limit_multiplier"].to_numpy(np.float64)) >= config.min_multiplier)
    review = ~farm & (score >= config.review_threshold)
    return np.where(farm, "farm", np.where(review, "review", "clear")).astype(object)


def score_clusters(feats: pd.DataFrame, config: ScoringConfig, *, explanations: bool = True) -> pd.DataFrame:
    """Add the scaled features (`f_<name>`), `score`, `verdict`, `flagged` and an `explanation`
    (left out with `explanations=False`: hub triage reads only score and verdict)."""
    from keyfarm.scoring.explain import explain

    scaled = feature_scales(feats, config)
    logit, contrib = model_logit(scaled, config)
    out = feats.copy()
    out["score"] = np.round(1.0 / (1.0 + np.exp(-logit)), 6)
    control = control_index(scaled, GATE_FEATURES)
    out["verdict"] = verdicts(out["score"].to_numpy(), control, feats, config)
    out["flagged"] = out["verdict"].to_numpy() == "farm"
    out["control"] = np.round(control, 6)
    for name in MODEL_FEATURES:
        out[f"f_{name}"] = np.round(scaled[name].to_numpy(), 6)
    if explanations:
        out["explanation"] = explain(out, scaled, contrib, config)
    return out
