"""Bounding boxes: read a box CSV, check each box against its image, crop with a margin.

Crops around the fluke are worth several MAP points (most of an HWI photo is sea).
Accepted box files:

* ``Image,x0,y0,x1,y1`` (the public HWI bounding-box kernel's ``bounding_boxes.csv``);
* ``xmin,ymin,xmax,ymax`` / ``x_min,…`` / ``left,top,right,bottom`` columns;
* ``x,y,w,h`` / ``x,y,width,height`` (top-left corner and size);
* a single ``bbox`` or ``box`` column holding ``x0 y0 x1 y1`` in any brackets or
  separators (the Happywhale detector files: ``[[x0 y0 x1 y1]]``, ``"x0 y0 x1 y1"``;
  the first box is used when several are listed).

The image column may be named Image, image, image_id, filename, file or name, and may
hold a path (its base name is used). An empty box means "no box". An image without a
box keeps the whole frame and is counted; an impossible box (x1 ≤ x0, y1 ≤ y0, not a
number, entirely outside the image) is listed with the file, the row and a fix, and
the whole frame is used; a box partly outside is clamped and counted.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError

_IMAGE_NAMES = ("image", "imageid", "imagename", "filename", "file", "img", "name")
_CORNER_SETS = (("x0", "y0", "x1", "y1"), ("xmin", "ymin", "xmax", "ymax"),
                ("left", "top", "right", "bottom"))
_SIZE_SETS = (("x", "y", "w", "h"), ("x", "y", "width", "height"))
_BOX_NAMES = ("bbox", "box", "boundingbox", "boxes", "bboxes")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_FIX_ROW = "correct or delete this row of the box file; the whole image is used meanwhile."


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


@dataclass
class Boxes:
    """Boxes by image name, plus the rows that could not be read as a box."""

    file: str
    boxes: dict[str, tuple[float, float, float, float, int]]  # image -> (x0, y0, x1, y1, csv row)
    problems: list[dict] = field(default_factory=list)        # image, row, message
    digest: str = ""                                          # sha256 of the file's bytes
    bad: set = field(default_factory=set)                     # images whose row is unreadable
    predicted: set = field(default_factory=set)               # images whose box a box model predicted

    def get(self, image: str):
        return self.boxes.get(image)

    def __len__(self) -> int:
        return len(self.boxes)


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_boxes(path: str | Path) -> Boxes:
    """Read a box CSV in any of the accepted layouts (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("box file does not exist.", file=path,
                        fix="set data.boxes to an existing CSV, or to null to use whole images.")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise DataError(f"cannot read the box file as CSV ({exc}).", file=path,
                        fix="write it as CSV with a header, e.g. Image,x0,y0,x1,y1.") from None
    cols = {_norm(c): c for c in df.columns}
    image_col = next((cols[n] for n in _IMAGE_NAMES if n in cols), None)
    if image_col is None:
        raise DataError(f"no image column among {list(df.columns)}.", file=path, row=1,
                        fix="name the image column Image (header Image,x0,y0,x1,y1).")
    layout, names = _layout(cols)
    if layout is None:
        raise DataError(f"no box columns among {list(df.columns)}.", file=path, row=1,
                        fix="use the header Image,x0,y0,x1,y1 (or xmin,ymin,xmax,ymax, x,y,w,h, or bbox).")
    out = Boxes(str(path), {}, [], file_digest(path))
    for k, rec in enumerate(df.to_dict("records")):
        row = k + 2  # header is row 1
        image = Path(str(rec[image_col]).strip()).name
        if not image:
            out.problems.append(_problem(path, row, "", "the image name is empty."))
            continue
        if layout == "bbox":
            text = str(rec[names[0]]).strip()
            if not text or text.lower() in ("nan", "none", "[]", "[[]]"):
                continue  # the detector found nothing: no box
            nums = _NUMBER.findall(text)
            vals = [float(v) for v in nums[:4]]
            if len(vals) < 4:
                out.problems.append(_problem(path, row, image, f"box {text!r} does not hold 4 numbers."))
                out.bad.add(image)
                continue
        else:
            raw = [str(rec[c]).strip() for c in names]
            if all(v == "" for v in raw):
                continue
            try:
                vals = [float(v) for v in raw]
            except ValueError:
                out.problems.append(_problem(path, row, image, f"box {raw} is not four numbers."))
                out.bad.add(image)
                continue
            if layout == "size":
                vals = [vals[0], vals[1], vals[0] + vals[2], vals[1] + vals[3]]
        if not all(math.isfinite(v) for v in vals):
            out.problems.append(_problem(path, row, image, f"box {vals} holds a non-finite number."))
            out.bad.add(image)
            continue
        if image in out.boxes:
            out.problems.append(_problem(path, row, image, f"{image} has a box already on row "
                                         f"{out.boxes[image][4]}; the first box is used.",
                                         fix="keep one row per image."))
            continue
        out.boxes[image] = (vals[0], vals[1], vals[2], vals[3], row)
    return out


def _layout(cols: dict[str, str]):
    for names in _CORNER_SETS:
        if all(n in cols for n in names):
            return "corners", [cols[n] for n in names]
    for names in _SIZE_SETS:
        if all(n in cols for n in names):
            return "size", [cols[n] for n in names]
    for n in _BOX_NAMES:
        if n in cols:
            return "bbox", [cols[n]]
    return None, None


def _problem(path, row: int, image: str, message: str, fix: str = _FIX_ROW) -> dict:
    return {"image": image, "row": row, "message": str(DataError(message, file=path, row=row, fix=fix))}


def check_box(box, width: int, height: int) -> tuple[str, str | None]:
    """('ok' | 'clamped' | 'invalid', why-invalid) for a box on an image of this size."""
    x0, y0, x1, y1 = box[:4]
    if x1 <= x0 or y1 <= y0:
        return "invalid", f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is inverted or empty (x1 ≤ x0 or y1 ≤ y0)."
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        return "invalid", (f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) lies entirely outside the "
                           f"{width}×{height} image.")
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        return "clamped", None
    return "ok", None


