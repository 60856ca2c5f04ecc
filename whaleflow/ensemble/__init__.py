"""Ensemble: normalise per-model class scores, blend them, tune weights and threshold.

``run_ensemble(cfg, run_dir)`` is the entry point: it reads every finished trial's
artifacts, adds the classifier on concatenated embeddings (approach 3) as one more
model, tunes the blend with cross-validated Optuna and writes the submission.
"""
from .blend import align_all, blend, blend_matrices, common_classes, normalize_weights
from .classifier_model import CLASSIFIER_NAME, ClassifierOutcome, build_classifier_model, gather_embeddings
from .driver import TrialArtifacts, apply_duplicates, find_trials, run_ensemble
from .normalize import ScoreNormalizer
from .tune import BlendTuning, RankedTopK, best_threshold, cv_map5, make_folds, tune_blend

__all__ = [
    "BlendTuning",
    "CLASSIFIER_NAME",
    "ClassifierOutcome",
    "RankedTopK",
    "ScoreNormalizer",
    "TrialArtifacts",
    "align_all",
    "apply_duplicates",
    "best_threshold",
    "blend",
    "blend_matrices",
    "build_classifier_model",
    "common_classes",
    "cv_map5",
    "find_trials",
    "gather_embeddings",
    "make_folds",
    "normalize_weights",
    "run_ensemble",
    "tune_blend",
]
