"""The training loop shared by every model family.

A :class:`ModelTask` (one per family, in ``whaleflow.families``) knows how to build
its model, run one epoch and evaluate; the :class:`Trainer` owns what is common:
progressive-resizing stages, per-epoch seeding, best-model tracking, checkpoints
that resume exactly, and callbacks. The loop reports only through callbacks, so the
Ray layer plugs in without this module knowing about it.
"""
from __future__ import annotations

import abc
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..config import StageConfig, size_hw


def size_label(size) -> int | str:
    """A stage size for metrics.csv: the side of a square, or "HxW" for a rectangle."""
    h, w = size_hw(size)
    return h if h == w else f"{h}x{w}"
from .callbacks import Callback, CallbackList
from .checkpoint import candidates, load_checkpoint, load_latest, remove_partial_writes, save_checkpoint, set_rng_state


class ModelTask(abc.ABC):
    """What a model family provides to the trainer."""

    name: str = "model"

    @abc.abstractmethod
    def setup_stage(self, stage: StageConfig, *, fresh: bool) -> None:
        """Enter a stage: image size and dropout always; LR and weight decay only when ``fresh``
        (on resume the optimizer state already holds them, plateau reductions included)."""

    @abc.abstractmethod
    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """Run one epoch; return at least ``loss``."""

    @abc.abstractmethod
    def evaluate(self) -> float:
        """Validation MAP@5 (with the new_whale threshold tuned on the same validation set)."""

    def end_epoch(self, epoch: int, val_map5: float | None) -> None:
        """LR schedule step, after evaluation."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def model_state(self) -> dict[str, Any]:
        """Weights only (what the best checkpoint keeps)."""

    @abc.abstractmethod
    def load_model_state(self, state: dict[str, Any]) -> None: ...

    def current_lr(self) -> float:
        return float("nan")

    def close(self) -> None:
        """Release what only training needs (the loader's worker processes); called when
        :meth:`Trainer.fit` ends, however it ends."""


@dataclass
class TrainState:
    epoch: int = 0                  # epochs completed (global, across stages)
    best_map5: float = -1.0
    best_epoch: int = -1


class Trainer:
    """Runs ``task`` through ``stages``, checkpointing into ``checkpoint_dir``."""

    def __init__(
        self,
        task: ModelTask,
        stages: Sequence[StageConfig],
        *,
        checkpoint_dir: str | Path,
        callbacks: Sequence[Callback] = (),
        seed: int = 0,
        eval_every: int = 1,
        checkpoint_every: int = 1,
    ):
        if not stages:
            raise ValueError("a model needs at least one stage")
        self.task = task
        self.stages = list(stages)
        self.checkpoint_dir = Path(checkpoint_dir)
        self.callbacks = CallbackList(callbacks)
        self.seed = seed
        self.eval_every = max(1, eval_every)
        self.checkpoint_every = max(1, checkpoint_every)
        self.state = TrainState()
        self.history: list[dict[str, Any]] = []
        self._stage_of_epoch = [i for i, s in enumerate(self.stages) for _ in range(s.epochs)]

    @property
    def total_epochs(self) -> int:
        return len(self._stage_of_epoch)

    @property
    def last_path(self) -> Path:
        return self.checkpoint_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.checkpoint_dir / "best.pt"

    def _seed_epoch(self, epoch: int) -> None:
        # Seeding from (seed, epoch) makes an epoch's randomness independent of how
        # the run got there, so a resumed run replays exactly what it would have done.
        s = (self.seed * 1_000_003 + epoch) % (2**31)
        random.seed(s)
        np.random.seed(s)
        torch.manual_seed(s)

    def _evaluates(self, epoch: int) -> bool:
        """Validate after ``epoch``? Every ``eval_every`` epochs — the stage's own when it sets
        one, counted from the stage's first epoch, and always on a stage's last epoch (its
        best weights are then known at that size) — else every ``train.eval_every`` epochs
        of the run, as before; always after the run's last epoch."""
        stage_idx = self._stage_of_epoch[epoch]
        every = self.stages[stage_idx].eval_every
        if epoch == self.total_epochs - 1:
            return True
        if every is None:
            return (epoch + 1) % self.eval_every == 0
        first = self._stage_of_epoch.index(stage_idx)
        stage_last = epoch + 1 == len(self._stage_of_epoch) or self._stage_of_epoch[epoch + 1] != stage_idx
        return (epoch - first + 1) % int(every) == 0 or stage_last

    def restore(self, path: str | Path | None = None) -> bool:
        """Load the newest checkpoint that loads (``last.pt``, else ``previous.pt``, said on
        stderr); True if something was restored. Temp files of a killed write are removed."""
        remove_partial_writes(self.checkpoint_dir)
        found = load_latest(candidates(path or self.last_path), name=self.task.name)
        if found is None:
            return False
        ckpt, _ = found
        self.task.load_state_dict(ckpt["task"])
        self.state = TrainState(**ckpt["state"])
        self.history = list(ckpt.get("history", []))
        set_rng_state(ckpt["rng"])
        return True

    def fit(self, resume: bool = True) -> list[dict[str, Any]]:
        try:
            return self._fit(resume)
        finally:
            self.task.close()

    def _fit(self, resume: bool) -> list[dict[str, Any]]:
        if resume:
            self.restore()
        self.callbacks.on_fit_start(self)
        current_stage = None
        for epoch in range(self.state.epoch, self.total_epochs):
            stage_idx = self._stage_of_epoch[epoch]
            if stage_idx != current_stage:
                first_of_stage = epoch == 0 or self._stage_of_epoch[epoch - 1] != stage_idx
                self.task.setup_stage(self.stages[stage_idx], fresh=first_of_stage)
                current_stage = stage_idx
                self.callbacks.on_stage_start(self, stage_idx)
            self._seed_epoch(epoch)
            self.callbacks.on_epoch_start(self)
            t0 = time.time()
            metrics = dict(self.task.train_epoch(epoch))
            last = epoch == self.total_epochs - 1
            val = None
            if self._evaluates(epoch):
                val = float(self.task.evaluate())
            self.task.end_epoch(epoch, val)
            metrics.update(
                epoch=epoch,
                stage=stage_idx,
                size=size_label(self.stages[stage_idx].size),
                lr=self.task.current_lr(),
                val_map5=val,
                seconds=time.time() - t0,
            )
            self.state.epoch = epoch + 1
            if val is not None and val > self.state.best_map5:
                self.state.best_map5, self.state.best_epoch = val, epoch
                save_checkpoint(
                    self.best_path,
                    {"model": self.task.model_state(), "epoch": epoch, "val_map5": val, "size": self.stages[stage_idx].size},
                )
            self.history.append(metrics)
            if (epoch + 1) % self.checkpoint_every == 0 or last:
                save_checkpoint(
                    self.last_path,
                    {"task": self.task.state_dict(), "state": asdict(self.state), "history": self.history},
                    keep_previous=True,
                )
                metrics["checkpoint_dir"] = str(self.checkpoint_dir)
            self.callbacks.on_epoch_end(self, metrics)
        self.callbacks.on_fit_end(self)
        return self.history

    def load_best(self) -> None:
        """Put the best validation weights into the task (if any were saved), at the image
        size they were validated at: weights from an early, smaller stage score worse at a
        later stage's size."""
        if self.best_path.exists():
            best = load_checkpoint(self.best_path)
            self.task.load_model_state(best["model"])
            if "size" in best:
                self.task.size = best["size"]
