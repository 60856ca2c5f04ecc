"""``size: auto``: an input shape from the photos' own aspect and a pixel budget.

A square input wastes most of its pixels on a wide photo: a 2:1 fluke letterboxed into
96×96 keeps 96×48 pixels of animal and 4,608 of padding. ``size: auto`` takes the median
aspect of the training photos (of their boxes, when a box file crops them) and spends a
pixel budget at that aspect: ``auto`` is 112² pixels (measured on 2 cores with
EfficientNet-Lite0 and four frozen stages, a step costs about the same per pixel at any
shape, and 112² keeps ``configs/cpu.yaml`` within 15 minutes for 2,000 photos), ``auto:N``
is N² pixels (``auto:224`` for the frozen peer, which only runs forward, once per photo).
A 2:1 set at ``auto`` trains at 80×160: 12,800 pixels of animal instead of 4,608.

The shape is resolved once, when the run starts (:func:`resolve_auto_sizes`), and the run
folder's ``config.yaml`` keeps the resolved ``[height, width]``: a rerun, a final fit and
``identify`` read the same shape.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from .errors import ConfigError

__all__ = ["AUTO_SIDE", "is_auto", "auto_side", "auto_hw", "photo_aspect", "resolve_auto_sizes"]

AUTO_SIDE = 112      # ``auto``: a 112² pixel budget
MULTIPLE = 16        # sides are multiples of this (the stride of every timm stage but the last)
MAX_ASPECT = 3.0     # a panorama still gets a usable height
SAMPLE = 400         # photos whose headers give the aspect (a median needs no more)


def is_auto(size) -> bool:
    return isinstance(size, str) and (size == "auto" or size.startswith("auto:"))


def auto_side(size: str) -> int:
    """The pixel budget's side of ``auto`` (112) or ``auto:N`` (N)."""
    if size == "auto":
        return AUTO_SIDE
    try:
        side = int(size.split(":", 1)[1]) if is_auto(size) else 0
    except ValueError:
        side = 0
    if side < MULTIPLE:
        raise ConfigError(f"image size {size!r} is not auto or auto:N with N >= {MULTIPLE}. "
                          "Fix: e.g. size: auto, size: auto:224, or size: [96, 192].")
    return side


def auto_hw(aspect: float, side: int) -> list[int]:
    """[height, width] with width/height ≈ ``aspect`` and about ``side``² pixels."""
    aspect = float(np.clip(aspect, 1 / MAX_ASPECT, MAX_ASPECT))
    h = math.sqrt(side * side / aspect)
    w = h * aspect
    return [max(MULTIPLE, int(round(h / MULTIPLE)) * MULTIPLE), max(MULTIPLE, int(round(w / MULTIPLE)) * MULTIPLE)]


def photo_aspect(root: str | Path, boxes: Path | None = None) -> float:
    """Median width/height of the training photos (of their boxes when a box file is given)."""
    from .data.boxes import read_boxes
    from .data.catalog import load_catalog
    from .data.images import image_size

    if boxes is not None and Path(boxes).is_file():  # not for data.boxes: auto (no file to read)
        ratios = [(x1 - x0) / (y1 - y0) for x0, y0, x1, y1, _ in read_boxes(boxes).boxes.values()
                  if x1 > x0 and y1 > y0]
        if ratios:
            return float(np.median(ratios))
    train = load_catalog(root, check_images=False).train
    paths = list(train["path"])[:: max(1, len(train) // SAMPLE)][:SAMPLE]
    ratios = []
    for p in paths:
        try:
            w, h = image_size(p)
        except Exception:  # a corrupt photo is prepare's to report (with its row); the median needs none
            continue
        if w > 0 and h > 0:
            ratios.append(w / h)
    return float(np.median(ratios)) if ratios else 1.0


def resolve_auto_sizes(cfg):
    """``cfg`` with every ``auto`` stage size replaced by its [height, width] for the data."""
    if not any(is_auto(s.size) for m in cfg.models for s in m.stages):
        return cfg
    from .data.prepare import _boxes_path

    aspect = photo_aspect(cfg.data.root, _boxes_path(cfg, Path(cfg.data.root)))
    models = [dataclasses.replace(m, stages=[dataclasses.replace(s, size=auto_hw(aspect, auto_side(s.size)))
                                             if is_auto(s.size) else s for s in m.stages]) for m in cfg.models]
    return dataclasses.replace(cfg, models=models)
