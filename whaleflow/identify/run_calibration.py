"""A run's calibration, fitted on its validation blend and stored as ``ensemble/calibration.json``.

The validation blend is rebuilt exactly as the ensemble driver built it: every blended
model's ``trials/<name>/scores_val.npz``, its validation normaliser and weight from
``ensemble/weights.json`` (the fitted blend's validation side), the tuned threshold. So an older run, blended before
calibrations existed, gets one from its own files (:func:`load_calibration` fits and
stores it on first use); ``identify`` never needs ``prepared/``.

The file also holds the **outer-fold check**: the validation queries are split into
``folds`` parts; each part gets the ``p_correct`` of a calibration fitted on the
others. Those held-out probabilities (``oof``) say, for any rate r, which share of
photos ``--auto-accept-fmr r`` would have accepted and how many of those were wrong
(:func:`fmr_check`, with a Wilson interval). The blend weights and threshold were
themselves tuned on all of validation, so the check is a little optimistic; it is
stated as measured.

Format 2 (``whaleflow.calibration/2``) adds ``encounters``: per fusion way the
calibration of an encounter's fused decision, fitted on validation encounters, with its
own outer-fold check (:mod:`.encounter_calibration`). A format-1 file still loads, with
no encounter calibration: encounters of several photos then go to review, and identify
says why in one note.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import write_json
from .calibration import Calibration, reliability, top_right
from .encounter_calibration import EncounterCalibration, fit_encounter_calibrations
from .rate_support import LADDER, fmr_check

CALIBRATION = Path("ensemble") / "calibration.json"
FOLDS = 5


def validation_blend(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray, float]:
    """(blended validation scores, truth as blend columns, threshold) of a blended run: the
    validation side of its fitted blend, predicting the validation scores as the ensemble did."""
    from ..ensemble.fitted_blend import FittedBlend
    from ..ensemble.score_space import truth_of
    from ..inference.topk_scores import load_class_scores

    run_dir = Path(run_dir)
    blend = FittedBlend.load(run_dir, side="val", fix="blend the run first (whaleflow ensemble).")
    paths = [run_dir / "trials" / n / "scores_val.npz" for n in blend.names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError("a blended model's validation scores are missing.", file=missing[0],
                        fix="calibrate on the run folder the blend was tuned in.")
    vals = [load_class_scores(p) for p in paths]
    images = np.asarray(vals[0].images).astype(str)
    space, mats = blend.align(vals, images)
    truth = space.truth_indices(truth_of(vals, images))
    return blend.predict_aligned(space, mats).blended, truth, blend.threshold


def _out_of_fold(scores: np.ndarray, truth: np.ndarray, threshold: float, folds: int, seed: int) -> np.ndarray:
    """Each query's p_correct from a calibration fitted without its fold."""
    part = np.random.default_rng(seed).permutation(len(scores)) % folds
    p = np.zeros(len(scores))
    for f in range(folds):
        held = part == f
        if held.all() or not held.any():
            continue
        cal = Calibration.fit(scores[~held], truth[~held], threshold)
        p[held] = cal.p_correct(scores[held], threshold)
    return p


FORMAT = "whaleflow.calibration/2"      # format 1: photos only (written before encounter calibration)
FORMAT_1 = "whaleflow.calibration/1"


@dataclass
class RunCalibration:
    """The calibration of a run and its outer-fold check; per fusion way its encounter
    calibration (``encounters``; None when read from a format-1 file, which has none)."""

    calibration: Calibration
    threshold: float
    oof_p: np.ndarray          # held-out p_correct per validation query
    oof_right: np.ndarray      # whether its top outcome was right
    folds: int
    encounters: dict[str, EncounterCalibration] | None = None

    def fmr_check(self, rate: float) -> dict:
        """What ``--auto-accept-fmr rate`` did on the held-out folds: accepted share, the false
        matches among them and their rate with a 95 % Wilson interval, and whether the rate
        is supported (:mod:`.rate_support`)."""
        return fmr_check(self.oof_p, self.oof_right, rate)

    def reliability(self, bins: int = 10) -> list[dict]:
        return reliability(self.oof_p, self.oof_right, bins)

    def to_dict(self) -> dict:
        return {"format": FORMAT, **self.calibration.to_dict(), "threshold": self.threshold,
                "folds": self.folds, "oof_p": self.oof_p.round(6).tolist(),
                "oof_right": self.oof_right.astype(int).tolist(),
                "check": [self.fmr_check(r) for r in LADDER],
                "encounters": {f: e.to_dict() for f, e in (self.encounters or {}).items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "RunCalibration":
        fmt = d.get("format", FORMAT_1)
        if fmt not in (FORMAT, FORMAT_1):
            raise ValueError(f"unknown format {fmt!r}, this whaleflow reads {FORMAT_1} and {FORMAT}")
        encounters = ({f: EncounterCalibration.from_dict(e) for f, e in d["encounters"].items()}
                      if fmt == FORMAT else None)
        return cls(Calibration.from_dict(d), float(d["threshold"]), np.asarray(d["oof_p"], float),
                   np.asarray(d["oof_right"], bool), int(d["folds"]), encounters)

    def for_encounters(self, fusion: str) -> tuple[EncounterCalibration | None, str | None]:
        """The encounter calibration of a fusion way, or None and the note that says why not."""
        if self.encounters is None:
            return None, (f"the run's {CALIBRATION.as_posix()} is format 1 (photos only, written before encounters "
                          "were calibrated): encounters of several photos get no p_correct and go to review; "
                          "delete the file and the next identify refits it, encounters included, from the run's "
                          "validation scores")
        if fusion not in self.encounters:
            return None, ("the run's validation forms no encounter of several photos (no individual has two "
                          "validation photos): encounters of several photos get no p_correct and go to review")
        return self.encounters[fusion], None


def fit_run_calibration(run_dir: str | Path, *, folds: int = FOLDS, seed: int = 0) -> RunCalibration:
    """Fit the run's calibration (photos, and encounters per fusion way) on its validation
    blend, check it on outer folds, store it."""
    scores, truth, threshold = validation_blend(run_dir)
    keep = truth >= -1  # a truth outside a query's top-K candidates has no outcome column
    scores, truth = scores[keep], truth[keep]
    calibration = Calibration.fit(scores, truth, threshold)
    result = RunCalibration(calibration, threshold, _out_of_fold(scores, truth, threshold, folds, seed),
                            top_right(scores, truth, threshold).astype(bool), folds,
                            fit_encounter_calibrations(scores, truth, threshold, calibration, folds=folds, seed=seed))
    write_json(Path(run_dir) / CALIBRATION, result.to_dict())
    return result


def load_calibration(run_dir: str | Path) -> RunCalibration:
    """The stored calibration, fitted and stored first when the run has none yet. A format-1
    file (photos only) still loads; :meth:`RunCalibration.for_encounters` says what it lacks."""
    path = Path(run_dir) / CALIBRATION
    if not path.is_file():
        return fit_run_calibration(run_dir)
    try:
        return RunCalibration.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"cannot read the run's calibration ({exc}).", file=path,
                        fix="delete it; the next identify fits it again from the run's validation scores.") from None
