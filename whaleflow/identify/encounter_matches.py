"""One row per encounter: the photos' rows of ``matches.csv`` fused (see :mod:`.encounters`).

Columns: ``encounter``, ``images`` and ``paths`` (the encounter's photos, ``|``-separated),
``n_photos``, ``predictions`` (five outcomes by fused probability, ``new_whale`` where
"new individual" ranks), ``scores`` (their fused probabilities), ``new_individual``,
``p_correct`` (an encounter of several photos: the encounter calibration's step at the fused
top probability, :mod:`.encounter_calibration`; empty without one; one photo: the photo's own),
``margin`` (the
smallest of its photos' margins) and ``closest_1`` … ``closest_5`` (per candidate the
gallery photo most like the encounter's photo that gives the candidate most evidence).
An encounter of one photo keeps that photo's ranking exactly (near-duplicate rule
included). A photo whose label the near-duplicate rule moved has no ``p_correct``;
an encounter holding one has none either: it goes to review.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..labels import NEW_WHALE
from .calibration import Calibration
from .encounter_calibration import EncounterCalibration
from ..errors import DataError
from .encounters import FUSIONS, fuse, group, ranked

SEP = "|"
COLUMNS = ["encounter", "images", "n_photos", "predictions", "scores", "new_individual", "p_correct", "margin",
           "paths", *(f"closest_{k}" for k in range(1, 6))]


def _closest(closest: np.ndarray | None, logp: np.ndarray, col: dict, labels: list[str]) -> list[str]:
    """Per candidate, the gallery photo most like the encounter's photo with the most evidence for it."""
    out = []
    for lab in labels:
        if lab == NEW_WHALE or lab not in col or closest is None or not len(closest):
            out.append("")
            continue
        out.append(str(closest[int(np.argmax(logp[:, col[lab]])), col[lab]]))
    return out + [""] * (5 - len(out))


def encounter_frame(photos: pd.DataFrame, encounter_of: dict[str, str], calibration: Calibration,
                    fusion: str = "flat", encounter_calibration: EncounterCalibration | None = None) -> pd.DataFrame:
    """Fuse the rows of ``photos`` (from :func:`~.matching.identify_photos` with log-probabilities
    kept) by ``encounter_of`` (image → encounter), the ``fusion`` way of :data:`.encounters.FUSIONS`;
    ``encounter_calibration`` (of the same fusion way) gives encounters of several photos their
    ``p_correct``, and without one they have none (the photo steps would overstate them)."""
    if fusion not in FUSIONS:
        raise DataError(f"unknown encounter fusion {fusion!r}.", fix=f"use one of {', '.join(FUSIONS)}.")
    logp_all, classes = photos.attrs["logprobs"], photos.attrs["classes"]
    col = {str(c): i for i, c in enumerate(classes)}
    log_prior = FUSIONS[fusion](calibration, len(classes))
    closest = photos.attrs.get("closest")
    rows = []
    for enc, idx in group(photos["image"].tolist(), encounter_of).items():
        sub, logp = photos.iloc[idx], logp_all[idx]
        fused = fuse(logp, log_prior)
        if len(idx) == 1:  # one photo: its own ranking, the near-duplicate rule included
            labels = sub["predictions"].iloc[0].split()
        else:
            labels, _ = ranked(fused, classes, NEW_WHALE)
        probs = [float(np.exp(fused[col[lab] if lab in col else len(classes)])) for lab in labels]
        if len(idx) == 1:
            p = float(sub["p_correct"].iloc[0])
        elif encounter_calibration is not None:
            p = float(encounter_calibration.p_correct_from_logprobs(fused[None])[0])
        else:
            p = float("nan")
        moved = bool(sub["p_correct"].isna().any())
        rows.append({
            "encounter": enc, "images": SEP.join(sub["image"]), "n_photos": len(idx),
            "predictions": " ".join(labels), "scores": " ".join(f"{v:.4f}" for v in probs),
            "new_individual": bool(labels and labels[0] == NEW_WHALE),
            "p_correct": float("nan") if moved else round(p, 4),
            "margin": float(sub["margin"].min()), "paths": SEP.join(sub["path"]),
            **{f"closest_{k + 1}": c for k, c in enumerate(_closest(
                closest[idx] if closest is not None else None, logp, col, labels))},
        })
    return pd.DataFrame(rows, columns=COLUMNS)
