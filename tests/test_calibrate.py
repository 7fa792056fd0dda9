"""Calibration: fitting the verdict model on labels, labels from reverted bans, the CLI."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from keyfarm.cli import main
from keyfarm.config import Config
from keyfarm.enforce.audit import Audit
from keyfarm.errors import KeyfarmInputError
from keyfarm.scoring import MODEL_FEATURES
from keyfarm.scoring.calibrate import fit, labelled_clusters, labels_from_audit

TRUE = {"payment": 3.0, "timing": 2.0, "multiplier": 2.5, "declared_org": -3.0}
BIAS = -4.0


def _labelled_table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"f_{name}": rng.random(n) for name in MODEL_FEATURES})
    logit = BIAS + sum(w * frame[f"f_{k}"] for k, w in TRUE.items())
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return frame


def test_calibrate_recovers_known_weights_from_a_labelled_table():
    result = fit(_labelled_table(40_000, seed=1), C=100.0)
    assert result.bias == pytest.approx(BIAS, abs=0.3)
    for name in MODEL_FEATURES:
        assert result.weights[name] == pytest.approx(TRUE.get(name, 0.0), abs=0.3), name
    # out of fold, the calibrated probabilities mean what they say
    table = result.reliability[result.reliability["clusters"] >= 200]
    assert (table["mean_score"] - table["farm_share"]).abs().max() < 0.06


def test_unsigned_fit_is_scikit_learns_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    from keyfarm.scoring.calibrate import fit_logistic
    frame = _labelled_table(3_000, seed=4)
    X = frame[[f"f_{n}" for n in MODEL_FEATURES]].to_numpy()
    y = frame["y"].to_numpy()
    sw = np.random.default_rng(4).uniform(1, 5, len(y))
    bias, weights = fit_logistic(X, y, sw, C=0.5)
    reference = LogisticRegression(C=0.5, max_iter=10_000, tol=1e-10).fit(X, y, sample_weight=sw)
    assert bias == pytest.approx(reference.intercept_[0], abs=1e-3)
    assert weights == pytest.approx(reference.coef_[0], abs=1e-3)


def test_signed_fit_never_lets_control_evidence_argue_for_innocence():
    # two copies of one signal (a card span and the control span that contains it): unconstrained,
    # the fit may split them into +w and -w'; signed, a card never lowers the score
    from keyfarm.scoring import FEATURE_SIGNS
    rng = np.random.default_rng(5)
    n = 4_000
    frame = pd.DataFrame({f"f_{name}": np.zeros(n) for name in MODEL_FEATURES})
    control = rng.random(n)
    frame["f_control_span"] = control
    frame["f_payment"] = np.clip(control + rng.normal(0, 0.05, n), 0, 1)
    frame["f_declared_org"] = (rng.random(n) < 0.2).astype(float)
    logit = -3.0 + 6.0 * control - 4.0 * frame["f_payment"] + 3.0 * frame["f_declared_org"]
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    free = fit(frame, C=100.0, signed=False)
    assert free.weights["payment"] < -1.0 and free.weights["declared_org"] > 1.0   # what the data alone says
    signed = fit(frame, C=100.0)
    for name, weight in signed.weights.items():
        assert weight * FEATURE_SIGNS[name] >= 0.0, name
    assert signed.weights["payment"] == 0.0 and signed.weights["declared_org"] == 0.0
    assert signed.weights["control_span"] > 1.0


def test_fitted_section_is_a_valid_job_config(tmp_path):
    result = fit(_labelled_table(3_000, seed=2))
    path = tmp_path / "scoring.toml"
    path.write_text(result.to_toml())
    config = Config.from_toml(path)
    assert config.scoring.weights == pytest.approx(result.weights, abs=1e-6)
    assert config.scoring.bias == pytest.approx(result.bias, abs=1e-6)


def test_one_class_of_labels_is_an_input_error():
    frame = _labelled_table(200, seed=3).assign(y=0)
    with pytest.raises(KeyfarmInputError, match="both farm and benign"):
        fit(frame)


def _out_dir(tmp_path):
    """An OUT_DIR of three clusters (ids 1-3) with scaled features and members."""
    out = tmp_path / "out"
    out.mkdir(parents=True)
    clusters = pd.DataFrame({"cluster_id": [1, 2, 3], "n_keys": [3, 2, 2]})
    for i, name in enumerate(MODEL_FEATURES):
        clusters[f"f_{name}"] = [0.9, 0.1, 0.5]
    clusters.to_parquet(out / "clusters.parquet")
    pd.DataFrame({"key_id": ["k1", "k2", "k3", "k4", "k5", "k6", "k7"],
                  "account_id": ["a1", "a2", "a3", "b1", "b2", "c1", "c2"],
                  "cluster_id": [1, 1, 1, 2, 2, 3, 3]}).to_parquet(out / "members.parquet")
    return out


def test_a_reverted_ban_becomes_a_benign_label_and_the_latest_label_wins(tmp_path):
    out = _out_dir(tmp_path)
    db = tmp_path / "audit.db"
    with Audit(db) as audit:
        audit.begin_run("run1", kind="apply", operator="alice", reason="T-1", n_actions=2)
        audit.record("run1", [{"account_id": "b1", "action": "suspend_account", "idempotency_key": "i1",
                               "status": "done"},
                              {"account_id": "b2", "action": "suspend_account", "idempotency_key": "i2",
                               "status": "failed"}], operator="alice", reason="T-1")
        audit.begin_run("revert-run1", kind="revert", operator="bob", reason="appeal", n_actions=1,
                        reverts="run1")
    reverted = labels_from_audit(db)
    assert reverted[["account_id", "label", "source"]].values.tolist() == [["b1", "benign", "revert"]]
    analyst = pd.DataFrame({"account_id": ["a1", "a2", "b1", "c1"], "label": ["farm", "farm", "farm", "benign"],
                            "ts": ["2026-11-01", "2026-11-01", "2026-10-01", "2026-11-01"]})
    labels = pd.concat([analyst, reverted.assign(ts=pd.Timestamp("2026-11-20", tz="UTC"))], ignore_index=True)
    frame = labelled_clusters([out], labels).set_index("cluster_id")
    assert frame["y"].to_dict() == {1: 1, 2: 0, 3: 0}   # b1's revert (later) overrides its farm label


def _sixty_clusters(out) -> np.ndarray:
    """Write 60 one-account clusters a0..a59 into OUT_DIR `out`, the even ones farm-like; returns
    the mask of the farm-like ones."""
    rng = np.random.default_rng(0)
    clusters = pd.DataFrame({"cluster_id": np.arange(60), "n_keys": 2})
    farm = np.arange(60) % 2 == 0
    for name in MODEL_FEATURES:
        clusters[f"f_{name}"] = np.where(farm, 0.7, 0.3) + rng.normal(0, 0.2, 60)
    clusters.to_parquet(out / "clusters.parquet")
    pd.DataFrame({"key_id": [f"k{i}" for i in range(60)], "account_id": [f"a{i}" for i in range(60)],
                  "cluster_id": np.arange(60)}).to_parquet(out / "members.parquet")
    return farm


def test_calibrate_command_writes_the_scoring_section(tmp_path):
    out = _out_dir(tmp_path)
    farm = _sixty_clusters(out)
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"account_id": [f"a{i}" for i in range(60)],
                  "label": np.where(farm, "farm", "benign")}).to_csv(labels, index=False)
    result = CliRunner().invoke(main, ["calibrate", str(out), "--labels", str(labels),
                                       "--out", str(tmp_path / "s.toml")])
    assert result.exit_code == 0, result.output
    assert "cross-validated" in result.output and "farm share" in result.output
    assert Config.from_toml(tmp_path / "s.toml").scoring.weights["payment"] > 0
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"account_id": ["a1"], "label": ["fraud"]}).to_csv(bad, index=False)
    result = CliRunner().invoke(main, ["calibrate", str(out), "--labels", str(bad)])
    assert result.exit_code == 2 and "row 0" in result.output and "not farm or benign" in result.output


def _carry(out, labels: pd.DataFrame) -> None:
    """Give OUT_DIR a state/ whose labels.parquet carries `labels` (as a daily run writes it)."""
    from keyfarm.history.state import State, empty_tables, write_state

    tables = empty_tables()
    tables["labels"] = labels
    write_state(out, State(run_id="r1", run_seq=0, next_cluster_id=100, tables=tables))


def test_calibrate_learns_from_labels_carried_in_state(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    farm = _sixty_clusters(out)
    result = CliRunner().invoke(main, ["calibrate", str(out)])
    assert result.exit_code == 2 and "give --labels" in result.output   # nothing labelled yet
    _carry(out, pd.DataFrame({"account_id": [f"a{i}" for i in range(60)],
                              "label": np.where(farm, "farm", "benign"), "source": "analyst",
                              "ts": "2026-11-01T00:00:00+00:00"}))
    result = CliRunner().invoke(main, ["calibrate", str(out), "--json"])
    assert result.exit_code == 0, result.output
    import json
    report = json.loads(result.output[result.output.index("{"):])
    assert report["n_clusters"] == 60 and report["n_farm"] == 30
    (out / "state" / "labels.parquet").write_bytes(b"not parquet")
    result = CliRunner().invoke(main, ["calibrate", str(out)])
    assert result.exit_code == 2 and "state/labels.parquet" in result.output and "checksum" in result.output


def test_carried_labels_apply_to_their_own_run_and_given_labels_to_all(tmp_path):
    from keyfarm.scoring.calibrate import carried_labels

    day1, day2 = _out_dir(tmp_path / "d1"), _out_dir(tmp_path / "d2")
    _carry(day2, pd.DataFrame({"account_id": ["b1", "b2"], "label": "benign", "source": "revert",
                               "ts": "2026-11-20T00:00:00+00:00"}))
    given = pd.DataFrame({"account_id": ["a1", "b1"], "label": ["farm", "farm"], "ts": ["2026-11-01"] * 2})
    labels = pd.concat([given, *carried_labels([day1, day2])], ignore_index=True)
    frame = labelled_clusters([day1, day2], labels).set_index(["out_dir", "cluster_id"])["y"]
    # day 1 knows only the given labels; on day 2 the carried (later) revert wins for b1
    assert frame.to_dict() == {(str(day1), 1): 1, (str(day1), 2): 1, (str(day2), 1): 1, (str(day2), 2): 0}
