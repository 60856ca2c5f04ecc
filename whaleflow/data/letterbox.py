"""One photo as the cache holds it: decoded, cropped to its box, grey (or RGB), resized with
its aspect kept and padded to the cache's (height, width) with the edge mean (see
:mod:`.cache` for why that padding)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..config import size_hw
from .boxes import Boxes, crop_image
from .images import read_gray, read_rgb

__all__ = ["letterbox", "load_image", "load_image_sizes"]


def letterbox(img: np.ndarray, size) -> np.ndarray:
    """Resize to fit ``size`` (a side or (height, width)) with the aspect kept, and pad the
    rest with the edge mean."""
    th, tw = size_hw(size)
    h, w = img.shape[:2]
    scale = min(th / h, tw / w)
    nw, nh = max(1, min(tw, round(w * scale))), max(1, min(th, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(img, (nw, nh), interpolation=interp) if (nh, nw) != (h, w) else img
    if small.ndim == 2 and img.ndim == 3:
        small = small[:, :, None]
    if (nh, nw) == (th, tw):
        return np.ascontiguousarray(small)
    border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]], axis=0)
    fill = border.reshape(-1, *small.shape[2:]).mean(axis=0)
    out = np.empty((th, tw) + small.shape[2:], dtype=np.uint8)
    out[...] = np.round(fill).astype(np.uint8)
    top, left = (th - nh) // 2, (tw - nw) // 2
    out[top:top + nh, left:left + nw] = small
    return out


def load_image(path: str | Path, image: str, *, size, boxes: Boxes | None = None,
               box_margin: float = 0.05, grayscale: bool = True):
    """Decode, crop, grey, letterbox one image: (pixels, width, height, box status, problem)."""
    pixels, w, h, status, problem = load_image_sizes(path, image, sizes=[size], boxes=boxes,
                                                     box_margin=box_margin, grayscale=grayscale)
    return pixels[0], w, h, status, problem


def load_image_sizes(path: str | Path, image: str, *, sizes, boxes: Boxes | None = None,
                     box_margin: float = 0.05, grayscale: bool = True):
    """:func:`load_image` at several sizes from one decode: ([pixels per size], width, height,
    box status, problem)."""
    img = read_gray(path) if grayscale else read_rgb(path)
    h, w = img.shape[:2]
    crop, status, problem = crop_image(img, image, boxes, box_margin)
    return [letterbox(crop, size) for size in sizes], w, h, status, problem
