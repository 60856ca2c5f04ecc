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

from ..io import write_csv
from ..labels import NEW_WHALE
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


def identify_photos(run: TrainedRun, photos: Photos, *, progress: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """Score already prepared photos; the rows of ``matches.csv`` and notes."""
    from ..progress import progress_bar

    rows, notes = [], []
    dups = near_duplicates(run, photos.paths, photos.images)
    with progress_bar(len(photos), "identifying", quiet=not progress, unit="photos") as bar:
        for start in range(0, len(photos), CHUNK):
            sl = slice(start, start + CHUNK)
            names = photos.images[sl]
            scored = score_batch(run, photos.pixels[sl], names, dups, {k: v[sl] for k, v in photos.by_size.items()})
            col = {c: i for i, c in enumerate(scored.classes)}
            for i, (im, labels) in enumerate(zip(names, scored.predictions)):
                scores = [run.threshold if lab == NEW_WHALE else float(scored.blended[i, col[lab]]) for lab in labels]
                closest = ["" if lab == NEW_WHALE or lab not in col else str(scored.closest[i, col[lab]])
                           for lab in labels]
                rows.append({
                    "image": im, "predictions": " ".join(labels), "scores": " ".join(f"{s:.4f}" for s in scores),
                    "new_individual": bool(labels and labels[0] == NEW_WHALE),
                    "margin": round(_uncertainty(scores, labels, run.threshold), 4),
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
    cols = ["image", "predictions", "scores", "new_individual", "margin", "near_duplicate", "box", "path",
            *(f"closest_{k}" for k in range(1, 6))]
    return pd.DataFrame(rows, columns=cols), notes


def identify(run_dir: str | Path | TrainedRun, photos: Sequence[str | Path] | str | Path, *,
             out: str | Path | None = None, boxes: str | Path | None = None, device: str = "auto",
             page: bool = True, progress: bool = False) -> Matches:
    """Identify ``photos`` (files or folders) with the trained run ``run_dir``.

    Writes ``out`` (default ``matches.csv`` in the current folder) and, with ``page``,
    ``matches.html`` beside it; ``out=None, page=False`` writes nothing. Returns the matches.
    ``boxes``: a box CSV (``Image,x0,y0,x1,y1`` or any layout ``prepare`` reads) to crop
    each photo as the run's training photos were cropped; a photo it does not list gets a box
    from the run's box model when the run learned one, else the whole photo is used.
    """
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
    frame, more = identify_photos(run, prepared, progress=progress)
    notes.extend(more)
    result = Matches(frame, prepared.skipped, prepared.pixels, notes)
    if out is not None or page:
        result.csv = write_csv(Path(out) if out is not None else Path("matches.csv"), frame)
    if page:
        from .page import write_page

        result.page = write_page(run, result, result.csv.with_suffix(".html"))
    return result
