"""When the siamese trainer mines: warm-up, every K epochs, never on a stage change.

``MiningSchedule(start, every, stage_starts)`` is a pure function of the epoch, so
a resumed run mines on the same epochs as an uninterrupted one. Rounds fall on
``start, start + every, …``; a round that lands on the first epoch of a new
image-size stage moves to the epoch after it: the first epoch at a new size is
already a shock (the features change), and mining on it scores pairs with a model
that has not seen the new size yet — the two together made validation fall in the
demo. ``enabled=False`` (``solver: none``) never mines.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class MiningSchedule:
    start: int = 0
    every: int = 1
    stage_starts: tuple[int, ...] = ()
    enabled: bool = True

    def __post_init__(self):
        if self.start < 0 or self.every < 1:
            raise ConfigError(f"mining start must be ≥ 0 and every ≥ 1, got start={self.start}, every={self.every}")
        object.__setattr__(self, "stage_starts", tuple(int(s) for s in self.stage_starts if s > 0))

    @classmethod
    def for_stages(cls, start: int, every: int, stage_epochs: Sequence[int], enabled: bool = True) -> "MiningSchedule":
        """The schedule for stages of the given lengths (their first epochs are stage changes)."""
        return cls(int(start), int(every), tuple(np.cumsum(stage_epochs)[:-1].tolist()), enabled)

    def _on_grid(self, epoch: int) -> bool:
        return epoch >= self.start and (epoch - self.start) % self.every == 0

    def due(self, epoch: int) -> bool:
        """Whether a mining round runs before training epoch ``epoch``."""
        if not self.enabled or epoch in self.stage_starts:
            return False
        return self._on_grid(epoch) or (epoch - 1 in self.stage_starts and self._on_grid(epoch - 1))

    def rounds(self, epochs: int) -> list[int]:
        """The epochs of ``range(epochs)`` with a mining round."""
        return [e for e in range(epochs) if self.due(e)]
