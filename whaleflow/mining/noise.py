"""Annealed noise for LAP mining.

Gaussian noise added to the score matrix before solving makes the mined pairs
easier (more random) early in training, when the model cannot yet tell hard pairs
apart and the hardest ones would only teach it noise; it shrinks to ``end`` (usually
0: pure hard mining) over ``epochs`` epochs and stays there.

Two shapes: ``linear`` (the default; even steps, predictable) and ``cosine`` (stays
near ``start`` longer, then falls, and flattens near ``end``). The std is absolute,
in the units of the scores (logits for a pair head, cosines for embeddings).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError

SHAPES = ("linear", "cosine")


@dataclass(frozen=True)
class NoiseSchedule:
    """``NoiseSchedule(start, end, epochs, shape="linear")``; ``noise(epoch)`` → std."""

    start: float = 1.0
    end: float = 0.0
    epochs: int = 20
    shape: str = "linear"

    def __post_init__(self):
        if self.start < 0 or self.end < 0:
            raise ConfigError(f"noise std must be ≥ 0, got start={self.start}, end={self.end}")
        if self.epochs < 0:
            raise ConfigError(f"noise epochs must be ≥ 0, got {self.epochs}")
        if self.shape not in SHAPES:
            raise ConfigError(f"noise shape must be one of {SHAPES}, got {self.shape!r}")

    def noise(self, epoch: float) -> float:
        """The std at ``epoch`` (0-based; fractions allowed): ``start`` at 0, ``end`` from ``epochs`` on."""
        if epoch < 0:
            raise ValueError(f"epoch must be ≥ 0, got {epoch}")
        if self.epochs == 0 or epoch >= self.epochs:
            return float(self.end)
        t = epoch / self.epochs
        if self.shape == "cosine":
            t = 0.5 * (1.0 - math.cos(math.pi * t))
        return float(self.start + (self.end - self.start) * t)

    __call__ = noise
