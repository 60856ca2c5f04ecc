"""What ``prepare`` crops to: the listed boxes, plus boxes a box model predicts for the rest.

:func:`resolve_boxes` turns ``data.boxes`` into one :class:`~whaleflow.data.boxes.Boxes`
table for the image cache:

* a box file listing every photo (or fewer than ``boxes.min_train``): the file as it is;
* a box file listing at least ``boxes.min_train`` photos but not all: a box model
  (:mod:`whaleflow.locate.fitting`) is learned from the listed photos and predicts a box
  for every other one (and for listed ones whose box is impossible);
* ``auto``: every photo gets the label-free box (:mod:`whaleflow.locate.auto_box`).

Predicted boxes are written to ``prepared/boxes_predicted.csv`` (``Image,x0,y0,x1,y1,score``)
and the boxer to ``RUN/box_model/model.pt``, where ``identify`` finds it. The model is
keyed by a hash of the listed boxes, the photos' files and the ``boxes`` settings, and the
predictions by the model's key and the photos they are for: a rerun on the same data
reuses both. Rows naming a photo the data does not hold, and impossible boxes, are
listed in ``box_problems.csv`` one line each (file, row, fix).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.boxes import Boxes, _problem, check_box, read_boxes
from ..io import write_csv, write_json

#: where a run keeps its boxer (beside prepared/, so identify can crop new photos from it)
RUN_BOXER = Path("box_model") / "model.pt"
PREDICTED_CSV = "boxes_predicted.csv"
_FIX_UNKNOWN = "correct the image name or delete the row (the box is ignored meanwhile)."
_FIX_PREDICTED = "correct or delete this row of the box file; a predicted box is used meanwhile."


def _stamp(path: str) -> str:
    try:
        st = os.stat(path)
        return f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return "missing"


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_listed(table: Boxes, photos: pd.DataFrame) -> tuple[dict, list[dict]]:
    """(usable boxes by image, problems): a row naming no photo of ``photos`` (image, path,
    width, height), or a box that is impossible on its photo, becomes one problem line."""
    sizes = {im: (int(w), int(h)) for im, w, h in zip(photos["image"], photos["width"], photos["height"])}
    usable, problems = {}, []
    for image, box in table.boxes.items():
        if image not in sizes:
            problems.append(_problem(table.file, box[4], image, f"image {image!r} is not among the data's readable "
                                     "photos.", fix=_FIX_UNKNOWN))
            continue
        status, why = check_box(box, *sizes[image])
        if status == "invalid":
            problems.append(_problem(table.file, box[4], image, why, fix=_FIX_PREDICTED))
            continue
        usable[image] = box
    return usable, problems


def resolve_boxes(cfg, photos: pd.DataFrame, box_file: Path | None, run_dir: Path, pdir: Path, *,
                  progress: bool = False) -> tuple[Boxes | None, dict | None]:
    """(the table the cache crops with, the box model's summary or None); see the module docstring."""
    if not cfg.data.boxes:
        return None, None
    photos = photos.drop_duplicates("image").reset_index(drop=True)
    if str(cfg.data.boxes).strip().lower() == "auto":
        return _auto(cfg, photos, run_dir, pdir, progress)
    table = read_boxes(box_file)
    usable, problems = check_listed(table, photos)
    todo = photos[~photos["image"].isin(usable)]
    bc = cfg.boxes
    if not len(todo) or not bc.learn or len(usable) < bc.min_train:
        unknown = [p for p in problems if p["message"].find(_FIX_UNKNOWN) >= 0]
        reason = ("every photo has a box" if not len(todo) else "boxes.learn is false" if not bc.learn else
                  f"{len(usable)} usable boxes listed, fewer than boxes.min_train ({bc.min_train}): "
                  f"{len(todo)} photos stay whole frames")
        return dataclasses.replace(table, problems=table.problems + unknown), {"learned": False, "reason": reason}
    listed = photos[photos["image"].isin(usable)].sort_values("image")
    settings = dataclasses.asdict(bc)
    key = _digest(settings, [(im, usable[im][:4], _stamp(p)) for im, p in zip(listed["image"], listed["path"])])
    model, reused = _fit_or_reuse(run_dir, key, listed, usable, bc, progress)
    pred, pred_reused = _predict_or_reuse(model, key, todo, pdir, bc.seed, progress)
    merged = dict(usable)
    for k, r in enumerate(pred.itertuples(index=False)):
        merged[r.Image] = (r.x0, r.y0, r.x1, r.y1, k + 2)
    out = Boxes(table.file, merged, table.problems + problems,
                _digest(table.digest, key, pred.to_csv(index=False)), table.bad - set(pred["Image"]),
                set(pred["Image"]))
    m = model.metrics
    return out, {"learned": True, "reused": reused, "predictions_reused": pred_reused, "listed": len(usable),
                 "trained_on": m.get("trained_on"), "held_out": m.get("held_out"), "refit": bool(m.get("refit")),
                 "held_out_iou": m.get("held_out_iou"), "held_out_iou_min": m.get("held_out_iou_min"),
                 "predicted": len(pred), "mean_score": float(pred["score"].mean()) if len(pred) else None,
                 "fit_seconds": m.get("seconds"), "fit_cpu_seconds": m.get("cpu_seconds"),
                 "model": str(RUN_BOXER), "file": PREDICTED_CSV}


def _fit_or_reuse(run_dir: Path, key: str, listed: pd.DataFrame, usable: dict, bc, progress: bool):
    from .boxer import load_boxer
    from .fitting import fit_from_config, read_listed

    path, meta_path = run_dir / RUN_BOXER, run_dir / RUN_BOXER.parent / "meta.json"
    if path.is_file() and meta_path.is_file() and json.loads(meta_path.read_text()).get("key") == key:
        return load_boxer(path), True
    boxes = np.array([usable[im][:4] for im in listed["image"]], dtype=np.float64)
    model = fit_from_config(read_listed(listed["path"].tolist()), boxes, bc, progress=progress)
    model.save(path)
    write_json(meta_path, {"key": key, "kind": "learned", "metrics": model.metrics})
    return model, False


def _predict_or_reuse(model, key: str, todo: pd.DataFrame, pdir: Path, seed: int, progress: bool):
    pkey = _digest(key, [(im, p, _stamp(p)) for im, p in zip(todo["image"], todo["path"])])
    out, meta = pdir / PREDICTED_CSV, pdir / "boxes_predicted.json"
    if out.is_file() and meta.is_file() and json.loads(meta.read_text()).get("key") == pkey:
        return pd.read_csv(out, dtype={"Image": str}, keep_default_na=False), True
    pred, _skipped = model.predict(todo["path"].tolist(), todo["image"].tolist(), progress=progress)
    write_csv(out, pred)
    write_json(meta, {"key": pkey, "rows": len(pred)})
    return pred, False


def _auto(cfg, photos: pd.DataFrame, run_dir: Path, pdir: Path, progress: bool):
    from .auto_box import ActivationBoxer

    boxer = ActivationBoxer(canvas=tuple(cfg.boxes.canvas))
    boxer.save(run_dir / RUN_BOXER)
    write_json(run_dir / RUN_BOXER.parent / "meta.json", {"key": _digest(boxer.settings), "kind": "auto"})
    pred, reused = _predict_or_reuse(boxer, _digest(boxer.settings), photos, pdir, cfg.boxes.seed, progress)
    boxes = {r.Image: (r.x0, r.y0, r.x1, r.y1, k + 2) for k, r in enumerate(pred.itertuples(index=False))}
    table = Boxes(str(pdir / PREDICTED_CSV), boxes, [], _digest("auto", pred.to_csv(index=False)),
                  set(), set(boxes))
    return table, {"learned": False, "auto": True, "predictions_reused": reused, "predicted": len(pred),
                   "mean_score": float(pred["score"].mean()) if len(pred) else None,
                   "model": str(RUN_BOXER), "file": PREDICTED_CSV}


def box_model_line(m: dict) -> str:
    """The prepare summary's line about the box model (learned, reused, label-free, or not used)."""
    if m.get("auto"):
        return (f"box model: label-free (data.boxes: auto), {m['predicted']} boxes ({m['file']}, mean score "
                f"{m['mean_score']:.2f})")
    if not m.get("learned"):
        return f"box model: not learned ({m['reason']})"
    how = "reused" if m.get("reused") else f"fitted in {m['fit_seconds']:.0f} s"
    iou = f"mean IoU {m['held_out_iou']:.3f}" if m.get("held_out_iou") is not None else "no IoU"
    held = (f"{iou} on {m['held_out']} of them held out of a first fit" if m.get("refit")
            else f"{m['held_out']} held out: {iou}")
    return (f"box model: {how} on {m['trained_on']} of {m['listed']} listed boxes ({held}), {m['predicted']} boxes "
            f"predicted → {m['file']}")
