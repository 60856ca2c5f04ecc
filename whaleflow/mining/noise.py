"""Annealed noise for LAP mining.

Gaussian noise added to the score matrix before solving makes the mined pairs
easier (more random) early in training, when the model cannot yet tell hard pairs
apart and the hardest ones would only teach it noise; it moves from ``start`` to
``end`` over ``epochs`` epochs and stays there, and it never goes below ``floor``:
with no noise at all the assignment is the bare argmax, which picks the same
hardest-looking pairs (often a mislabelled photo) round after round.

The std is absolute, in the units of the scores being assigned (logits for a pair
head, cosines for embeddings). ``offset`` is the epoch the schedule starts from (the
first mining round): ``noise(offset)`` is ``start``.

Two shapes: ``linear`` (the default; even steps, predictable) and ``cosine`` (stays
near ``start`` longer, then falls, and flattens near ``end``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError

SHAPES = ("linear", "cosine")


@dataclass(frozen=True)
class NoiseSchedule:
    """``NoiseSchedule(start, end, epochs, shape="linear", floor=0.0, offset=0)``; ``noise(epoch)`` → std."""

    start: float = 1.0
    end: float = 0.0
    epochs: int = 20
    shape: str = "linear"
    floor: float = 0.0
    offset: int = 0

    def __post_init__(self):
        if self.start < 0 or self.end < 0 or self.floor < 0:
            raise ConfigError(f"noise std must be ≥ 0, got start={self.start}, end={self.end}, floor={self.floor}")
        if self.epochs < 0 or self.offset < 0:
            raise ConfigError(f"noise epochs and offset must be ≥ 0, got {self.epochs}, {self.offset}")
        if self.shape not in SHAPES:
            raise ConfigError(f"noise shape must be one of {SHAPES}, got {self.shape!r}")

    def noise(self, epoch: float) -> float:
        """The std at ``epoch`` (0-based; fractions allowed): ``start`` up to ``offset``, ``end``
        from ``offset + epochs`` on, never below ``floor``."""
        if epoch < 0:
            raise ValueError(f"epoch must be ≥ 0, got {epoch}")
        e = max(0.0, epoch - self.offset)
        if self.epochs == 0 or e >= self.epochs:
            return float(max(self.floor, self.end))
        t = e / self.epochs
        if self.shape == "cosine":
            t = 0.5 * (1.0 - math.cos(math.pi * t))
        return float(max(self.floor, self.start + (self.end - self.start) * t))

    __call__ = noise
