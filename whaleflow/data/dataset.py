"""Batches from the image cache: rows → resized, flipped, augmented float tensors.

The cache (:mod:`whaleflow.data.cache`) holds every image once at the largest stage
size; a progressive-resizing stage at a smaller size resizes from it (cv2, area
interpolation when shrinking) instead of decoding the JPEG again. Order per image:
read the uint8 row, resize, flip (a flip makes a new individual; the sampler decided
it), augment (uint8 → normalised float32) or only normalise.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import torch

from .augment import normalize
from .samplers import PairBatch


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
    def size(self) -> int:
        return int(self.images.shape[1])

    @property
    def channels(self) -> int:
        return 1 if self.images.ndim == 3 else int(self.images.shape[3])

    def image(self, row: int, flip: bool = False, size: int | None = None) -> np.ndarray:
        """One float32 image (C, size, size), resized, flipped and augmented."""
        img = np.asarray(self.images[int(row)])
        size = self.size if size is None else int(size)
        if size != img.shape[0]:
            interp = cv2.INTER_AREA if size < img.shape[0] else cv2.INTER_LINEAR
            img = cv2.resize(img, (size, size), interpolation=interp)
        if flip:
            img = img[:, ::-1]
        img = np.ascontiguousarray(img)
        out = self.augment(img) if self.augment is not None else normalize(img)
        return out[None] if out.ndim == 2 else out.transpose(2, 0, 1)

    def batch(self, rows, flips=None, size: int | None = None) -> torch.Tensor:
        """A float tensor (B, C, size, size) for ``rows`` (flipped where ``flips`` is true)."""
        rows = np.asarray(rows, dtype=np.int64)
        flips = np.zeros(len(rows), dtype=bool) if flips is None else np.asarray(flips, dtype=bool)
        if len(flips) != len(rows):
            raise ValueError(f"{len(rows)} rows but {len(flips)} flips")
        size = self.size if size is None else int(size)
        out = np.empty((len(rows), self.channels, size, size), dtype=np.float32)
        for i, (r, f) in enumerate(zip(rows, flips)):
            out[i] = self.image(r, bool(f), size)
        return torch.from_numpy(out)

    def pair_batch(self, pairs: PairBatch, size: int | None = None):
        """(left images, right images, targets) for a :class:`PairBatch`."""
        return (self.batch(pairs.a, pairs.flip_a, size), self.batch(pairs.b, pairs.flip_b, size),
                torch.from_numpy(np.asarray(pairs.target, dtype=np.float32)))
