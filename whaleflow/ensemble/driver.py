"""The ensemble driver: finished trials → classifier model → tuned blend → submission.

It reads only artifacts from ``RUN_DIR/trials/<name>/`` (class scores and
embeddings), never a network, so it runs anywhere — as the last Ray task of a run or
by hand on a copied run folder. Its steps, each a function below or a module of its own:
the models to blend (:mod:`.trials`), their scores normalised and aligned on a common
class list and image order (:mod:`.model_scores`), Optuna picking weights and the
new_whale threshold by cross-validated MAP@5 (:mod:`.tune`) — or the threshold following
``predict.new_prior`` on each query set (validation, test) by itself —, the validation and
test outputs by the fitted blend's predict (:mod:`.fitted_blend`, which ``identify`` runs too), the expected-score range (:mod:`.estimate_range`), the submission in the
data's layout (``prepared/summary.json``) and the run's record (:mod:`.ensemble_record`).

Written under ``RUN_DIR``: ``submission.csv`` and, in ``ensemble/``, ``weights.json``
(weights, threshold, normalisers), ``threshold_curve.csv`` (threshold, map5 of the
final blend on validation), ``val_predictions.csv`` (per validation image: truth,
top-5, position of the hit; for galleries), ``summary.json`` (the returned dict)
``optuna.db`` (the study, continued by a rerun) and ``calibration.json`` (how likely each
query's top candidate is right; :mod:`whaleflow.identify.run_calibration`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..config import Config
from ..identify.run_calibration import fit_run_calibration
from ..io import write_csv, write_json
from ..submission import write_submission
from .ensemble_record import ensemble_summary, save_blend
from .fitted_blend import FittedBlend
from .estimate_range import EstimateEvidence, model_bins, range_note, run_estimate
from .gallery_mix import GalleryMix, mix_text, run_gallery_mix
from .model_scores import ModelScores, load_model_scores
from .outer import OuterEstimate, outer_estimate
from .trials import TrialArtifacts, find_trials, gather_trials
from .tune import BlendTuning, RankedTopK, tune_blend

__all__ = ["TrialArtifacts", "find_trials", "run_ensemble", "apply_duplicates", "data_layout"]


def apply_duplicates(labels: Sequence[str], first: Sequence[str], k: int = 5) -> list[str]:
    """``first`` (in order, without repeats or blanks) then the rest of ``labels``, cut to k."""
    out: list[str] = []
    for lab in list(first) + list(labels):
        if lab and lab not in out:
            out.append(lab)
    return out[:k]


def data_layout(run_dir: str | Path) -> str:
    """The layout ``prepare`` found (kaggle, happywhale, individual); kaggle for older folders."""
    path = Path(run_dir) / "prepared" / "summary.json"
    if path.is_file():
        return str(json.loads(path.read_text(encoding="utf-8")).get("layout") or "kaggle")
    return "kaggle"


@dataclass
class TunedBlend:
    """The chosen weights (``tuning.weights``) and threshold, how they were found and the outer
    estimate of their score."""

    tuning: BlendTuning
    threshold: float                   # new_whale threshold on the normalised validation blend
    outer: OuterEstimate | None        # nested-CV estimate of the test MAP@5 (None: off)
    mix: GalleryMix | None             # expected test mix of gallery sizes (None: test_mix validation)
    row_weights: np.ndarray | None     # each validation query's weight to that mix


@dataclass
class BlendedQueries:
    """One query set's blended scores, threshold and top-5 labels."""

    blended: np.ndarray
    threshold: float
    predictions: list[list[str]]


def _threshold_notes(cfg: Config, notes: list[str]) -> None:
    """Say when the new_whale threshold is not tuned (fixed, or set by the expected new share)."""
    fixed, prior = cfg.predict.new_whale_threshold, cfg.predict.new_prior
    if fixed is not None:
        notes.append(f"new_whale threshold fixed at {fixed} by predict.new_whale_threshold "
                     "(on the normalised blend scale); only weights are tuned")
    if prior is not None:
        notes.append(f"new-individual threshold by predict.new_prior: the {100 * prior:.0f} % least confident "
                     "queries of each set (validation, test) get it first; only weights are tuned")


