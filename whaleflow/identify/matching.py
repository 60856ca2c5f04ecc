"""``whaleflow identify RUN_DIR PHOTOS...``: rank the catalogue's individuals for new photos.

Per photo the five best candidates with their blended scores and the new-individual
decision (new_whale ranked first: even the best match is below the run's tuned
threshold), written to ``matches.csv`` (``image``, ``predictions`` as in a submission,
``scores``, ``new_individual``, ``margin``, ``path``, ``closest_1`` … ``closest_5``: the
gallery photo most like it, per candidate) with the review page ``matches.html`` beside it. The same as
:func:`identify` for notebooks; no Ray, CPU or GPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import DataError
from ..io import write_csv
from ..labels import NEW_WHALE
from .auto_accept import auto_decisions, check_rate, decide
from .encounter_matches import encounter_frame
from .encounters import encounters_by_gap, read_encounters
from .photos import Photos, list_photos, open_boxes, prepare_photos
from .scoring import near_duplicates, score_batch
from .trained_run import TrainedRun, load_run

CHUNK = 256  # photos prepared and scored at a time (bounds memory for a season's folder)


@dataclass
class Matches:
    """What :func:`identify` found: one row per readable photo, and the skipped ones."""

    frame: pd.DataFrame
    skipped: list[dict] = field(default_factory=list)
    pixels: np.ndarray | None = None   # prepared photos, in frame order (for the review page)
    notes: list[str] = field(default_factory=list)
    csv: Path | None = None
    page: Path | None = None
    calibration: object = None                 # the run's RunCalibration
    encounters: pd.DataFrame | None = None     # one row per encounter (with --encounters / --encounter-gap)
    decisions: pd.DataFrame | None = None      # auto-accepted decisions (with --auto-accept-fmr)
    photos_csv: Path | None = None
    decisions_csv: Path | None = None

    @property
    def units(self) -> pd.DataFrame:
        """What matches.csv and the page hold: encounters when grouped, else photos."""
        return self.encounters if self.encounters is not None else self.frame

    def top5(self) -> dict[str, list[str]]:
        return {im: p.split() for im, p in zip(self.frame["image"], self.frame["predictions"])}


def _uncertainty(scores: list[float], labels: list[str], threshold: float) -> float:
    """How close the decision was: the smaller of the best known score's distance to the
    new-individual threshold and its lead over the runner-up (smaller = less certain)."""
    known = [s for s, lab in zip(scores, labels) if lab != NEW_WHALE]
    if not known:
        return 0.0
    gap = known[0] - known[1] if len(known) > 1 else float("inf")
    return float(min(abs(known[0] - threshold), gap))


def identify_photos(run: TrainedRun, photos: Photos, *, progress: bool = False, calibration=None,
                    keep_logprobs: bool = False, crops: Sequence | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Score already prepared photos; the rows of ``matches.csv`` and notes. With a
    :class:`~whaleflow.identify.calibration.Calibration`, each row gets ``p_correct`` and,
    with ``keep_logprobs``, the frame's ``attrs["logprobs"]`` holds every photo's outcome
    log-probabilities (individuals in ``attrs["classes"]`` order, then new) and
    ``attrs["closest"]`` its closest gallery photo of every individual, for encounters."""
    from ..progress import progress_bar

    rows, notes, logprobs, closest_all, classes = [], [], [], [], None
    dups = near_duplicates(run, photos.paths, photos.images)
    with progress_bar(len(photos), "identifying", quiet=not progress, unit="photos") as bar:
        for start in range(0, len(photos), CHUNK):
            sl = slice(start, start + CHUNK)
            names = photos.images[sl]
            crop = crops[sl] if crops is not None else [None] * len(names)
            scored = score_batch(run, photos.pixels[sl], names, dups, {k: v[sl] for k, v in photos.by_size.items()},
                                 sources=(photos.paths[sl], crop))
            col = {c: i for i, c in enumerate(scored.classes)}
            classes = scored.classes
            logp = calibration.logprobs(scored.blended, run.threshold) if calibration is not None else None
            p_right = calibration.p_correct_from_logprobs(logp) if logp is not None else None
            if keep_logprobs and logp is not None:
                logprobs.append(logp.astype(np.float32))
                closest_all.append(scored.closest)
            for i, (im, labels) in enumerate(zip(names, scored.predictions)):
                scores = [run.threshold if lab == NEW_WHALE else float(scored.blended[i, col[lab]]) for lab in labels]
                closest = ["" if lab == NEW_WHALE or lab not in col else str(scored.closest[i, col[lab]])
                           for lab in labels]
                rows.append({
                    "image": im, "predictions": " ".join(labels), "scores": " ".join(f"{s:.4f}" for s in scores),
                    "new_individual": bool(labels and labels[0] == NEW_WHALE),
                    "margin": round(_uncertainty(scores, labels, run.threshold), 4),
                    "p_correct": _p_of(p_right, i, labels, scored.blended[i], classes, run.threshold),
                    "near_duplicate": bool(dups.get(im)), "box": photos.boxes[start + i],
                    "path": photos.paths[start + i],
                    **{f"closest_{k + 1}": (closest[k] if k < len(closest) else "") for k in range(5)},
                })
            for name, classes in scored.uncovered.items():
                note = (f"{name} was not trained on {len(classes)} enrolled individual(s); their scores come from "
                        "the other models' k-NN galleries (weights renormalised), ranked among the trained "
                        "individuals where that evidence alone ranks them")
                if note not in notes:
                    notes.append(note)
            bar.advance(len(names))
    cols = ["image", "predictions", "scores", "new_individual", "margin", "p_correct", "near_duplicate", "box",
            "path", *(f"closest_{k}" for k in range(1, 6))]
    frame = pd.DataFrame(rows, columns=cols)
    if keep_logprobs and classes is not None:
        frame.attrs["logprobs"] = np.concatenate(logprobs) if logprobs else np.zeros((0, len(classes) + 1))
        frame.attrs["classes"] = np.asarray(classes)
        frame.attrs["closest"] = np.concatenate(closest_all) if closest_all else np.zeros((0, len(classes)), object)
    return frame, notes


