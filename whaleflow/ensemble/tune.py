"""Optuna tuning of blend weights and the new_whale threshold for MAP@5, cross-validated.

**What is tuned.** One weight in [0, 1] per model (normalised to sum to 1: only the
proportions matter, and the blend stays on the normalised scale) and the threshold.

**Why cross-validated, and how.** Validation is the only labelled data the models
never trained on, and both the weights and the threshold are fitted to it; tuned on
all of it and scored on all of it, a blend looks better than it is. So each Optuna
trial is scored by *out-of-fold* MAP@5: validation images are split into K folds
(stratified, so each fold has the same share of new_whale), and for every fold the
threshold is tuned on the other K−1 folds and then scored on the held-out fold. The
mean over all images of those held-out scores is the objective; a weight vector only
wins if the threshold it needs carries over to images it was not tuned on. (The M
weights themselves are chosen on all of validation; with a handful of models that
is few degrees of freedom, and nesting a second CV loop would halve the data again.)

**After the search** the weights of the best trial are kept and the final threshold
is tuned on all of validation for them. Every single model is enqueued as a one-hot
trial (plus equal weights), and as a last guard the blend is compared with each
single model on all of validation: if a single model scores higher there, its
one-hot weights are used instead, with a note. So the ensemble never reports less
than the best single model.

**Thresholds are exact** (:mod:`whaleflow.inference.ranked`): every distinct top-k score is a candidate.

**Weighted rows.** With ``row_weights`` (:mod:`.gallery_mix`) every MAP@5 here — the
objective, the thresholds, the single-model guard — is the weighted mean, so the
blend is chosen for the test queries' expected mix of gallery sizes.

**A prior instead of a tuned threshold.** With ``prior`` (``predict.new_prior``) the
threshold is not fitted at all: on whatever queries are scored it is set so that
that share of them gets new_whale first (:mod:`whaleflow.inference.new_prior`); the
weights are tuned for the MAP@5 that rule gives.

**How good is the whole choice?** The reported ``cv_map5`` still comes from weights
chosen on all of validation. :mod:`.outer` repeats this whole function on outer
folds and scores each held-out fold with what the others chose: that figure is the
expected test MAP@5.

**Storage.** The study lives in SQLite (``RDBStorage``) under a name derived from the
models and their validation scores, with ``load_if_exists``: a rerun on the same
trials continues the study (each run adds ``trials`` more), a changed set of models
starts a new study in the same file; with no ``storage_path`` (the outer folds) it
lives in memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..inference.new_prior import prior_threshold
from .blend import blend_matrices
from .blend_study import StudyRun, run_study, study_name_of, within_se
from ..inference.ranked import RankedTopK, best_threshold

#: how the weights are taken from the study (``ensemble.choice``)
CHOICES = ("best", "within_se")

__all__ = ["CHOICES", "BlendTuning", "RankedTopK", "best_threshold", "cv_map5", "make_folds", "tune_blend"]


# ----------------------------------------------------------------------------- folds


def make_folds(truth_idx: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold id per validation image, new_whale and known images spread evenly."""
    truth_idx = np.asarray(truth_idx)
    n = len(truth_idx)
    k = max(1, min(int(folds), n))
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=np.int64)
    offset = 0
    for group in (np.flatnonzero(truth_idx == -1), np.flatnonzero(truth_idx != -1)):
        perm = rng.permutation(group)
        out[perm] = (np.arange(len(perm)) + offset) % k
        offset += len(perm)
    return out