def tune(cfg: Config, run_dir: Path, s: ModelScores, notes: list[str], *, progress: bool) -> TunedBlend:
    """Weights and threshold by cross-validated MAP@5 (validation queries weighted to the
    expected test mix when ``ensemble.test_mix: gallery``), then the outer-fold estimate of
    what that choice scores on queries it never saw."""
    ecfg = cfg.ensemble
    fixed, prior = cfg.predict.new_whale_threshold, cfg.predict.new_prior
    _threshold_notes(cfg, notes)
    names = s.names
    mix = run_gallery_mix(cfg, run_dir, s.val_images, s.truth_idx)
    row_w = mix.weights if mix is not None else None
    if mix is not None:
        notes.append(f"expected test MAP@5 with validation queries weighted to the expected test mix of "
                     f"{mix_text(mix.to_dict())}")
    tuning = tune_blend(s.mats_val, s.truth_idx, names, trials=ecfg.trials, folds=ecfg.folds, seed=ecfg.seed,
                        storage_path=run_dir / "ensemble" / "optuna.db", fixed_threshold=fixed, prior=prior,
                        progress=progress, row_weights=row_w if ecfg.weigh_choice else None, choice=ecfg.choice)
    notes.extend(tuning.notes)
    outer = outer_estimate(s.mats_val, s.truth_idx, names, outer_folds=ecfg.outer_folds, trials=ecfg.trials,
                           folds=ecfg.folds, seed=ecfg.seed, fixed_threshold=fixed, prior=prior,
                           row_weights=row_w, weighted_choice=ecfg.weigh_choice, choice=ecfg.choice)
    if outer is not None:
        notes.append(f"expected test MAP@5 {outer.map5:.4f} ± {outer.std:.4f} (std over {len(outer.folds)} outer "
                     f"folds, each scored with the weights and threshold chosen on the others); the in-sample "
                     f"validation MAP@5 of the chosen blend is {tuning.val_map5:.4f}")
    return TunedBlend(tuning=tuning, threshold=tuning.threshold, outer=outer, mix=mix, row_weights=row_w)


def blend_validation(ens_dir: Path, s: ModelScores, tb: TunedBlend) -> tuple[BlendedQueries, RankedTopK]:
    """The fitted blend's predict on the validation queries: ``val_predictions.csv`` (per query its top five and
    the hit's position, for the galleries and the pseudo-label floor) and
    ``threshold_curve.csv`` (MAP@5 against the new_whale threshold)."""
    pred = FittedBlend(s.names, tb.tuning.weights, s.norms, tb.threshold).predict_aligned(s.val_space, s.mats_val)
    blended_val, val_pred = pred.blended, pred.predictions
    hit = [next((j + 1 for j, lab in enumerate(p) if lab == tr), 0) for p, tr in zip(val_pred, s.truth)]
    write_csv(ens_dir / "val_predictions.csv", pd.DataFrame({
        "image": s.val_images, "truth": s.truth, "top5": [" ".join(p) for p in val_pred], "hit_position": hit,
        "top1_score": blended_val.max(axis=1),
        # each query's weight to the expected test mix (1 for all with test_mix: validation):
        # the pseudo-label precision floor is calibrated with it
        "weight": tb.row_weights if tb.row_weights is not None else np.ones(len(s.val_images)),
    }))
    ranked = RankedTopK.from_scores(blended_val, s.truth_idx)
    lo, hi = float(ranked.values.min()), float(ranked.values.max())
    span = max(hi - lo, 1e-6)
    grid = np.unique(np.r_[np.linspace(lo - 0.05 * span, hi + 0.05 * span, 200), tb.threshold])
    write_csv(ens_dir / "threshold_curve.csv", pd.DataFrame({"threshold": grid, "map5": ranked.curve(grid)}))
    return BlendedQueries(blended_val, tb.threshold, val_pred), ranked


