"""How sure is sure, per encounter: ``p_correct`` of an encounter's fused decision, fitted on encounters.

An encounter's fused log-probabilities (:func:`~.encounters.fuse`) are far sharper than
one photo's: three photos that each give their best individual 0.6 fuse to about 0.9.
The photo-level isotonic steps read at that fused probability would promise an error
the encounter does not have, so encounters get steps of their own, fitted the same way
(:func:`~.calibration.fit_top_steps`: pooled adjacent violators, each block shrunk to
(k + 1) / (n + 2), one fit for a known individual on top and one for "new") on
**validation encounters**:

* the validation queries of one known individual are shuffled and cut into encounters of
  2 to :data:`MAX_PHOTOS` photos (sizes drawn at random, as ``data.sightings`` draws
  them; an individual with one validation photo gives no encounter, a last photo left
  alone joins its neighbour's);
* the new queries (truth ``new_whale``) are cut the same way across all of them. Their
  true identities are unknown (a Kaggle-layout ``new_whale`` photo names no animal), so a
  validation "new" encounter mixes photos of different new animals. Those resemble
  *different* known lookalikes, while the photos of one real new animal tend to share
  one; so a real new encounter is merged into a lookalike more often than validation
  sees, and ``p_correct`` of encounters errs high.

A second bias: only individuals with two or more validation photos give encounters, and
those are the much-photographed ones, with large galleries, whose encounters are rarely
mistaken for new. Measured on the demo-sized seed-13 run (``benchmarks/field_workflow.py``,
80 sightings), the wrong encounters that ``p_correct`` would have accepted at 10 % were all
known animals called new (7 of 19); validation's 33 encounters could not back 10 % or
20 %, so identify accepted none there (:mod:`.rate_support`), and at 30 %, which they
did back, the sightings' encounters showed 29.4 % false (18.7–43.0 %).

Fitted once per fusion way (:data:`~.encounters.FUSIONS`), since the fused probability
means something else under each. The outer-fold check is per encounter: the encounters
are split into folds, and for each fold the temperature, the photo prior and the
encounter steps are all fitted on the photos and encounters of the other folds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .calibration import Calibration, IsotonicSteps, fit_top_steps, top_steps_p
from .encounters import FUSIONS, fuse
from .rate_support import fmr_check

MAX_PHOTOS = 4   # validation encounters have 2 to MAX_PHOTOS photos (the synthetic sightings' range)


def cut(rows: np.ndarray, rng: np.random.Generator, max_photos: int = MAX_PHOTOS) -> list[np.ndarray]:
    """``rows`` (already shuffled) cut into chunks of 2 to ``max_photos``; none of one photo."""
    out, start, left = [], 0, len(rows)
    while left >= 2:
        size = int(rng.integers(2, min(max_photos, left) + 1))
        if left - size == 1:  # never leave one photo alone: take it along, or leave two
            size = left if left <= max_photos else size - 1
        out.append(rows[start:start + size])
        start, left = start + size, left - size
    return out


def validation_encounters(truth: np.ndarray, seed: int = 0, max_photos: int = MAX_PHOTOS) -> list[np.ndarray]:
    """Row groups of validation queries forming encounters: per known individual (truth
    column >= 0), and across the new queries (-1); see the module docstring."""
    truth = np.asarray(truth, np.int64)
    rng = np.random.default_rng([seed, 28])
    groups = []
    for key in np.unique(truth[truth >= -1]):
        rows = np.flatnonzero(truth == key)
        groups += cut(rows[rng.permutation(len(rows))], rng, max_photos)
    return groups


def fused_outcomes(logp: np.ndarray, groups: list[np.ndarray], log_prior: np.ndarray | None) -> np.ndarray:
    """(encounters, outcomes) fused log-probabilities of each row group."""
    if not groups:
        return np.zeros((0, logp.shape[1]))
    return np.stack([fuse(logp[g], log_prior) for g in groups])


def encounter_right(fused: np.ndarray, truth: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """Whether each encounter's fused top outcome is its truth ("new" is the last column)."""
    target = np.array([truth[g[0]] for g in groups], np.int64)
    target = np.where(target == -1, fused.shape[1] - 1, target)
    return fused.argmax(axis=1) == target