def crop_window(box, width: int, height: int, margin: float) -> tuple[int, int, int, int]:
    """Integer window (x0, y0, x1, y1): the box grown by ``margin`` × its size each side, clamped."""
    x0, y0, x1, y1 = box[:4]
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    a0 = int(np.clip(math.floor(x0 - mx), 0, width - 1))
    b0 = int(np.clip(math.floor(y0 - my), 0, height - 1))
    a1 = int(np.clip(math.ceil(x1 + mx), a0 + 1, width))
    b1 = int(np.clip(math.ceil(y1 + my), b0 + 1, height))
    return a0, b0, a1, b1


def crop_image(img: np.ndarray, image: str, boxes: Boxes | None, margin: float):
    """Crop ``img`` to its box. Returns (pixels, status, problem or None).

    status: 'box' (cropped), 'predicted' (cropped to a box model's box, :mod:`whaleflow.locate`),
    'clamped' (cropped, box partly outside), 'missing' (no box:
    whole frame), 'invalid' (impossible box: whole frame, problem says why), 'none'
    (no box file at all).
    """
    if boxes is None:
        return img, "none", None
    box = boxes.get(image)
    if box is None:
        return img, ("invalid" if image in boxes.bad else "missing"), None
    h, w = img.shape[:2]
    status, why = check_box(box, w, h)
    if status == "invalid":
        return img, "invalid", _problem(boxes.file, box[4], image, why)
    a0, b0, a1, b1 = crop_window(box, w, h, margin)
    if image in boxes.predicted:
        return img[b0:b1, a0:a1], "predicted", None
    return img[b0:b1, a0:a1], ("box" if status == "ok" else "clamped"), None
