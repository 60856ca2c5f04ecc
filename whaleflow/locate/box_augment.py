"""Geometry for the box model: one affine map per sample that moves image and box together.

A training sample is the photo warped onto the model's fixed canvas (height × width) by
ONE affine matrix: the letterbox (scale to fit, centre) composed with a random flip,
scale, shift and small rotation about the canvas centre. The box's four corners go
through the same matrix and the box becomes their bounding rectangle, clipped to the
canvas, so the target always sits where the animal now is. Inference uses the letterbox
alone and maps the predicted box back through its inverse.

Rotation makes the bounding rectangle of the rotated box a little larger than the
rotated animal's own box; at ±10° that is a few percent, the usual price of rotating
boxes (detectors train the same way).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def letterbox_matrix(width: int, height: int, canvas: tuple[int, int]) -> np.ndarray:
    """3×3 affine: image pixel → canvas pixel, aspect kept, centred (as the cache letterboxes)."""
    ch, cw = canvas
    s = min(cw / width, ch / height)
    return np.array([[s, 0, (cw - s * width) / 2], [0, s, (ch - s * height) / 2], [0, 0, 1]], dtype=np.float64)


def transform_boxes(boxes, matrix: np.ndarray, canvas: tuple[int, int] | None = None) -> np.ndarray:
    """(n, 4) boxes through a 3×3 affine: the bounding rectangle of the four moved corners,
    clipped to ``canvas`` (height, width) when given."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]], axis=1)  # (n, 4, 2)
    moved = corners @ matrix[:2, :2].T + matrix[:2, 2]
    out = np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)
    if canvas is not None:
        ch, cw = canvas
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, cw)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, ch)
    return out


def warp(img: np.ndarray, matrix: np.ndarray, canvas: tuple[int, int]) -> np.ndarray:
    """The image on the canvas; what falls outside the photo is its mean grey (no strong edge,
    no mirrored copy of the animal)."""
    ch, cw = canvas
    fill = float(img.mean()) if img.size else 0.0
    interp = cv2.INTER_AREA if abs(np.linalg.det(matrix[:2, :2])) < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(img, matrix[:2].astype(np.float32), (cw, ch), flags=interp,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


@dataclass(frozen=True)
class BoxAugment:
    """Random flip, scale, shift and rotation about the canvas centre, plus light and contrast.

    ``flip``: probability of a horizontal mirror (a mirrored animal is still an animal, so
    here, unlike identification, a flip is a fair sample); ``scale``: log-uniform range;
    ``shift``: fraction of the canvas each way; ``rotate``: degrees each way.
    """

    flip: float = 0.5
    scale: tuple[float, float] = (0.7, 1.35)
    shift: float = 0.15
    rotate: float = 10.0
    light: float = 0.25

    def matrix(self, rng: np.random.Generator, canvas: tuple[int, int]) -> np.ndarray:
        """3×3 affine canvas → canvas for one sample."""
        ch, cw = canvas
        s = float(np.exp(rng.uniform(np.log(self.scale[0]), np.log(self.scale[1]))))
        a = np.deg2rad(rng.uniform(-self.rotate, self.rotate))
        f = -1.0 if rng.random() < self.flip else 1.0
        tx, ty = rng.uniform(-self.shift, self.shift, 2) * (cw, ch)
        centre = np.array([[1, 0, cw / 2], [0, 1, ch / 2], [0, 0, 1]], dtype=np.float64)
        rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        zoom_flip = np.diag([s * f, s, 1.0])
        move = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=np.float64)
        return move @ centre @ rot @ zoom_flip @ np.linalg.inv(centre)

    def photometric(self, pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Brightness, contrast and gamma: the box does not move."""
        x = pixels.astype(np.float32) / 255.0
        x = x ** np.float32(np.exp(rng.uniform(-self.light, self.light)))
        x = (x - x.mean()) * np.float32(1 + rng.uniform(-self.light, self.light)) + x.mean()
        x = x + np.float32(rng.uniform(-self.light, self.light) / 2)
        return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)

    def sample(self, img: np.ndarray, box, base: np.ndarray, canvas: tuple[int, int],
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(canvas pixels, canvas box) of one augmented view; ``base`` maps the image to the canvas."""
        m = self.matrix(rng, canvas) @ base
        return self.photometric(warp(img, m, canvas), rng), transform_boxes(box, m, canvas)[0]
