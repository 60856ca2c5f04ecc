"""Batches from the image cache: rows → resized, flipped, augmented float tensors.

The cache (:mod:`whaleflow.data.cache`) holds every image once at the largest stage
height and width; a progressive-resizing stage at a smaller size resizes from it (cv2,
area interpolation when shrinking) instead of decoding the JPEG again. A stage of
another aspect than the cache (a square stage on a 1:2 cache) is letterboxed from it,
so an image is never stretched. Sizes are a side or (height, width). Order per image:
read the uint8 row, resize, flip (a flip makes a new individual; the sampler decided
it), augment (uint8 → normalised float32) or only normalise.

:meth:`CachedImages.batch_uint8` stops before normalising: the training loader's
workers send uint8 batches and the device normalises them
(:func:`whaleflow.engine.device.to_device_images`). ``prepare`` builds one cache per
stage size, and :func:`pick_cache` chooses the one a stage reads, so no stage pays a
resize. A :class:`CachedImages` on a memmap pickles as its file name, shape and offset
and reopens the file lazily where it is used (a worker process), never as pixels.
"""
from __future__ import annotations

import os
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
        self._images = images
        self._file = _memmap_file(images)
        self._shape = tuple(int(v) for v in images.shape)
        self.augment = augment

    @property
    def images(self) -> np.ndarray:
        if self._images is None:  # unpickled in another process: map the file there
            path, offset = self._file
            self._images = np.memmap(path, dtype=np.uint8, mode="r", shape=self._shape, offset=offset)
        return self._images

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self._file is not None:
            state["_images"] = None  # the file name travels, not the pixels
        return state

    def detached(self) -> "CachedImages":
        """A copy that opens its memmap on first use, in whichever process that is."""
        out = CachedImages.__new__(CachedImages)
        out.__dict__.update(self.__getstate__())
        return out

    def __len__(self) -> int:
        return self._shape[0]

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the cached images."""
        return self._shape[1], self._shape[2]

    @property
    def channels(self) -> int:
        return 1 if len(self._shape) == 3 else self._shape[3]

    def _sized(self, row: int, flip: bool, size) -> np.ndarray:
        """The cached uint8 image of ``row`` at ``size`` (the cache's own by default), flipped."""
        img = np.asarray(self.images[int(row)])
        h, w = self.size if size is None else size_hw(size)
        if (h, w) != img.shape[:2]:
            img = fit(img, h, w)
        if flip:
            img = img[:, ::-1]
        return np.ascontiguousarray(img)

    def image(self, row: int, flip: bool = False, size=None) -> np.ndarray:
        """One float32 image (C, height, width), resized, flipped and augmented."""
        img = self._sized(row, flip, size)
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

    def pixels(self, row: int, flip: bool = False, size=None) -> np.ndarray:
        """One augmented uint8 image (height, width[, C]), resized and flipped, not normalised."""
        img = self._sized(row, flip, size)
        if self.augment is None:
            return img
        pixels = getattr(self.augment, "pixels", None)
        if pixels is None:
            raise TypeError(f"augmentation {self.augment!r} has no uint8 `pixels` method; build it with "
                            "whaleflow.data.augment.build_augment")
        return pixels(img)

    def batch_uint8(self, rows, flips=None, size=None, seed: int | None = None,
                    out: np.ndarray | None = None) -> np.ndarray:
        """uint8 (B, C, height, width) for ``rows``: what a loader worker sends to the device.

        ``seed`` restarts the augmentation's random stream first, so the batch is the same
        whichever process builds it and whenever (a resumed run, another worker count).
        ``out``: an array of that shape to write into (a worker's shared-memory batch).
        """
        rows = np.asarray(rows, dtype=np.int64)
        flips = np.zeros(len(rows), dtype=bool) if flips is None else np.asarray(flips, dtype=bool)
        if len(flips) != len(rows):
            raise ValueError(f"{len(rows)} rows but {len(flips)} flips")
        size = self.size if size is None else size_hw(size)
        if self.augment is None and size == self.size:  # one read of all rows, flips as views
            got = np.asarray(self.images[rows])
            got = np.where(flips.reshape(-1, *([1] * (got.ndim - 1))), got[:, :, ::-1], got)
            got = got[:, None] if got.ndim == 3 else got.transpose(0, 3, 1, 2)
            if out is None:
                return np.ascontiguousarray(got)
            out[...] = got
            return out
        if seed is not None and hasattr(self.augment, "reseed"):
            self.augment.reseed(seed)
        if out is None:
            out = np.empty((len(rows), self.channels, *size), dtype=np.uint8)
        elif out.shape != (len(rows), self.channels, *size) or out.dtype != np.uint8:
            raise ValueError(f"out is {out.dtype} {out.shape}, the batch uint8 {(len(rows), self.channels, *size)}")
        for i, (r, f) in enumerate(zip(rows, flips)):
            img = self.pixels(r, bool(f), size)
            out[i] = img[None] if img.ndim == 2 else img.transpose(2, 0, 1)
        return out

    def pair_batch(self, pairs: PairBatch, size=None):
        """(left images, right images, targets) for a :class:`PairBatch`."""
        return (self.batch(pairs.a, pairs.flip_a, size), self.batch(pairs.b, pairs.flip_b, size),
                torch.from_numpy(np.asarray(pairs.target, dtype=np.float32)))


def pick_cache(caches: dict[tuple[int, int], np.ndarray], size) -> np.ndarray:
    """The cache a stage of ``size`` reads (see :func:`cache_for_size`)."""
    return caches[cache_for_size(caches, size)]


def cache_for_size(shapes, size) -> tuple[int, int]:
    """Of the cache shapes (height, width), the one a stage of ``size`` reads: exactly that
    size, else the smallest of the same aspect that is not smaller (a resize down), else
    the largest (letterboxed)."""
    shapes = [tuple(s) for s in shapes]
    if not shapes:
        raise ValueError("no image cache to read from")
    h, w = size_hw(size)
    if (h, w) in shapes:
        return (h, w)
    same = [s for s in shapes if s[0] >= h and s[1] >= w and abs((s[0] / s[1]) / (h / w) - 1) <= 0.01]
    return min(same, key=lambda s: s[0] * s[1]) if same else max(shapes, key=lambda s: s[0] * s[1])


def _memmap_file(images: np.ndarray) -> tuple[str, int] | None:
    """(file, byte offset) of a memmap that spans its file from that offset to the end, else
    None (an in-memory array, or a slice of a memmap, which pickles as its pixels)."""
    path = getattr(images, "filename", None) if isinstance(images, np.memmap) else None
    if not path or not images.flags.c_contiguous:
        return None
    try:
        whole = os.path.getsize(path) == int(images.offset) + images.nbytes
    except OSError:
        return None
    return (str(path), int(images.offset)) if whole else None