@dataclass
class EncounterCalibration:
    """One fusion way's encounter calibration and its outer-fold check."""

    fusion: str
    steps: IsotonicSteps
    steps_new: IsotonicSteps | None
    oof_p: np.ndarray          # held-out p_correct per validation encounter
    oof_right: np.ndarray      # whether the fused top outcome that oof_p is about was right
    n_photos: np.ndarray       # photos per validation encounter

    def p_correct_from_logprobs(self, fused: np.ndarray) -> np.ndarray:
        """P(the encounter's fused top outcome is right)."""
        return top_steps_p(self.steps, self.steps_new, fused)

    def fmr_check(self, rate: float) -> dict:
        return fmr_check(self.oof_p, self.oof_right, rate)

    def to_dict(self) -> dict:
        return {"fusion": self.fusion, "steps": self.steps.to_dict(),
                "steps_new": self.steps_new.to_dict() if self.steps_new is not None else None,
                "oof_p": self.oof_p.round(6).tolist(), "oof_right": self.oof_right.astype(int).tolist(),
                "n_photos": self.n_photos.astype(int).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "EncounterCalibration":
        new = d.get("steps_new")
        return cls(str(d["fusion"]), IsotonicSteps.from_dict(d["steps"]), IsotonicSteps.from_dict(new) if new else None,
                   np.asarray(d["oof_p"], float), np.asarray(d["oof_right"], bool), np.asarray(d["n_photos"], int))


def _fused(calibration: Calibration, scores, threshold, groups, fusion):
    """Fused outcomes of ``groups`` under ``calibration`` and the fusion way."""
    log_prior = FUSIONS[fusion](calibration, scores.shape[1])
    return fused_outcomes(calibration.logprobs(scores, threshold), groups, log_prior)


def fit_encounter_calibration(scores: np.ndarray, truth: np.ndarray, threshold: float, calibration: Calibration,
                              fusion: str, *, folds: int = 5, seed: int = 0,
                              groups: list[np.ndarray] | None = None) -> EncounterCalibration | None:
    """The encounter calibration of one fusion way on validation (None: validation forms no
    encounter). ``calibration`` is the run's photo calibration, fitted on all of ``scores``;
    ``groups``: the validation encounters (row groups of one truth each) where they are known,
    else :func:`validation_encounters` draws them."""
    truth = np.asarray(truth, np.int64)
    groups = validation_encounters(truth, seed) if groups is None else groups
    if not groups:
        return None
    fused = _fused(calibration, scores, threshold, groups, fusion)
    right = encounter_right(fused, truth, groups)
    steps, steps_new = fit_top_steps(fused, right)
    part = np.random.default_rng([seed, 29]).permutation(len(groups)) % folds
    oof, oof_right = np.full(len(groups), np.nan), right.copy()
    for f in range(folds):
        held = part == f
        if held.all() or not held.any():
            continue
        photos_out = np.zeros(len(truth), bool)
        photos_out[np.concatenate([g for g, h in zip(groups, held) if h])] = True
        cal = Calibration.fit(scores[~photos_out], truth[~photos_out], threshold)
        f_fused = _fused(cal, scores, threshold, groups, fusion)
        kept = [g for g, h in zip(groups, held) if not h]
        s, s_new = fit_top_steps(f_fused[~held], encounter_right(f_fused[~held], truth, kept))
        oof[held] = top_steps_p(s, s_new, f_fused[held])
        # the decision that held-out p is about (bayes' prior, hence its decision, moves with the fold)
        oof_right[held] = encounter_right(f_fused[held], truth, [g for g, h in zip(groups, held) if h])
    return EncounterCalibration(fusion, steps, steps_new, oof, oof_right, np.array([len(g) for g in groups]))


def fit_encounter_calibrations(scores, truth, threshold, calibration, *, folds=5, seed=0) -> dict:
    """``fusion → EncounterCalibration`` for every fusion way that validation can fit."""
    out = {}
    for fusion in FUSIONS:
        fitted = fit_encounter_calibration(scores, truth, threshold, calibration, fusion, folds=folds, seed=seed)
        if fitted is not None:
            out[fusion] = fitted
    return out
