"""What an ensemble run records: ``ensemble/summary.json`` (the dict ``run_ensemble`` returns,
read by the pipeline's summary, the report and pseudo-labelling) and ``ensemble/weights.json``
(everything needed to apply the same blend again: weights, thresholds, normalisers; written by
:meth:`~.fitted_blend.FittedBlend.save`)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config
from ..inference.new_prior import new_first_share
from .classifier_model import CLASSIFIER_NAME
from .fitted_blend import FittedBlend

if TYPE_CHECKING:
    from .driver import BlendedQueries, TunedBlend
    from .model_scores import ModelScores

__all__ = ["ensemble_summary", "save_blend"]


def _threshold_rule(cfg: Config) -> str:
    if cfg.predict.new_prior is not None:
        return "prior"
    return "fixed" if cfg.predict.new_whale_threshold is not None else "tuned"


def ensemble_summary(cfg: Config, s: ModelScores, tb: TunedBlend, val: BlendedQueries, test: BlendedQueries,
                     estimate: dict, per_bin: list, *, layout: str, submission: Path, notes: list[str]) -> dict:
    """``summary.json``: per model its validation MAP@5, threshold and weight; the blend's
    scores, thresholds and expected test MAP@5; the shares called new; the run's notes."""
    tuning, outer, mix = tb.tuning, tb.outer, tb.mix
    return {
        "models": {
            t.name: {
                "family": t.family,
                "val_map5": tuning.single_map5[t.name],
                "threshold": tuning.single_threshold[t.name],
                "trial_val_map5": t.result.get("val_map5"),
                "weight": tuning.weights[t.name],
                "val_map5_by_bin": bins,
            }
            for t, bins in zip(s.trials, per_bin)
        },
        "ensemble": {"val_map5": tuning.val_map5, "cv_map5": tuning.cv_map5, "threshold": tb.threshold,
                     "test_threshold": test.threshold,
                     "expected_test_map5": outer.map5 if outer else None,
                     "expected_test_map5_std": outer.std if outer else None},
        "expected_test_map5": outer.map5 if outer else None,
        "expected_test_map5_std": outer.std if outer else None,
        "outer": outer.to_dict() if outer else None,
        "expected_test_map5_low": estimate.get("low"),
        "expected_test_map5_high": estimate.get("high"),
        "estimate": estimate or None,
        "val_map5": tuning.val_map5,
        "best_single": max(s.names, key=lambda n: tuning.single_map5[n]),
        "weights": tuning.weights,
        "threshold": tb.threshold,
        "test_threshold": test.threshold,
        "threshold_rule": _threshold_rule(cfg),
        "new_prior": cfg.predict.new_prior,
        "val_new_first_share": new_first_share(val.blended, tb.threshold),
        "test_new_first_share": new_first_share(test.blended, test.threshold),
        "val_new_share": float((s.truth_idx == -1).mean()) if len(s.truth_idx) else 0.0,
        "test_mix": None if mix is None else mix.to_dict(),
        "layout": layout,
        "optuna_trials": tuning.n_trials,
        "study": tuning.study_name,
        "n_val": int(len(s.val_images)),
        "n_test": int(len(s.test_images)),
        "submission": str(submission),
        "notes": notes,
    }


def save_blend(run_dir: Path, cfg: Config, s: ModelScores, tb: TunedBlend, test: BlendedQueries) -> Path:
    """``weights.json`` through :meth:`FittedBlend.save`: the blend as fitted (weights, thresholds,
    both sets of normalisers, the models whose test scores come from their final fit) and how it
    was tuned."""
    tuning, outer, names = tb.tuning, tb.outer, s.names
    val_side = FittedBlend(names, tuning.weights, s.norms, tb.threshold, cfg.predict.new_prior,
                           tuple(sorted(s.refit - {CLASSIFIER_NAME})))
    test_side = dataclasses.replace(val_side, normalizers=s.test_norms, threshold=test.threshold)
    return val_side.save(run_dir, test_side, tuning={
        "val_map5": tuning.val_map5,
        "cv_map5": tuning.cv_map5,
        "expected_test_map5": outer.map5 if outer else None,
        "expected_test_map5_std": outer.std if outer else None,
        "outer_folds": len(outer.folds) if outer else 0,
        "folds": cfg.ensemble.folds,
        "seed": cfg.ensemble.seed,
        "study": tuning.study_name,
        "optuna_trials": tuning.n_trials,
    })
