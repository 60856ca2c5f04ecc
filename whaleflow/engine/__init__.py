"""The training engine: one loop for every model family, reporting through callbacks.

It never imports Ray: ``ray_jobs`` adds a callback that forwards metrics and
checkpoints to Tune, so the same loop trains a model alone or inside a trial.
"""
from .callbacks import Callback, CallbackList, MetricsLogger, ProgressPrinter
from .checkpoint import load_checkpoint, save_checkpoint
from .device import autocast, resolve_device
from .trainer import Trainer, TrainState

__all__ = [
    "Callback",
    "CallbackList",
    "MetricsLogger",
    "ProgressPrinter",
    "Trainer",
    "TrainState",
    "autocast",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
]
