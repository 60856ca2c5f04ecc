"""``whaleflow enroll RUN_DIR decisions.csv``: confirmed photos join the catalogue, no retraining.

``decisions.csv`` (what the review page or ``identify --auto-accept-fmr`` exports, or written by
hand): ``image,path,decision,id`` (and optionally ``encounter``: every photo of one encounter
must then carry the same decision and id, which ``enroll`` applies to all of them) with decision ``accept`` (``id`` is an individual of the catalogue, or one marked new
earlier in the same file), ``new`` (``id`` names a new individual) or ``skip``. Each
accepted or new photo is prepared as ``identify`` prepares it, embedded by every family
of the run, and appended to ``RUN_DIR/gallery/enrolled.npz`` (see
:mod:`whaleflow.identify.gallery`) in one atomic replace; ``gallery/enroll_log.csv``
records each photo (time, image, id, decision, path, whether the id is new). The next
``identify`` scores against the grown gallery: the metric family's centroids and the
k-NN galleries of the siamese and arcface families include the new photos; models with a
fixed set of classes fall back as :mod:`whaleflow.identify.scoring` describes.

A photo already in the gallery, or unreadable, is skipped and counted; a bad row (unknown
decision, an ``accept`` of an id the catalogue does not know, ``new`` with a known id) stops
with a one-line error naming the row, before anything is written.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..io import write_csv
from ..submission import read_csv_columns  # the same checked CSV read
from ..labels import NEW_WHALE
from .gallery import ENROLL_LOG
from .photos import open_boxes, prepare_photos
from .trained_run import TrainedRun, load_run

DECISIONS = ("accept", "new", "skip")


@dataclass
class Enrolment:
    """What :func:`enroll` did."""

    added: list[dict] = field(default_factory=list)     # image, id, decision, path
    new_ids: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)   # image, path, reason
    undecided: int = 0                                  # rows with decision skip

    def summary(self) -> str:
        known = sum(1 for a in self.added if a["id"] not in self.new_ids)
        text = (f"enrolled {len(self.added)} photo(s): {known} of known individuals, "
                f"{len(self.added) - known} of {len(self.new_ids)} new individual(s)")
        if self.new_ids:
            text += f" ({', '.join(self.new_ids[:10])}{' …' if len(self.new_ids) > 10 else ''})"
        if self.skipped:
            text += f"; skipped {len(self.skipped)}: " + "; ".join(f"{s['image']}: {s['reason']}" for s in self.skipped[:3])
        if self.undecided:
            text += f"; {self.undecided} row(s) marked skip"
        return text


def read_decisions(path: str | Path, known: set[str]) -> tuple[list[dict], int]:
    """Check every row; return the photos to enroll (image, path, decision, id) and the skip count."""
    path = Path(path)
    if not path.is_file():
        raise DataError("decisions file does not exist.", file=path,
                        fix="export it from matches.html, or write image,path,decision,id rows.")
    frame = read_csv_columns(path, {"image", "path", "decision", "id"})
    rows, skips, new_here, seen, per_encounter = [], 0, set(), set(), {}
    for i, rec in enumerate(frame.to_dict("records"), start=2):
        decision, ident = rec["decision"].strip().lower(), rec["id"].strip()
        enc = str(rec.get("encounter", "") or "").strip()
        if enc:  # one sighting, one animal: every photo of an encounter takes the same decision
            first = per_encounter.setdefault(enc, (decision, ident, i))
            if first[:2] != (decision, ident):
                raise DataError(f"encounter {enc!r} is {first[0]} {first[1]!r} in row {first[2]} but {decision} "
                                f"{ident!r} here.", file=path, row=i,
                                fix="give every photo of an encounter the same decision and id.")
        if decision not in DECISIONS:
            raise DataError(f"decision {rec['decision']!r} is not one of {', '.join(DECISIONS)}.", file=path, row=i,
                            fix="use accept, new or skip.")
        if decision == "skip":
            skips += 1
            continue
        if not ident or ident == NEW_WHALE:
            raise DataError(f"{decision} needs the individual's id (not empty, not {NEW_WHALE}).", file=path, row=i,
                            fix="give the accepted candidate's id, or a name for a new individual.")
        if decision == "accept" and ident not in known and ident not in new_here:
            raise DataError(f"accepts {ident!r}, which the catalogue does not hold.", file=path, row=i,
                            fix=f"use decision new to add {ident!r} as a new individual.")
        if decision == "new" and ident in known:
            raise DataError(f"marks {ident!r} as new, but the catalogue already holds it.", file=path, row=i,
                            fix="use decision accept, or another name for the new individual.")
        if not rec["path"]:
            raise DataError("no photo path.", file=path, row=i, fix="give the path of the photo to enroll.")
        if rec["image"] in seen:
            raise DataError(f"image {rec['image']!r} appears twice.", file=path, row=i, fix="keep one row per photo.")
        seen.add(rec["image"])
        if decision == "new":
            new_here.add(ident)
        rows.append({"image": rec["image"], "path": rec["path"], "decision": decision, "id": ident, "encounter": enc})
    return rows, skips


def enroll(run_dir: str | Path | TrainedRun, decisions: str | Path, *, boxes: str | Path | None = None,
           device: str = "auto", progress: bool = False) -> Enrolment:
    """Add the accepted and new photos of ``decisions`` to the run's gallery (see the module docstring)."""
    from ..data.dedup import hash_image

    run = run_dir if isinstance(run_dir, TrainedRun) else load_run(run_dir, device=device)
    known = set(run.families[0].gallery.ids.tolist())
    rows, skips = read_decisions(decisions, known)
    result = Enrolment(undecided=skips)
    in_gallery = set(run.families[0].gallery.images.tolist())
    todo = []
    for r in rows:
        if r["image"] in in_gallery:
            result.skipped.append({"image": r["image"], "path": r["path"], "reason": "already in the gallery"})
        else:
            todo.append(r)
    photos = prepare_photos([Path(r["path"]) for r in todo], size=run.size, sizes=run.sizes, boxes=open_boxes(boxes, run.run_dir, [Path(r["path"]) for r in todo]),
                            box_margin=run.cfg.data.box_margin, grayscale=run.cfg.prepare.grayscale, progress=progress)
    readable = set(photos.paths)
    for r in todo:
        if str(Path(r["path"])) not in readable:
            reason = next((s["reason"] for s in photos.skipped if s["path"] == str(Path(r["path"]))), "unreadable")
            result.skipped.append({"image": r["image"], "path": r["path"], "reason": reason})
    todo = [r for r in todo if str(Path(r["path"])) in readable]
    if not todo:
        return result
    pc = run.cfg.prepare
    hashes, sizes = [], []
    for r in todo:
        w, h, hx = hash_image(r["path"], method=pc.hash, hash_size=pc.hash_size)
        hashes.append(hx)
        sizes.append((w, h))
    vectors = {f.name: f.vectors(photos.pixels, photos.by_size) for f in run.families}
    grown = run.enrolled.extended([r["image"] for r in todo], [r["id"] for r in todo], [r["path"] for r in todo],
                                  hashes, sizes, photos.pixels, vectors)
    grown.save(run.run_dir)  # the one atomic step: every family sees the new photos, or none does
    run.use_enrolled(grown)
    new_ids = sorted({r["id"] for r in todo if r["id"] not in known})
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    log_path = run.run_dir / ENROLL_LOG
    old = pd.read_csv(log_path, dtype=str, keep_default_na=False) if log_path.is_file() else None
    entries = pd.DataFrame([{"time": stamp, "image": r["image"], "id": r["id"], "decision": r["decision"],
                             "new_individual": r["id"] in new_ids, "path": r["path"]} for r in todo])
    write_csv(log_path, entries if old is None else pd.concat([old, entries.astype(str)], ignore_index=True))
    if run.store is not None:  # a run folder in a bucket: the grown gallery and its log go back there
        run.store.push("gallery")
    result.added, result.new_ids = todo, new_ids
    return result


__all__ = ["Enrolment", "enroll", "read_decisions"]
