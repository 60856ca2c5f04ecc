"""Image decoding that fails loudly on corrupt or truncated files.

Pillow can silently half-decode a truncated JPEG (grey bottom rows) when
``ImageFile.LOAD_TRUNCATED_IMAGES`` is on; a model would then train on garbage.
Here every read is a full decode with that flag off, and every failure becomes a
:class:`CorruptImage` naming the file. Pixels are returned as stored: EXIF
orientation is not applied, so boxes made by other tools on the raw pixel array
line up with what whaleflow reads.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from ..errors import DataError

ImageFile.LOAD_TRUNCATED_IMAGES = False

_FIX = "re-download or re-export the file, or remove it from the data set."
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
                  Image.DecompressionBombError)


class CorruptImage(DataError):
    """An image file that cannot be fully decoded (unreadable, truncated, not an image)."""


def _fail(path, exc: BaseException) -> CorruptImage:
    if isinstance(exc, FileNotFoundError):
        return CorruptImage("image file does not exist.", file=path, fix=_FIX)
    text = str(exc).strip() or type(exc).__name__
    return CorruptImage(f"cannot decode image ({text}).", file=path, fix=_FIX)


def _read(path: str | os.PathLike, mode: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()  # full decode: a truncated stream raises OSError here
                if im.mode != mode:
                    im = im.convert(mode)
                return np.asarray(im, dtype=np.uint8).copy()
    except _DECODE_ERRORS as exc:
        raise _fail(path, exc) from None


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` fully and return uint8 grey pixels, shape (H, W)."""
    return _read(path, "L")


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` fully and return uint8 RGB pixels, shape (H, W, 3)."""
    return _read(path, "RGB")


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the file header only: cheap, but does not prove the pixels decode."""
    try:
        with Image.open(path) as im:
            return im.size
    except _DECODE_ERRORS as exc:
        raise _fail(path, exc) from None


def check_image(path: str | os.PathLike) -> str | None:
    """Why ``path`` is unusable (one line), or None when it decodes completely.

    JPEGs are decoded at reduced DCT scale (``draft``): every entropy-coded byte is
    still read, so truncation and corruption are caught, at a fraction of the cost
    of a full-size decode.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.format == "JPEG":
                    im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
                im.load()
                if im.width < 1 or im.height < 1:
                    return "image has no pixels"
    except _DECODE_ERRORS as exc:
        if isinstance(exc, FileNotFoundError):
            return "file does not exist"
        return (str(exc).strip() or type(exc).__name__).splitlines()[0]
    return None


def is_image_name(name: str) -> bool:
    """True for file names with a common photo extension (used to list image folders)."""
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS


IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