def cv_map5(ranked: RankedTopK, fold_ids: np.ndarray, fixed_threshold: float | None = None,
            prior: float | None = None) -> float:
    """Out-of-fold (weighted) MAP@5: each fold scored at the threshold tuned on the other folds
    (a fixed threshold or the prior rule needs no tuning: all rows at once)."""
    n = len(fold_ids)
    if n == 0 or not ranked.total_weight > 0:
        return 0.0
    if fixed_threshold is not None:
        return ranked.map_at(fixed_threshold)
    if prior is not None:
        return ranked.map_at(prior_threshold(ranked.values[:, 0], prior))
    ids = np.unique(fold_ids)
    if len(ids) < 2:
        return best_threshold(ranked)[1]
    total = 0.0
    for f in ids:
        held = fold_ids == f
        t, _ = best_threshold(ranked.subset(~held))
        part = ranked.subset(held)
        total += part.map_at(t) * part.total_weight
    return total / ranked.total_weight


# ----------------------------------------------------------------------------- Optuna


@dataclass
class BlendTuning:
    weights: dict[str, float]
    threshold: float
    val_map5: float                      # all of validation, final threshold
    cv_map5: float                       # out-of-fold objective of the chosen weights
    single_map5: dict[str, float]        # each model alone, own threshold on all of validation
    single_threshold: dict[str, float]
    n_trials: int = 0                    # trials in the study after this run
    study_name: str | None = None
    notes: list[str] = field(default_factory=list)


def _evaluate(scores: np.ndarray, truth_idx: np.ndarray, fixed: float | None,
              prior: float | None = None, row_weights: np.ndarray | None = None) -> tuple[float, float]:
    ranked = RankedTopK.from_scores(scores, truth_idx, weights=row_weights)
    if prior is not None:
        fixed = prior_threshold(ranked.values[:, 0], prior)
    return (fixed, ranked.map_at(fixed)) if fixed is not None else best_threshold(ranked)


def _checked_names(matrices, names: Sequence[str], choice: str) -> list[str]:
    """The model names, after checking they match the matrices one to one and ``choice`` is known."""
    if choice not in CHOICES:
        raise ValueError(f"unknown blend choice {choice!r}: use one of {CHOICES}")
    names = list(names)
    if len(names) != len(matrices) or not names:
        raise ValueError(f"{len(matrices)} matrices for {len(names)} model names")
    if len(set(names)) != len(names):
        raise ValueError(f"model names are not unique: {names}")
    return names


def tune_blend(
    matrices: Sequence[np.ndarray],
    truth_idx: np.ndarray,
    names: Sequence[str],
    *,
    trials: int,
    folds: int,
    seed: int,
    storage_path: str | Path | None,
    fixed_threshold: float | None = None,
    prior: float | None = None,
    progress: bool = True,
    row_weights: np.ndarray | None = None,
    choice: str = "best",
) -> BlendTuning:
    """Tune weights (Optuna, CV objective) and the final threshold over aligned,
    normalised validation matrices of the models called ``names`` (every MAP@5 weighted
    by ``row_weights`` when given). ``choice``: keep the best trial's weights, or
    (``within_se``) average the weights of every trial within one standard error of it."""
    names = _checked_names(matrices, names, choice)
    truth_idx = np.asarray(truth_idx, dtype=np.int64)
    fold_ids = make_folds(truth_idx, folds, seed)
    notes: list[str] = []
    singles = {n: _evaluate(m, truth_idx, fixed_threshold, prior, row_weights) for n, m in zip(names, matrices)}

    def cv_of(weights) -> float:
        ranked = RankedTopK.from_scores(blend_matrices(matrices, weights), truth_idx, weights=row_weights)
        return cv_map5(ranked, fold_ids, fixed_threshold, prior)

    n_total, study_name = 0, None
    if len(names) == 1:
        weights = np.array([1.0])
        notes.append("one model: weight 1, only the threshold is tuned")
    else:
        study_name = study_name_of(names, matrices, truth_idx, len(np.unique(fold_ids)), seed, fixed_threshold, prior,
                                   row_weights)
        keys = [f"w_{n}" for n in names]

        def objective(trial) -> float:
            w = np.array([trial.suggest_float(key, 0.0, 1.0) for key in keys])
            if not w.sum() > 0:
                w = np.ones(len(keys))
            return cv_of(w)

        run = run_study(objective, keys, study_name, storage_path, trials=trials, seed=seed, progress=progress)
        n_total = run.n_total
        if run.before:
            notes.append(f"continued Optuna study {study_name}: {run.before} earlier trials, {run.n_run} new")
        weights = _chosen_weights(run, keys, matrices, truth_idx, fixed_threshold, prior, row_weights, choice, notes)
    weights = weights / weights.sum()
    return _final_blend(matrices, truth_idx, names, weights, singles, cv_of, fixed_threshold, prior, row_weights,
                        choice, n_total=n_total, study_name=study_name, notes=notes)


