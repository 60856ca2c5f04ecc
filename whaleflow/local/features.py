"""Keypoints and descriptors of a photo's crop (SIFT or ORB, OpenCV), extracted once per photo.

Photos are read grey, cropped to the box the run cropped them to (``prepared/crop_boxes.csv``),
shrunk so their longer side is at most ``max_side`` pixels (matching cost grows with the square
of the keypoint count, and small images carry no more detail anyway) and contrast-equalised
(CLAHE), so tinted or hazy photos still yield keypoints. A photo that cannot be read gets no
features; the caller counts it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

from ..data.boxes import crop_window
from ..data.cache import parallel_map
from ..data.images import CorruptImage, read_gray

__all__ = ["Features", "FeatureExtractor", "KINDS"]

KINDS = ("sift", "orb")


@dataclass(frozen=True)
class Features:
    """Keypoint positions (n, 2) in the resized crop's pixels and their descriptors (n, D)."""

    xy: np.ndarray
    desc: np.ndarray | None

    def __len__(self) -> int:
        return 0 if self.desc is None else len(self.xy)


EMPTY = Features(np.zeros((0, 2), np.float32), None)


class FeatureExtractor:
    """Extracts :class:`Features`; thread-safe (one OpenCV detector per call: they hold state)."""

    def __init__(self, kind: str = "sift", n_features: int = 400, max_side: int = 384, clahe: bool = True):
        if kind not in KINDS:
            raise ValueError(f"local features must be one of {KINDS}, got {kind!r}")
        self.kind, self.n_features, self.max_side, self.clahe = kind, int(n_features), int(max_side), clahe

    @property
    def norm(self) -> int:
        """The descriptor distance the matcher uses."""
        return cv2.NORM_L2 if self.kind == "sift" else cv2.NORM_HAMMING

    def _detector(self):
        if self.kind == "sift":
            return cv2.SIFT_create(nfeatures=self.n_features)
        return cv2.ORB_create(nfeatures=self.n_features)

    def from_pixels(self, grey: np.ndarray) -> Features:
        """Features of a uint8 grey image (already cropped)."""
        h, w = grey.shape[:2]
        scale = self.max_side / max(h, w)
        if scale < 1.0:
            grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        if self.clahe:
            grey = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey)
        kp, desc = self._detector().detectAndCompute(grey, None)
        if desc is None or not kp:
            return EMPTY
        return Features(np.float32([k.pt for k in kp]), desc)

    def from_file(self, path: str, box=None, margin: float = 0.05) -> Features:
        """Features of a photo file, cropped to ``box`` (x0, y0, x1, y1) grown by ``margin``;
        :data:`EMPTY` when the file cannot be decoded."""
        try:
            grey = read_gray(path)
        except CorruptImage:
            return EMPTY
        if box is not None:
            a0, b0, a1, b1 = crop_window(box, grey.shape[1], grey.shape[0], margin)
            grey = grey[b0:b1, a0:a1]
        return self.from_pixels(grey)

    def extract_all(self, items: Iterable[tuple[str, str, tuple | None]], margin: float = 0.05,
                    workers: int = 2) -> dict[str, Features]:
        """Features per image name for ``(image, path, box or None)`` items, on ``workers`` threads
        (OpenCV releases the GIL while it detects)."""
        items = list(items)
        feats = parallel_map(lambda it: self.from_file(it[1], it[2], margin), items, workers=workers)
        return {it[0]: f for it, f in zip(items, feats)}
