"""The knobs of ``whaleflow synth`` that make sets unlike the one the defaults were chosen on.

The demo's generator draws a fluke that spans 55–100 % of a 192×128 frame, shots per
individual from a capped Zipf(1.9) law, test photos in proportion to an individual's
train photos, and only mild colour casts. A default tuned on that can fit it; the
accuracy panel (``benchmarks/accuracy.py --panel``) therefore also draws sets that
differ in each of these, independently:

* ``scale``: the range of the fluke's span as a fraction of the frame width (small
  flukes in large frames are what whole-frame field photos look like);
* ``shots``: ``zipf`` (today's law) or ``heavy`` (Zipf(1.7) capped at 80: about half the
  individuals have one photo, a few have dozens, as in HWI and Happywhale);
* ``test_mix``: ``proportional`` (test photos ∝ train photos) or ``one_per_individual``
  (each known individual asked about once: half the known queries then search a
  one-photo gallery);
* ``occlusion``: the chance a photo gets bands of splash or foam across the fluke;
* ``tint``: the strength of a colour tint over the whole photo (green water, sepia,
  blue dusk), on top of the mild cast every photo gets.

Every draw for these knobs comes from its own generator (seed, 3, photo), so the
default style writes the same bytes as before the knobs existed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from ..errors import DataError

#: shots law → (Zipf exponent, cap on train photos of one individual)
SHOT_LAWS = {"zipf": (1.9, 30), "heavy": (1.7, 80)}
TEST_MIXES = ("proportional", "one_per_individual")


@dataclass(frozen=True)
class SynthStyle:
    """How a synthetic set differs from the demo's; the defaults are the demo's."""

    scale: tuple[float, float] = (0.55, 1.0)
    shots: str = "zipf"
    test_mix: str = "proportional"
    occlusion: float = 0.0
    tint: float = 0.0

    def __post_init__(self):
        lo, hi = self.scale
        if not 0.05 <= lo <= hi <= 1.2:
            raise DataError(f"synthetic scale {self.scale!r} is not a range within [0.05, 1.2].",
                            fix="give two fractions of the frame width, low first, e.g. 0.3 0.6.")
        if self.shots not in SHOT_LAWS:
            raise DataError(f"unknown shots law {self.shots!r}.", fix=f"use one of {', '.join(SHOT_LAWS)}.")
        if self.test_mix not in TEST_MIXES:
            raise DataError(f"unknown test mix {self.test_mix!r}.", fix=f"use one of {', '.join(TEST_MIXES)}.")
        for name in ("occlusion", "tint"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise DataError(f"synthetic {name} {getattr(self, name)!r} is outside [0, 1].",
                                fix=f"give {name} as a probability or strength between 0 and 1.")

    def to_dict(self) -> dict:
        return {**asdict(self), "scale": list(self.scale)}


def add_occluders(img: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lay one to three soft bands of white water across the fluke (``alpha`` > 0.5 marks it)."""
    h, w = img.shape[:2]
    ys, xs = np.nonzero(alpha > 0.5)
    if not len(xs):
        return img
    mask = np.zeros((h, w), np.float32)
    x0, x1 = xs.min(), xs.max()
    y0, y1 = ys.min(), ys.max()
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        length = rng.uniform(0.3, 1.0) * (x1 - x0 + 1)
        thick = max(2.0, rng.uniform(0.08, 0.25) * (y1 - y0 + 1))
        angle = rng.uniform(-70, 70)
        box = cv2.boxPoints(((float(cx), float(cy)), (float(length), float(thick)), float(angle)))
        cv2.fillConvexPoly(mask, box.astype(np.int32), float(rng.uniform(0.5, 0.9)), cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.01 * w)).clip(0, 1)[..., None]
    foam = np.float32(rng.uniform(0.75, 1.0)) * (1 - 0.15 * rng.random(img.shape, dtype=np.float32))
    return img * (1 - mask) + foam * mask


def add_tint(img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Mix the photo towards one random colour by up to ``strength`` (light keeps its shape)."""
    colour = rng.dirichlet(np.ones(3)).astype(np.float32) * 3.0
    mix = np.float32(strength * rng.uniform(0.3, 1.0))
    grey = img.mean(axis=2, keepdims=True)
    return np.clip(img * (1 - mix) + grey * colour * mix, 0, 1)
