"""Batches from the image cache: rows → resized, flipped, augmented float tensors.

The cache (:mod:`whaleflow.data.cache`) holds every image once at the largest stage
height and width; a progressive-resizing stage at a smaller size resizes from it (cv2,
area interpolation when shrinking) instead of decoding the JPEG again. A stage of
another aspect than the cache (a square stage on a 1:2 cache) is letterboxed from it,
so an image is never stretched. Sizes are a side or (height, width). Order per image:
read the uint8 row, resize, flip (a flip makes a new individual; the sampler decided
it), augment (uint8 → normalised float32) or only normalise.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import torch

from ..config import size_hw
from .augment import normalize
from .cache import letterbox
from .samplers import PairBatch


def fit(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """A cached image at (height, width): resized when the aspect matches (within 1 %),
    letterboxed otherwise."""
    ih, iw = img.shape[:2]
    if abs((height / width) / (ih / iw) - 1.0) <= 0.01:
        interp = cv2.INTER_AREA if height * width < ih * iw else cv2.INTER_LINEAR
        return cv2.resize(img, (width, height), interpolation=interp)
    return letterbox(img, (height, width))


class CachedImages:
    """Read batches from a uint8 image array (n, S, S) or (n, S, S, 3), usually a memmap."""

    def __init__(self, images: np.ndarray, augment: Callable[[np.ndarray], np.ndarray] | None = None):
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise TypeError(f"expected uint8 images (n, S, S[, 3]), got {images.dtype} {images.shape}")
        self.images = images
        self.augment = augment

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the cached images."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    @property
    def channels(self) -> int:
        return 1 if self.images.ndim == 3 else int(self.images.shape[3])

    def image(self, row: int, flip: bool = False, size=None) -> np.ndarray:
        """One float32 image (C, height, width), resized, flipped and augmented."""
        img = np.asarray(self.images[int(row)])
        h, w = self.size if size is None else size_hw(size)
        if (h, w) != img.shape[:2]:
            img = fit(img, h, w)
        if flip:
            img = img[:, ::-1]
        img = np.ascontiguousarray(img)
        out = self.augment(img) if self.augment is not None else normalize(img)
        return out[None] if out.ndim == 2 else out.transpose(2, 0, 1)

    def batch(self, rows, flips=None, size=None) -> torch.Tensor:
        """A float tensor (B, C, height, width) for ``rows`` (flipped where ``flips`` is true)."""
        rows = np.asarray(rows, dtype=np.int64)
        flips = np.zeros(len(rows), dtype=bool) if flips is None else np.asarray(flips, dtype=bool)
        if len(flips) != len(rows):
            raise ValueError(f"{len(rows)} rows but {len(flips)} flips")
        size = self.size if size is None else size_hw(size)
        out = np.empty((len(rows), self.channels, *size), dtype=np.float32)
        for i, (r, f) in enumerate(zip(rows, flips)):
            out[i] = self.image(r, bool(f), size)
        return torch.from_numpy(out)

    def pair_batch(self, pairs: PairBatch, size=None):
        """(left images, right images, targets) for a :class:`PairBatch`."""
        return (self.batch(pairs.a, pairs.flip_a, size), self.batch(pairs.b, pairs.flip_b, size),
                torch.from_numpy(np.asarray(pairs.target, dtype=np.float32)))
