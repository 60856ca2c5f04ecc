"""Training callbacks: how the loop reports, logs and hands control to mining or Ray."""
from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer


class Callback:
    """Hooks the trainer calls; override what you need. ``metrics`` is the epoch's row."""

    def on_fit_start(self, trainer: "Trainer") -> None: ...

    def on_stage_start(self, trainer: "Trainer", stage_index: int) -> None: ...

    def on_epoch_start(self, trainer: "Trainer") -> None: ...

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, Any]) -> None: ...

    def on_checkpoint(self, trainer: "Trainer", path: Path, metrics: dict[str, Any]) -> None: ...

    def on_fit_end(self, trainer: "Trainer") -> None: ...


class CallbackList(Callback):
    def __init__(self, callbacks=()):
        self.callbacks = [c for c in callbacks if c is not None]

    def _each(self, name, *args):
        for cb in self.callbacks:
            getattr(cb, name)(*args)

    def on_fit_start(self, trainer):
        self._each("on_fit_start", trainer)

    def on_stage_start(self, trainer, stage_index):
        self._each("on_stage_start", trainer, stage_index)

    def on_epoch_start(self, trainer):
        self._each("on_epoch_start", trainer)

    def on_epoch_end(self, trainer, metrics):
        self._each("on_epoch_end", trainer, metrics)

    def on_checkpoint(self, trainer, path, metrics):
        self._each("on_checkpoint", trainer, path, metrics)

    def on_fit_end(self, trainer):
        self._each("on_fit_end", trainer)


class MetricsLogger(Callback):
    """Appends each epoch's metrics to ``metrics.csv`` (the report's curves read it).

    On resume the file is rewritten to match the restored state: from the checkpoint's
    own history when it has every epoch (so a row the killed process never got to
    write is not lost), else the file's rows up to the checkpoint's epoch. The
    ``mining_noise``/``mining_neg_score``/``mining_pos_score``/``mining_neg_easy`` columns
    are filled on the epochs that took a new mining round's pairs into use (siamese
    family) and empty otherwise.
    """

    FIELDS = ["epoch", "stage", "size", "lr", "loss", "val_map5", "seconds", "mining_seconds", "mining_hardness",
              "mining_source", "mining_noise", "mining_neg_score", "mining_pos_score", "mining_neg_easy"]

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_fit_start(self, trainer):
        done = trainer.state.epoch
        if done and len(trainer.history) == done:
            self._write([{k: m.get(k, "") for k in self.FIELDS} for m in trainer.history])
        elif self.path.exists():
            with open(self.path, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) < trainer.state.epoch]
            self._write(rows)

    def on_epoch_end(self, trainer, metrics):
        rows = []
        if self.path.exists():
            with open(self.path, newline="") as fh:
                rows = list(csv.DictReader(fh))
        rows.append({k: metrics.get(k, "") for k in self.FIELDS})
        self._write(rows)

    def _write(self, rows):
        from ..io import atomic_path

        with atomic_path(self.path, suffix=".csv") as tmp:
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=self.FIELDS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)


class ProgressPrinter(Callback):
    """One line per epoch on the console; silent when quiet or not on a terminal-less CI log."""

    def __init__(self, name: str, quiet: bool = False, stream=None):
        self.name = name
        self.quiet = quiet
        self.stream = stream or sys.stderr

    def on_epoch_end(self, trainer, metrics):
        if self.quiet:
            return
        total = trainer.total_epochs
        val = metrics.get("val_map5")
        val_s = f" val MAP@5 {val:.3f}" if isinstance(val, float) else ""
        print(
            f"[{self.name}] epoch {metrics['epoch'] + 1}/{total} size {metrics['size']} "
            f"loss {metrics['loss']:.4f}{val_s} ({metrics['seconds']:.1f}s)",
            file=self.stream,
            flush=True,
        )
