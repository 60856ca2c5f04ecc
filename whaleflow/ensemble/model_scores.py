"""Every blended model's class scores, checked, normalised and laid on common columns.

Per model the validation scores fit a normaliser (:mod:`.normalize`) that is then applied
unchanged to the test scores — unless the test scores come from another fit (the
classifier's train+val refit, a model's final fit under ``train.final_fit``): then that
fit's own test scores fit its normaliser, since a normaliser (and a threshold) only
describe the fit they were measured on. Files are dense or top-K; :mod:`.score_space`
gives the blend's columns either way.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Config
from ..errors import DataError
from ..final_fit import final_test_scores
from ..inference.topk_scores import load_class_scores
from ..local.local_trial import LOCAL_NAME
from .classifier_model import CLASSIFIER_NAME
from .normalize import ScoreNormalizer
from .score_space import ScoreSpace, build_space, fit_normalizer, truth_of
from .trials import TrialArtifacts

__all__ = ["ModelScores", "load_model_scores"]


@dataclass
class ModelScores:
    """The blend's inputs: one ``(queries, columns)`` matrix per model for each query set."""

    trials: list[TrialArtifacts]
    val_images: np.ndarray
    test_images: np.ndarray
    val_space: ScoreSpace
    test_space: ScoreSpace
    mats_val: list[np.ndarray]
    mats_test: list[np.ndarray]
    truth: np.ndarray                       # validation truth labels, per validation image
    truth_idx: np.ndarray                   # the same as blend columns (-1 new_whale, -2 absent)
    norms: dict[str, ScoreNormalizer]       # fitted on each model's validation scores
    test_norms: dict[str, ScoreNormalizer]  # the test scores' own where they come from another fit
    refit: set[str]                         # models whose test scores come from another fit

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.trials]


def _covers(scores, images: np.ndarray) -> bool:
    return set(map(str, images)) <= set(map(str, scores.images))


def _keep_covering(trials, vals, tests, notes: list[str], run_dir: Path):
    """The models that score every validation and test image of the first one (and some class)."""
    val_images, test_images = np.asarray(vals[0].images).astype(str), np.asarray(tests[0].images).astype(str)
    keep = []
    for i, t in enumerate(trials):
        if _covers(vals[i], val_images) and _covers(tests[i], test_images) and len(vals[i].classes):
            keep.append(i)
        else:
            notes.append(f"trial {t.name}: does not score the same validation/test images as {trials[0].name}, left out")
    if not keep:
        raise DataError("no trial has usable class scores.", file=run_dir / "trials")
    return [trials[i] for i in keep], [vals[i] for i in keep], [tests[i] for i in keep], val_images, test_images


def _use_final_fits(run_dir: Path, trials, tests: list, test_images: np.ndarray, notes: list[str]) -> set[str]:
    """Swap in each model's final-fit test scores (``train.final_fit``) where a complete one
    exists; returns the models whose test scores now come from another fit than their
    validation scores (the classifier always does: it is refitted on train + val)."""
    refit = {CLASSIFIER_NAME}
    for i, t in enumerate(trials):
        if t.name == LOCAL_NAME:
            continue  # verified against every labelled photo already: nothing to refit
        path = final_test_scores(run_dir, t.name) if t.name != CLASSIFIER_NAME else None
        if path is None and t.name != CLASSIFIER_NAME:
            notes.append(f"trial {t.name}: no finished final fit; its test scores are the validated trial's")
        elif path is not None:
            final = load_class_scores(path)
            if _covers(final, test_images):
                tests[i] = final
                refit.add(t.name)
            else:
                notes.append(f"trial {t.name}: its final fit does not score every test image; not used")
    used = sorted(refit - {CLASSIFIER_NAME})
    if used:
        notes.append(f"test scores from the final fits (train + val) of {', '.join(used)}")
    return refit


def load_model_scores(cfg: Config, run_dir: Path, trials: list[TrialArtifacts], notes: list[str]) -> ModelScores:
    """Load every trial's scores, keep those that cover the common query sets, swap in final
    fits, normalise and build the validation and test score spaces (notes appended)."""
    vals = [load_class_scores(t.path / "scores_val.npz") for t in trials]
    tests = [load_class_scores(t.path / "scores_test.npz") for t in trials]
    trials, vals, tests, val_images, test_images = _keep_covering(trials, vals, tests, notes, run_dir)
    if vals[0].truth is None:
        raise DataError("validation scores carry no truth labels.", file=trials[0].path / "scores_val.npz")
    refit = _use_final_fits(run_dir, trials, tests, test_images, notes) if cfg.train.final_fit else {CLASSIFIER_NAME}
    # scores a trial says are never probabilities (log match counts) are never read as such
    norms = {t.name: fit_normalizer(v, logit=None if t.probability_like else False) for t, v in zip(trials, vals)}
    test_norms = {t.name: fit_normalizer(s, logit=norms[t.name].logit) if t.name in refit and len(s.images)
                  else norms[t.name] for t, s in zip(trials, tests)}
    val_space, mats_val = build_space(vals, [norms[t.name] for t in trials], val_images)
    test_space, mats_test = build_space(tests, [test_norms[t.name] for t in trials], test_images)
    truth = truth_of(vals, val_images)
    if val_space.cand is not None:
        notes.append(f"top-K class scores: blended over each query's {val_space.cand.shape[1]} (validation) and "
                     f"{test_space.cand.shape[1]} (test) candidate classes at most")
    return ModelScores(trials=trials, val_images=val_images, test_images=test_images, val_space=val_space,
                       test_space=test_space, mats_val=mats_val, mats_test=mats_test, truth=truth,
                       truth_idx=val_space.truth_indices(truth), norms=norms, test_norms=test_norms, refit=refit)
