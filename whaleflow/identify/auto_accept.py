"""``identify --auto-accept-fmr RATE``: accept without review where the calibrated false-match rate allows.

A photo (or encounter) whose calibrated chance of a false match, ``1 - p_correct``, is at
most ``RATE`` is accepted as it stands: its top candidate (or, with "new individual" on
top, a new individual named ``new_<encounter or photo>``) is written as a decision in the
form ``enroll`` reads (``image,path,decision,id``, plus ``encounter``; one row per photo,
so an encounter's decision covers all its photos). Everything else goes to the review
page, the least certain first. Rows without ``p_correct`` (no calibration, or the
near-duplicate rule moved the label) are never auto-accepted.

The rate a user asks for is a claim about held-out photos, so identify states next to
it what the same rule did on the run's validation outer folds
(:meth:`~.run_calibration.RunCalibration.fmr_check`), per photo and, for encounters of
several photos, per encounter (:mod:`.encounter_calibration`). Where validation cannot
back the rate (too few accepted, or the interval's upper bound above it:
:mod:`.rate_support`), nothing of that kind is accepted and one line says so.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..labels import NEW_WHALE
from .calibration import accepts
from .encounter_matches import SEP
from .rate_support import support_line

DECISION_COLUMNS = ["image", "path", "decision", "id", "encounter", "p_correct"]


def check_rate(rate) -> float:
    """The rate as a float in (0, 1), else a one-line error."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0 < value < 1:
        raise DataError(f"--auto-accept-fmr must be a false-match rate between 0 and 1 (exclusive), not {rate!r}.",
                        fix="e.g. --auto-accept-fmr 0.01 for at most 1 % false matches.")
    return value


def _stem(name: str) -> str:
    return "new_" + Path(name).stem.replace(" ", "_")


def accepted_mask(units: pd.DataFrame, rate: float) -> np.ndarray:
    """Which rows (photos or encounters) the rate accepts."""
    return accepts(pd.to_numeric(units["p_correct"], errors="coerce").to_numpy(float), rate)


def auto_decisions(units: pd.DataFrame, accepted: np.ndarray) -> pd.DataFrame:
    """The decisions rows of the accepted photos or encounters (one row per photo)."""
    rows = []
    by_encounter = "encounter" in units.columns
    for rec in units[accepted].to_dict("records"):
        images = rec["images"].split(SEP) if by_encounter else [rec["image"]]
        paths = rec["paths"].split(SEP) if by_encounter else [rec["path"]]
        top = rec["predictions"].split()[0]
        enc = rec["encounter"] if by_encounter else rec["image"]
        decision, ident = ("new", _stem(enc)) if top == NEW_WHALE else ("accept", top)
        rows += [{"image": im, "path": p, "decision": decision, "id": ident, "encounter": enc,
                  "p_correct": rec["p_correct"]} for im, p in zip(images, paths)]
    return pd.DataFrame(rows, columns=DECISION_COLUMNS)


def check_note(check: dict, unit: str) -> str:
    """The stated rate beside what the rule did on the run's validation outer folds."""
    return (f"auto-accept at a false-match rate of at most {100 * check['rate']:g} % per {unit}: on the run's "
            f"validation (outer folds, each calibrated on the others) it accepted {check['accepted']} of "
            f"{check['queries']} {unit}s ({100 * check['accepted_share']:.1f} %), {check['false_matches']} of them "
            f"wrong: observed {100 * check['observed_fmr']:.2f} % (95 % interval {100 * check['fmr_low']:.2f}–"
            f"{100 * check['fmr_high']:.2f} %)")


def decide(units: pd.DataFrame, rate: float, calibration, encounter_calibration=None) -> tuple[np.ndarray, list[str]]:
    """Which rows (photos or encounters) ``rate`` accepts, and the notes to state beside it.

    Rows are calibrated by the photo calibration (photos, and encounters of one photo) or by
    the encounter calibration (encounters of several). Each kind is accepted only where its
    validation supports the rate (:mod:`.rate_support`); where it does not, none of that kind
    is accepted and the one line saying so replaces the usual check note."""
    accepted = accepted_mask(units, rate)
    multi = (pd.to_numeric(units["n_photos"]).to_numpy() > 1 if "n_photos" in units.columns
             else np.zeros(len(units), bool))
    kinds = [("photo", ~multi, calibration)]
    if encounter_calibration is not None:
        kinds.append(("encounter", multi, encounter_calibration))
    notes = []
    for unit, rows, cal in kinds:
        if not rows.any():
            continue
        line = support_line(cal.oof_p, cal.oof_right, rate, unit)
        if line is None:
            notes.append(check_note(cal.fmr_check(rate), unit))
        else:
            accepted &= ~rows
            notes.append(line)
    return accepted, notes