def _p_of(p_right, i: int, labels: list[str], blended_row: np.ndarray, classes, threshold: float) -> float:
    """The photo's p_correct; empty (NaN) when there is no calibration, or when the
    near-duplicate rule put another label first than the scores did (validation, being
    free of leaks, says nothing about that rule)."""
    if p_right is None or not labels or not len(blended_row):
        return float("nan")
    by_scores = NEW_WHALE if blended_row.max() < threshold else str(classes[int(blended_row.argmax())])
    return round(float(p_right[i]), 4) if labels[0] == by_scores else float("nan")


def identify(run_dir: str | Path | TrainedRun, photos: Sequence[str | Path] | str | Path, *,
             out: str | Path | None = None, boxes: str | Path | None = None, device: str = "auto",
             page: bool = True, progress: bool = False, encounters: str | Path | None = None,
             encounter_gap: float | None = None, auto_accept_fmr: float | None = None,
             encounter_fusion: str = "flat") -> Matches:
    """Identify ``photos`` (files or folders) with the trained run ``run_dir``.

    Writes ``out`` (default ``matches.csv`` in the current folder) and, with ``page``,
    ``matches.html`` beside it; ``out=None, page=False`` writes nothing. Returns the matches.
    ``boxes``: a box CSV (``Image,x0,y0,x1,y1`` or any layout ``prepare`` reads) to crop
    each photo as the run's training photos were cropped; a photo it does not list gets a box
    from the run's box model when the run learned one, else the whole photo is used.
    ``encounters`` (an ``image,encounter`` CSV) or ``encounter_gap`` (seconds between EXIF
    times) match the photos of one sighting together: one row per encounter in ``out``,
    the photos' rows in ``<out>_photos.csv``, fused the ``encounter_fusion`` way (:mod:`.encounters`). ``auto_accept_fmr``: accept
    the rows whose calibrated false-match rate is at most this, written to
    ``<out>_auto_decisions.csv`` for ``enroll`` (:mod:`.auto_accept`).
    """
    from .run_calibration import load_calibration

    rate = check_rate(auto_accept_fmr) if auto_accept_fmr is not None else None
    if encounters is not None and encounter_gap is not None:
        raise DataError("give --encounters or --encounter-gap, not both.", fix="drop one of them.")
    run = run_dir if isinstance(run_dir, TrainedRun) else load_run(run_dir, device=device)
    if isinstance(photos, (str, Path)):
        photos = [photos]
    paths = list_photos(photos)
    box_table = open_boxes(boxes, run.run_dir, paths)
    prepared = prepare_photos(paths, size=run.size, sizes=run.sizes, boxes=box_table, box_margin=run.cfg.data.box_margin,
                              grayscale=run.cfg.prepare.grayscale, progress=progress)
    notes: list[str] = []
    if run.cfg.data.boxes and box_table is None:
        notes.append(f"the run was trained on photos cropped to boxes ({run.cfg.data.boxes}); these photos are "
                     "used whole (pass --boxes CSV to crop them)")
    if prepared.skipped:
        notes.append(f"skipped {len(prepared.skipped)} unreadable photo(s): "
                     + "; ".join(f"{s['path']}: {s['reason']}" for s in prepared.skipped[:3]))
    encounter_of = None
    if encounters is not None:
        encounter_of, more = read_encounters(encounters, prepared.images)
        notes.extend(more)
    elif encounter_gap is not None:
        encounter_of, more = encounters_by_gap(prepared.images, prepared.paths, encounter_gap)
        notes.extend(more)
    calibration = load_calibration(run.run_dir)
    crops = [box_table.get(im) if box_table is not None and st in ("box", "clamped", "predicted") else None
             for im, st in zip(prepared.images, prepared.boxes)]  # what local-feature matching reads again
    frame, more = identify_photos(run, prepared, progress=progress, calibration=calibration.calibration,
                                  keep_logprobs=encounter_of is not None, crops=crops)
    notes.extend(more)
    result = Matches(frame, prepared.skipped, prepared.pixels, notes, calibration=calibration)
    enc_cal = None
    if encounter_of is not None:
        enc_cal, why = calibration.for_encounters(encounter_fusion)
        notes.extend([why] if why else [])
        result.encounters = encounter_frame(frame, encounter_of, calibration.calibration, encounter_fusion, enc_cal)
    if rate is not None:
        units = result.units
        accepted, more = decide(units, rate, calibration, enc_cal)
        units["auto_accepted"] = accepted
        result.decisions = auto_decisions(units, accepted)
        notes.extend(more)
    if out is not None or page:
        result.csv = write_csv(Path(out) if out is not None else Path("matches.csv"), result.units)
        if result.encounters is not None:
            result.photos_csv = write_csv(_beside(result.csv, "_photos.csv"), frame)
        if result.decisions is not None:
            result.decisions_csv = write_csv(_beside(result.csv, "_auto_decisions.csv"), result.decisions)
    if page:
        from .page import write_page

        result.page = write_page(run, result, result.csv.with_suffix(".html"))
    return result


def _beside(csv: Path, suffix: str) -> Path:
    return csv.with_name(csv.stem + suffix)