def blend_test(ens_dir: Path, cfg: Config, s: ModelScores, tb: TunedBlend) -> tuple[BlendedQueries, np.ndarray, list[str]]:
    """The fitted blend's predict on the test queries (threshold by ``predict.new_prior`` on them
    when set; the test side's normalisers, which ``identify`` uses too) and
    ``test_top.csv``, each query's best known individual: what pseudo-labelling picks from.
    Returns the blend, each query's top score and top label."""
    fitted = FittedBlend(s.names, tb.tuning.weights, s.test_norms, tb.threshold, cfg.predict.new_prior)
    pred = fitted.predict_aligned(s.test_space, s.mats_test, prior_on_queries=True)
    blended_test, test_threshold, test_pred = pred.blended, pred.threshold, pred.predictions
    top1 = blended_test.max(axis=1) if blended_test.shape[1] else np.zeros(len(s.test_images), np.float32)
    top_labels = s.test_space.top_labels(blended_test)
    write_csv(ens_dir / "test_top.csv", pd.DataFrame({
        "image": s.test_images, "label": top_labels, "score": top1, "new_first": top1 < np.float32(test_threshold)}))
    return BlendedQueries(blended_test, test_threshold, test_pred), top1, top_labels


def estimate(cfg: Config, run_dir: Path, s: ModelScores, tb: TunedBlend, val: BlendedQueries, ranked: RankedTopK,
             test: BlendedQueries, top1: np.ndarray, top_labels: list[str], notes: list[str]):
    """The run's expected test MAP@5 range and each model's validation MAP@5 per gallery-size bin."""
    est, val_sizes = run_estimate(cfg, run_dir, tb.outer, s.val_images, s.truth_idx, top_labels, EstimateEvidence(
        val_top=[p[0] for p in val.predictions], val_score=val.blended.max(axis=1), val_ap=ranked.ap_at(tb.threshold),
        threshold=tb.threshold, test_score=top1, test_threshold=test.threshold,
        path=run_dir / "ensemble" / "estimate_inputs.npz"), mix=tb.mix)
    per_bin = (model_bins(s.mats_val, s.truth_idx, [tb.tuning.single_threshold[n] for n in s.names], val_sizes)
               if val_sizes is not None else [None] * len(s.names))
    if est:
        notes.append(range_note(est))
    return est, per_bin


def submit(cfg: Config, run_dir: Path, s: ModelScores, test: BlendedQueries,
           test_duplicates: Mapping[str, Sequence[str]] | None, layout: str, notes: list[str]) -> Path:
    """``submission.csv`` in ``layout``, near-duplicates of labelled photos put first
    (``predict.use_duplicates``): a duplicate's label is surer than any model."""
    predictions = {im: list(p) for im, p in zip(s.test_images, test.predictions)}
    if cfg.predict.use_duplicates and test_duplicates:
        used = 0
        for im, labels in test_duplicates.items():
            if im in predictions and labels:
                predictions[im] = apply_duplicates(predictions[im], labels)
                used += 1
        notes.append(f"near-duplicates of labelled images put first for {used} test images")
    return write_submission(run_dir / "submission.csv", predictions, list(s.test_images), layout=layout)


def run_ensemble(
    cfg: Config,
    run_dir: str | Path,
    *,
    progress: bool = True,
    test_duplicates: Mapping[str, Sequence[str]] | None = None,
    layout: str | None = None,
) -> dict:
    """Blend every finished trial of ``run_dir`` (plus the classifier) and write the submission
    (in ``layout``'s format; by default the one ``prepared/summary.json`` names)."""
    run_dir = Path(run_dir)
    ens_dir = run_dir / "ensemble"
    trials, notes = gather_trials(cfg, run_dir)
    s = load_model_scores(cfg, run_dir, trials, notes)
    tb = tune(cfg, run_dir, s, notes, progress=progress and not cfg.output.quiet)
    val, ranked = blend_validation(ens_dir, s, tb)
    test, top1, top_labels = blend_test(ens_dir, cfg, s, tb)
    est, per_bin = estimate(cfg, run_dir, s, tb, val, ranked, test, top1, top_labels, notes)
    layout = layout or data_layout(run_dir)
    submission = submit(cfg, run_dir, s, test, test_duplicates, layout, notes)
    summary = ensemble_summary(cfg, s, tb, val, test, est, per_bin, layout=layout, submission=submission, notes=notes)
    save_blend(run_dir, cfg, s, tb, test)
    write_json(ens_dir / "summary.json", summary)
    fit_run_calibration(run_dir, seed=cfg.ensemble.seed)  # p_correct for identify, from this blend's validation
    return summary
