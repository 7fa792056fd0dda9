"""Verdicts (scores stage): cluster features, farm/review/clear, calibration, explanations.

One module each: `features` (per-key aggregates and the features of every cluster), `verdict`
(the verdict model: scaled features → calibrated score → farm / review / clear), `explain` (one
sentence of evidence per cluster), `calibrate` (fitting the model on labelled clusters).
"""
from keyfarm.scoring.features import (KeyActivity, activity_span, cluster_features, key_activity,
                                      weakest_links)
from keyfarm.scoring.verdict import (CONTROL_FEATURES, MODEL_FEATURES, ScoringConfig, feature_scales,
                                     score_clusters)

__all__ = ["CONTROL_FEATURES", "KeyActivity", "MODEL_FEATURES", "ScoringConfig", "activity_span",
           "cluster_features", "feature_scales", "key_activity", "score_clusters", "weakest_links"]
