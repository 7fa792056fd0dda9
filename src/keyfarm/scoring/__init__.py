"""Verdicts (scores stage): cluster features, farm/review/clear, calibration, explanations.

One module each: `features` (per-key aggregates and the features of every cluster), `verdict`
(the verdict model: scaled features → calibrated score → farm / review / clear), `explain` (one
sentence of evidence per cluster), `calibrate` (fitting the model on labelled clusters). Names are
imported on first use (the configuration needs `ScoringConfig` without the Numba kernels).
"""
_LAZY = {"KeyActivity": "features", "activity_span": "features", "cluster_features": "features",
         "key_activity": "features", "weakest_links": "features", "CONTROL_FEATURES": "verdict",
         "FEATURE_SIGNS": "verdict", "MODEL_FEATURES": "verdict", "ScoringConfig": "verdict", "feature_scales": "verdict",
         "score_clusters": "verdict"}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"keyfarm.scoring.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'keyfarm.scoring' has no attribute {name!r}")
