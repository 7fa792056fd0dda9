"""Evaluation metrics against a hand-checked verdict."""
from __future__ import annotations

import pandas as pd
import pytest

from keyfarm.evaluate import evaluate, evaluate_frames, format_report
from keyfarm.errors import KeyfarmInputError

TRUTH = pd.DataFrame({
    "key_id": ["a", "b", "c", "d", "e", "f", "g", "h"],
    "farm_id": ["F1", "F1", "F1", "F2", "F2", None, None, None],
    "pattern": ["naive", "naive", "naive", "tiny", "tiny", "plain", "campus_nat", "campus_nat"],
})
# cluster 1 = a, b, f (flagged); cluster 2 = c (own); cluster 3 = d, e, g (not flagged); h alone
MEMBERS = pd.DataFrame({"key_id": list("abcdefgh"), "cluster_id": [1, 1, 2, 3, 3, 1, 3, 4]})
CLUSTERS = pd.DataFrame({"cluster_id": [1, 3], "flagged": [True, False]})


def test_key_level_and_bcubed_metrics():
    m = evaluate_frames(MEMBERS, CLUSTERS, TRUTH)
    assert m["flagged_keys"] == 3
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 5)
    assert m["f1"] == pytest.approx(2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5))
    # B-cubed precision over flagged keys a, b (2/3 each), f (1/3)
    assert m["bcubed_precision"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 3) / 3)
    # B-cubed recall over farm keys: a, b → 2/3; c → 1/3; d, e unflagged → 1/2 each
    assert m["bcubed_recall"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1 / 2 + 1 / 2) / 5)
    assert m["recall_by_tactic"]["naive"]["recall"] == pytest.approx(2 / 3)
    assert m["recall_by_tactic"]["tiny"]["recall"] == 0
    assert m["false_positives_by_pattern"]["plain"] == {"keys": 1, "flagged": 1, "rate": 1.0,
                                                        "review": 0, "review_rate": 0.0}
    assert m["false_positives_by_pattern"]["campus_nat"]["flagged"] == 0
    assert m["farms"] == 2 and m["farms_found"] == 1
    assert "naive" in format_report(m)


def test_keys_under_review_are_counted_apart_from_farm():
    clusters = CLUSTERS.assign(verdict=["farm", "review"])
    m = evaluate_frames(MEMBERS, clusters, TRUTH)
    assert m["flagged_keys"] == 3 and m["review_keys"] == 3           # d, e, g
    assert m["false_positives_by_pattern"]["campus_nat"] == {"keys": 2, "flagged": 0, "rate": 0.0,
                                                             "review": 1, "review_rate": 0.5}
    assert "review" in format_report(m)


def test_missing_member_is_an_input_error():
    with pytest.raises(KeyfarmInputError, match="truth key 'h' has no cluster"):
        evaluate_frames(MEMBERS.iloc[:-1], CLUSTERS, TRUTH)


def test_evaluate_reads_an_out_dir(tmp_path):
    MEMBERS.to_parquet(tmp_path / "members.parquet")
    CLUSTERS.to_parquet(tmp_path / "clusters.parquet")
    TRUTH.to_parquet(tmp_path / "truth.parquet")
    assert evaluate(tmp_path, tmp_path / "truth.parquet")["flagged_keys"] == 3
    with pytest.raises(KeyfarmInputError, match="not found"):
        evaluate(tmp_path / "nowhere", tmp_path / "truth.parquet")
