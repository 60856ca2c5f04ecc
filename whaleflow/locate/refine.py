"""The second look: crop around a first box, with a margin, and find the box again on the crop.

The first pass sees the whole photo letterboxed onto the canvas, where a small animal
covers a few feature cells and its edges are a cell or two off. The second pass warps the
region around that first box (the box grown by ``margin`` of its size on every side)
onto the same canvas, so the animal fills most of it at a standard scale and position and
at up to ``max_zoom`` times the letterbox's resolution, predicts again, and maps the box
back through the inverse of that crop. Like a two-stage detector's refinement, it fixes
what the first pass roughly found; it cannot find what the first pass missed.

The network learns both looks: besides the usual augmented views, fitting adds crops
around the true box jittered as a first pass errs (:class:`RefineAugment`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .box_augment import BoxAugment, letterbox_matrix, transform_boxes, warp


def crop_matrix(box, image_size: tuple[int, int], canvas: tuple[int, int], margin: float = 0.25,
                max_zoom: float = 4.0) -> np.ndarray:
    """3×3 affine: image pixel → canvas pixel, the box grown by ``margin`` (a fraction of its width and
    height on each side) letterboxed onto ``canvas`` (height, width), centred on the box.

    ``image_size`` is (width, height); the zoom is at most ``max_zoom`` times the whole photo's
    letterbox, so a tiny or empty first box never blows one pixel up to the whole canvas.
    """
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box, dtype=np.float64)[:4])
    ch, cw = canvas
    bw, bh = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    rw, rh = bw * (1 + 2 * margin), bh * (1 + 2 * margin)
    whole = letterbox_matrix(int(image_size[0]), int(image_size[1]), canvas)[0, 0]
    s = min(cw / rw, ch / rh, whole * max_zoom)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array([[s, 0, cw / 2 - s * cx], [0, s, ch / 2 - s * cy], [0, 0, 1]], dtype=np.float64)


@dataclass(frozen=True)
class RefineAugment:
    """Training crops for the second look: the true box, moved and resized as a first pass errs
    (``shift``: fraction of its size each way; ``resize``: log-uniform factor range per side), cropped
    with :func:`crop_matrix`, then mirrored half the time and given light and contrast as usual."""

    shift: float = 0.12
    resize: tuple[float, float] = (0.8, 1.25)
    margin: float = 0.25
    max_zoom: float = 4.0
    photometric: BoxAugment = BoxAugment()

    def sample(self, img: np.ndarray, box, canvas: tuple[int, int],
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(canvas pixels, canvas box) of one crop around a jittered copy of ``box`` (image pixels)."""
        x0, y0, x1, y1 = (float(v) for v in np.asarray(box, dtype=np.float64)[:4])
        w, h = x1 - x0, y1 - y0
        lo, hi = np.log(self.resize[0]), np.log(self.resize[1])
        sw, sh = np.exp(rng.uniform(lo, hi, 2))
        cx = (x0 + x1) / 2 + rng.uniform(-self.shift, self.shift) * w
        cy = (y0 + y1) / 2 + rng.uniform(-self.shift, self.shift) * h
        guess = (cx - w * sw / 2, cy - h * sh / 2, cx + w * sw / 2, cy + h * sh / 2)
        m = crop_matrix(guess, (img.shape[1], img.shape[0]), canvas, self.margin, self.max_zoom)
        if rng.random() < self.photometric.flip:
            m = np.array([[-1, 0, canvas[1]], [0, 1, 0], [0, 0, 1]], dtype=np.float64) @ m
        return self.photometric.photometric(warp(img, m, canvas), rng), transform_boxes(box, m, canvas)[0]