def _chosen_weights(run: StudyRun, keys: list[str], matrices, truth_idx, fixed: float | None, prior: float | None,
                    row_weights, choice: str, notes: list[str]) -> np.ndarray:
    """The study's answer: the best trial's weights, or (``within_se``) the mean weights of the
    trials within one standard error of it."""
    w = np.array([run.best.params[k] for k in keys])
    weights = w if w.sum() > 0 else np.ones(len(keys))
    if choice == "within_se":
        se = _map5_se(blend_matrices(matrices, weights / weights.sum()), truth_idx, fixed, prior, row_weights)
        weights, kept = within_se(run.study.trials, keys, run.best.value - se)
        notes.append(f"blend weights: the mean over the {kept} Optuna trials within one standard error "
                     f"({se:.4f}) of the best CV MAP@5 {run.best.value:.4f}")
    return weights


def _final_blend(matrices, truth_idx, names: list[str], weights: np.ndarray, singles: dict, cv_of,
                 fixed: float | None, prior: float | None, row_weights, choice: str, *, n_total: int,
                 study_name: str | None, notes: list[str]) -> BlendTuning:
    """The final threshold on all of validation for the chosen weights, then the guard: if a
    single model scores higher there (by more than a standard error under ``within_se``), its
    one-hot weights are used instead, so the ensemble never reports less than the best model."""
    cv = cv_of(weights)
    threshold, full = _evaluate(blend_matrices(matrices, weights), truth_idx, fixed, prior, row_weights)
    best_single = max(names, key=lambda n: singles[n][1])
    margin = 0.0
    if choice == "within_se":  # the same tolerance against a single model as among blends
        margin = _map5_se(blend_matrices(matrices, weights), truth_idx, fixed, prior, row_weights)
    if singles[best_single][1] > full + margin:
        notes.append(f"the CV-chosen blend scored {full:.4f} on all of validation, below {best_single} "
                     f"alone ({singles[best_single][1]:.4f}); using {best_single} alone")
        weights = np.array([float(n == best_single) for n in names])
        threshold, full = singles[best_single]
        cv = cv_of(weights)
    return BlendTuning(
        weights={n: float(w) for n, w in zip(names, weights)},
        threshold=float(threshold),
        val_map5=float(full),
        cv_map5=float(cv),
        single_map5={n: float(v[1]) for n, v in singles.items()},
        single_threshold={n: float(v[0]) for n, v in singles.items()},
        n_trials=n_total,
        study_name=study_name,
        notes=notes,
    )


def _map5_se(scores: np.ndarray, truth_idx: np.ndarray, fixed: float | None, prior: float | None,
             row_weights: np.ndarray | None) -> float:
    """Standard error of a blend's (weighted) MAP@5 over validation queries, at its own threshold."""
    ranked = RankedTopK.from_scores(scores, truth_idx, weights=row_weights)
    threshold, mean = _evaluate(scores, truth_idx, fixed, prior, row_weights)
    ap, w = ranked.ap_at(threshold), ranked.w
    n_eff = w.sum() ** 2 / max(float((w ** 2).sum()), 1e-12)
    var = float((w * (ap - mean) ** 2).sum() / max(w.sum(), 1e-12))
    return float(np.sqrt(var / max(n_eff, 1.0)))
