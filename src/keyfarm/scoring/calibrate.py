"""Calibration (scores stage, offline): fit the verdict model's weights on labelled clusters.

Fitting apart from applying (as scikit-learn does): `calibrate()` reads OUT_DIRs written by
`keyfarm link` (clusters.parquet carries every scaled feature as `f_<name>`, members.parquet maps
accounts to clusters) and a labels table (SCHEMA.md: account_id or cluster_id, label farm|benign,
optional source and ts), fits L2-regularised logistic regression with each weight held to the sign
its evidence allows (verdict.FEATURE_SIGNS), and reports
cross-validated precision and recall and a reliability table (of clusters scored 0.8–0.9, what
share were farms). The result is a `[scoring]` section (bias, weights, fitted_on) for a job's
config or for the package defaults (scripts/calibrate_defaults.py). Reverted bans in an
enforcement audit log become `benign` labels (`labels_from_audit`).
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm.errors import KeyfarmInputError
from keyfarm.outputs import read_output
from keyfarm.scoring.verdict import FEATURE_SIGNS, MODEL_FEATURES

LABELS = ("farm", "benign")


def read_labels(path: str | Path) -> pd.DataFrame:
    """A labels table (CSV or Parquet), checked: label in farm|benign, one id column."""
    path = Path(path)
    if not path.is_file():
        raise KeyfarmInputError(f"labels: {path} not found", table="labels")
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear input error
        raise KeyfarmInputError(f"labels: {path} is not a readable table: {exc}", table="labels") from None
    return check_labels(frame)


def check_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """Labels with a known id column and label values; errors name the column and row."""
    if "label" not in frame:
        raise KeyfarmInputError("labels: column 'label' missing", table="labels", column="label")
    if "account_id" not in frame and "cluster_id" not in frame:
        raise KeyfarmInputError("labels: needs a column 'account_id' or 'cluster_id'", table="labels",
                                column="account_id")
    label = frame["label"].astype("string").str.strip().str.lower()
    bad = ~label.isin(LABELS)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise KeyfarmInputError(f"labels: row {row}: label {frame['label'].iloc[row]!r} is not farm or benign",
                                table="labels", column="label", row=row)
    out = frame.copy()
    out["label"] = label.astype(object)
    if "ts" in out:
        out["ts"] = pd.to_datetime(out["ts"], utc=True, errors="coerce", format="mixed")
    return out


def labels_from_audit(audit_db: str | Path) -> pd.DataFrame:
    """Accounts whose ban was reverted, as `benign` labels (source `revert`): a revert is an
    analyst or an appeal saying the cluster was not a farm."""
    path = Path(audit_db)
    if not path.is_file():
        raise KeyfarmInputError(f"audit: {path} not found", table="audit")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT DISTINCT l.account_id, r.started_at FROM runs r JOIN log l ON l.run_id = r.reverts "
                "WHERE r.kind = 'revert' AND l.status = 'done' AND l.account_id IS NOT NULL "
                "ORDER BY l.account_id").fetchall()
    except sqlite3.DatabaseError as exc:
        raise KeyfarmInputError(f"audit: {path} is not a usable audit database: {exc}", table="audit") from None
    frame = pd.DataFrame(rows, columns=["account_id", "ts"])
    frame["label"] = "benign"
    frame["source"] = "revert"
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame[["account_id", "label", "source", "ts"]]


def carried_labels(out_dirs) -> list[pd.DataFrame]:
    """Per OUT_DIR with labels carried forward (its state/labels.parquet, written by a daily run:
    analysts' labels and reverted bans of earlier runs, applied to the same accounts), those
    labels scoped to it (column `out_dir`): calibrate learns from them as from the run's own."""
    from keyfarm.history.state import read_carried_labels

    parts = [read_carried_labels(d).assign(out_dir=str(Path(d))) for d in out_dirs]
    return [p for p in parts if len(p)]


def labelled_clusters(out_dirs, labels: pd.DataFrame) -> pd.DataFrame:
    """One row per labelled cluster of every OUT_DIR: its `f_<feature>` columns, n_keys, and
    y = 1 (farm) or 0 (benign). An account's latest label wins; a cluster is a farm when at least
    half of its labelled accounts are. A label column `out_dir` scopes each label to one run (a
    null out_dir: to every run)."""
    out_dirs = [Path(d) for d in out_dirs]
    labels = check_labels(labels)
    scoped = "out_dir" in labels
    unscoped = labels["out_dir"].isna().to_numpy() if scoped else np.ones(len(labels), bool)
    if "cluster_id" in labels and (labels["cluster_id"].notna().to_numpy() & unscoped).any() and len(out_dirs) > 1:
        raise KeyfarmInputError("labels: cluster_id labels refer to one OUT_DIR; give one, or label accounts",
                                table="labels", column="cluster_id")
    if "ts" in labels:
        labels = labels.sort_values("ts", kind="stable", na_position="first")
    parts = []
    all_labels = labels
    for out in out_dirs:
        if scoped:   # labels of several runs whose ids may repeat (e.g. generated worlds); unscoped ones apply to all
            where = all_labels["out_dir"]
            labels = all_labels[where.isna().to_numpy() | (where.astype(str) == str(out)).to_numpy()]
        clusters = read_output(out, "clusters", ("cluster_id",))
        members = read_output(out, "members", ("key_id", "account_id", "cluster_id"))
        missing = [f"f_{n}" for n in MODEL_FEATURES if f"f_{n}" not in clusters]
        if missing:
            raise KeyfarmInputError(f"clusters: {out} lacks feature column {missing[0]!r} (written by an "
                                    "older keyfarm: link again)", table="clusters", column=missing[0])
        y = pd.Series(dtype=float)
        if "account_id" in labels:
            acc = labels.dropna(subset=["account_id"]).drop_duplicates("account_id", keep="last")
            acc = acc.assign(farm=(acc["label"] == "farm").astype(float))
            per_account = members.drop_duplicates("account_id")[["account_id", "cluster_id"]] \
                .merge(acc[["account_id", "farm"]], on="account_id", how="inner")
            y = per_account.groupby("cluster_id")["farm"].mean()
        if "cluster_id" in labels and labels["cluster_id"].notna().any():
            cl = labels.dropna(subset=["cluster_id"]).drop_duplicates("cluster_id", keep="last")
            direct = pd.Series((cl["label"] == "farm").astype(float).to_numpy(),
                               index=pd.to_numeric(cl["cluster_id"]).astype(np.int64).to_numpy())
            y = direct.combine_first(y)
        frame = clusters.set_index("cluster_id").join(y.rename("share"), how="inner")
        frame.index.name = "cluster_id"   # cluster_id labels give y an unnamed index, and the join keeps it
        frame["y"] = (frame["share"] >= 0.5).astype(np.int64)
        frame["out_dir"] = str(out)
        parts.append(frame.reset_index())
    if not parts:
        raise KeyfarmInputError("calibrate: no OUT_DIR given", table="clusters")
    return pd.concat(parts, ignore_index=True)


@dataclass
class Calibration:
    """A fitted verdict model and how well it did out of fold."""

    bias: float
    weights: dict[str, float]
    n_clusters: int
    n_farm: int
    cv_precision: float
    cv_recall: float
    reliability: pd.DataFrame
    fitted_on: str = ""
    extra: dict = field(default_factory=dict)

    def to_toml(self) -> str:
        """The `[scoring]` section (bias, weights, fitted_on) as TOML text."""
        lines = ["[scoring]", f'fitted_on = "{self.fitted_on}"', f"bias = {self.bias:.6f}", "",
                 "[scoring.weights]"]
        lines += [f"{k} = {v:.6f}" for k, v in self.weights.items()]
        return "\n".join(lines) + "\n"

    def report(self) -> str:
        """Fit summary and reliability table for the terminal."""
        lines = [f"{self.n_clusters:,} labelled clusters ({self.n_farm:,} farms); {self.fitted_on}",
                 f"cross-validated at score >= 0.5: precision {self.cv_precision:.4f}  recall {self.cv_recall:.4f}",
                 "", f"{'score':<12}{'clusters':>9}{'mean score':>12}{'farm share':>12}"]
        for _, r in self.reliability.iterrows():
            lines.append(f"{r['bin']:<12}{int(r['clusters']):>9}{r['mean_score']:>12.3f}{r['farm_share']:>12.3f}")
        lines += ["", "weights:"] + [f"  {k:<22}{v:+.3f}" for k, v in self.weights.items()]
        lines.append(f"  {'bias':<22}{self.bias:+.3f}")
        return "\n".join(lines)


def reliability_table(score: np.ndarray, y: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Per score decile bin: clusters, mean score, observed share of farms."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(score, edges[1:-1]), 0, bins - 1)
    frame = pd.DataFrame({"b": which, "s": score, "y": y})
    agg = frame.groupby("b").agg(clusters=("y", "size"), mean_score=("s", "mean"), farm_share=("y", "mean"))
    agg["bin"] = [f"{edges[b]:.1f}-{edges[b + 1]:.1f}" for b in agg.index]
    return agg.reset_index(drop=True)[["bin", "clusters", "mean_score", "farm_share"]]


def gated(frame: pd.DataFrame, config=None) -> np.ndarray:
    """Rows of labelled clusters that pass the verdict's gates (control, limits drawn, accounts):
    the clusters the model has to rank. A hackathon that draws less than one limit or an office
    tied only by its addresses is kept out of `farm` by policy and should not teach the fit that
    shared time slots or addresses mean innocence."""
    from keyfarm.scoring.verdict import ScoringConfig

    config = config or ScoringConfig()
    needed = {"control", "limit_multiplier", "n_accounts"}
    if not needed <= set(frame.columns):
        return np.ones(len(frame), bool)
    return ((frame["control"].to_numpy(np.float64) >= config.min_control)
            & (np.nan_to_num(frame["limit_multiplier"].to_numpy(np.float64)) >= config.min_multiplier)
            & (frame["n_accounts"].to_numpy() >= config.min_accounts))


def fit_logistic(X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, *, C: float = 1.0,
                 signs=None) -> tuple[float, np.ndarray]:
    """(intercept, weights) of L2-regularised logistic regression, each weight held to its sign
    (+1: ≥ 0, −1: ≤ 0, 0: free). The objective is scikit-learn's LogisticRegression's
    (½‖w‖² + C·Σ sample_weight·log-loss, intercept not penalised), minimised by SciPy's L-BFGS-B,
    which takes the bounds; with every sign free the result is scikit-learn's fit."""
    from scipy.optimize import minimize
    from scipy.special import expit, log_expit

    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    sw = np.asarray(sample_weight, np.float64)
    n_features = X.shape[1]
    signs = np.zeros(n_features, np.int64) if signs is None else np.asarray(signs, np.int64)
    sign_y = 2.0 * y - 1.0

    def loss(theta):
        w, b = theta[:n_features], theta[n_features]
        margin = sign_y * (X @ w + b)
        value = 0.5 * float(w @ w) - C * float(sw @ log_expit(margin))
        g = -C * sw * sign_y * expit(-margin)
        return value, np.concatenate([w + X.T @ g, [g.sum()]])

    bounds = [(0.0, None) if s > 0 else (None, 0.0) if s < 0 else (None, None) for s in signs] + [(None, None)]
    result = minimize(loss, np.zeros(n_features + 1), jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 15000, "maxfun": 30000, "gtol": 1e-8, "ftol": 1e-13})
    weights = result.x[:n_features].copy()
    weights[weights == 0.0] = 0.0   # no −0.0 in the written weights
    return float(result.x[n_features]), weights


def fit(frame: pd.DataFrame, *, C: float = 1.0, folds: int = 5, seed: int = 0,
        fitted_on: str = "", size_weighted: bool = True, gated_only: bool = True,
        signed: bool = True) -> Calibration:
    """Fit the logistic verdict model on `labelled_clusters` rows; out-of-fold metrics by
    stratified k-fold (seeded, so the same labels give the same report). With `size_weighted`,
    each cluster counts √n_keys times (when the frame has n_keys): a verdict on a big cluster is
    many keys' verdict, yet small farms must not vanish from the fit. With `gated_only` (default)
    the fit and its metrics cover only the clusters that pass the verdict's gates (`gated`). With
    `signed` (default) each weight keeps the sign verdict.FEATURE_SIGNS gives it: evidence of
    control or evasion never lowers a score, whatever the training worlds' collinearity."""
    from scipy.special import expit
    from sklearn.model_selection import StratifiedKFold

    if gated_only:
        frame = frame[gated(frame)]
    X = frame[[f"f_{n}" for n in MODEL_FEATURES]].to_numpy(np.float64)
    y = frame["y"].to_numpy(np.int64)
    sample_weight = np.sqrt(frame["n_keys"].to_numpy(np.float64)) if size_weighted and "n_keys" in frame \
        else np.ones(len(frame))
    n_farm = int(y.sum())
    if n_farm == 0 or n_farm == len(y):
        raise KeyfarmInputError("calibrate: labels need both farm and benign clusters "
                                f"({n_farm} of {len(y)} labelled clusters are farms)", table="labels",
                                column="label")
    signs = [FEATURE_SIGNS[n] if signed else 0 for n in MODEL_FEATURES]
    k = max(2, min(folds, n_farm, len(y) - n_farm))
    prob = np.empty(len(y))
    for train, test in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(X, y):
        b, w = fit_logistic(X[train], y[train], sample_weight[train], C=C, signs=signs)
        prob[test] = expit(X[test] @ w + b)
    pred = prob >= 0.5
    tp = int((pred & (y == 1)).sum())
    precision = tp / int(pred.sum()) if pred.any() else 1.0
    recall = tp / n_farm
    bias, coef = fit_logistic(X, y, sample_weight, C=C, signs=signs)
    weights = {n: float(w) for n, w in zip(MODEL_FEATURES, coef)}
    how = "sign-constrained logistic regression" if signed else "logistic regression"
    return Calibration(bias=bias, weights=weights, n_clusters=len(y), n_farm=n_farm,
                       cv_precision=precision, cv_recall=recall, reliability=reliability_table(prob, y),
                       fitted_on=fitted_on or f"{len(y)} labelled clusters, {how} C={C}")


def calibrate(out_dirs, labels: pd.DataFrame, *, C: float = 1.0, folds: int = 5, seed: int = 0,
              fitted_on: str = "") -> Calibration:
    """Labelled clusters of `out_dirs` → fitted weights with cross-validated metrics."""
    return fit(labelled_clusters(out_dirs, labels), C=C, folds=folds, seed=seed, fitted_on=fitted_on)
