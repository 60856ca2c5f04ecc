"""Augmentation sets, chosen by name in the config (``models.N.augment``).

Each set is registered in :data:`whaleflow.registry.AUGMENTATIONS` and built as
``AUGMENTATIONS.build(name, seed=…)``; the result is a callable that takes a uint8
grey image (H, W) and returns float32 (H, W), normalised with the fixed
:data:`MEAN` / :data:`STD` that inference uses too (:func:`normalize`); its ``pixels``
method returns the augmented uint8 image instead, for batches normalised on the device.

* ``siamese``: light, photometric only — brightness, Gaussian noise, blur (the seed
  solution's siamese set: the pair head compares fine edge detail, so geometry stays).
* ``metric``: heavy — rotation, scale, shift (one affine), brightness/contrast,
  gamma, local contrast (CLAHE), Gaussian or motion blur, Gaussian noise.
* ``none``: normalisation only (validation, test, feature extraction).

Horizontal flips are *not* here: a flipped fluke is a different individual, so the
samplers decide flips and label them (:mod:`whaleflow.data.samplers`).
Written against albumentations 2.x (``Affine(border_mode=…)``, ``Compose(seed=…)``,
``std_range`` as a fraction of 255 like its ``GaussNoise``). Gaussian noise is
:class:`FastGaussNoise`: albumentations' ``GaussNoise`` draws a fresh normal field per
call (≈1 ms at 384², more than the rest of the siamese set together); cutting the field
from a precomputed bank at a random offset is ≈10× cheaper and per-image still i.i.d.
Gaussian, which keeps the cached loader ≥10× faster than decoding (benchmarks/).
"""
from __future__ import annotations

from typing import Callable

import albumentations as A
import cv2
import numpy as np
from albumentations.core.transforms_interface import BaseTransformInitSchema, ImageOnlyTransform

from ..registry import AUGMENTATIONS

MEAN = 0.5   # grey pixel mean after /255, shared by training and inference
STD = 0.25


def normalize(img: np.ndarray) -> np.ndarray:
    """uint8 → float32 ``(x / 255 - MEAN) / STD``."""
    return (img.astype(np.float32) * np.float32(1.0 / 255.0) - np.float32(MEAN)) * np.float32(1.0 / STD)


class FastGaussNoise(ImageOnlyTransform):
    """Additive Gaussian noise, std drawn from ``std_range`` × 255, cut from a shared bank."""

    _banks: dict[int, np.ndarray] = {}

    class InitSchema(BaseTransformInitSchema):
        std_range: tuple[float, float]

    def __init__(self, std_range: tuple[float, float] = (0.005, 0.04), p: float = 0.5):
        super().__init__(p=p)
        if not 0.0 <= std_range[0] <= std_range[1] <= 1.0:
            raise ValueError(f"std_range must satisfy 0 ≤ low ≤ high ≤ 1, got {std_range}")
        self.std_range = tuple(std_range)

    @classmethod
    def _bank(cls, side: int) -> np.ndarray:
        key = 1 << max(6, int(side - 1).bit_length())  # one bank per power of two ≥ the image
        if key not in cls._banks:
            cls._banks[key] = np.random.default_rng(key).standard_normal((2 * key, 2 * key), dtype=np.float32)
        return cls._banks[key]

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        h, w = data["image"].shape[:2]
        side = len(self._bank(max(h, w)))
        return {"sigma": self.py_random.uniform(*self.std_range) * 255.0,
                "oy": self.py_random.randrange(0, side - h + 1), "ox": self.py_random.randrange(0, side - w + 1)}

    def apply(self, img: np.ndarray, sigma: float = 0.0, oy: int = 0, ox: int = 0, **params) -> np.ndarray:
        h, w = img.shape[:2]
        noise = self._bank(max(h, w))[oy:oy + h, ox:ox + w]
        if img.ndim == 2:
            out = cv2.scaleAdd(noise, float(sigma), img.astype(np.float32))
        else:
            out = img.astype(np.float32) + np.float32(sigma) * noise[..., None]
        out += np.float32(0.5)  # round, not truncate: no downward bias
        return np.clip(out, 0, 255, out=out).astype(np.uint8)


class Augment:
    """An albumentations pipeline on uint8 followed by :func:`normalize`."""

    def __init__(self, name: str, transforms: list, seed: int | None = None):
        self.name = name
        self.pipeline = A.Compose(transforms, seed=seed) if transforms else None

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return normalize(self.pixels(img))

    def pixels(self, img: np.ndarray) -> np.ndarray:
        """The augmented uint8 image, not normalised: what the loader's workers send, so a
        batch travels as uint8 and the device normalises it."""
        if img.dtype != np.uint8:
            raise TypeError(f"augmentation {self.name!r} expects uint8 pixels, got {img.dtype}")
        if self.pipeline is not None:
            img = self.pipeline(image=img)["image"]
        return img

    def reseed(self, seed: int) -> None:
        """Restart the random stream: seeding per epoch makes a resumed run augment
        exactly as the uninterrupted one would have."""
        if self.pipeline is not None:
            self.pipeline.set_random_seed(int(seed) % (2**32))

    def __repr__(self) -> str:
        return f"Augment({self.name!r})"


@AUGMENTATIONS.register("none")
def none(seed: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """Normalisation only."""
    return Augment("none", [], seed)


@AUGMENTATIONS.register("siamese")
def siamese(seed: int | None = None, strength: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """Brightness, Gaussian noise, blur: photometric only."""
    s = float(strength)
    return Augment("siamese", [
        A.RandomBrightnessContrast(brightness_limit=0.2 * s, contrast_limit=0.0, p=0.5),
        FastGaussNoise(std_range=(0.005 * s, 0.04 * s), p=0.3),
        A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.1, 1.0 * s), p=0.3),
    ], seed)


@AUGMENTATIONS.register("metric")
def metric(seed: int | None = None, strength: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """Rotation, scale, shift, brightness, contrast, gamma, CLAHE, blur, noise."""
    s = float(strength)
    return Augment("metric", [
        A.Affine(rotate=(-12 * s, 12 * s), scale=(1 - 0.15 * s, 1 + 0.15 * s),
                 translate_percent=(-0.05 * s, 0.05 * s), shear=(-5 * s, 5 * s),
                 border_mode=cv2.BORDER_REPLICATE, p=0.8),
        A.RandomBrightnessContrast(brightness_limit=0.25 * s, contrast_limit=0.25 * s, p=0.7),
        A.RandomGamma(gamma_limit=(80, 120), p=0.3),
        A.CLAHE(clip_limit=(1.0, 3.0), p=0.2),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.1, 1.2 * s)),
                 A.MotionBlur(blur_limit=(3, 5))], p=0.3),
        FastGaussNoise(std_range=(0.005 * s, 0.04 * s), p=0.3),
    ], seed)


def build_augment(name: str, seed: int | None = None, **kwargs) -> Callable[[np.ndarray], np.ndarray]:
    """``AUGMENTATIONS.build(name, seed=seed, **kwargs)`` with this module's sets registered."""
    return AUGMENTATIONS.build(name, seed=seed, **kwargs)
