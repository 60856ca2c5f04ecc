"""Train one model variant end to end: build its family task, fit, export artifacts.

This is what a Ray trial calls (with its reporting and mining callbacks) and what
the local pipeline calls directly. A trial folder holds everything later steps need:
``checkpoints/`` (last + best), ``metrics.csv``, ``scores_val.npz``,
``scores_test.npz``, ``embeddings.npz`` (metric family) and ``result.json``, which is
written last and marks the trial finished.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

from .config import Config, ModelConfig
from .engine import Callback, MetricsLogger, ProgressPrinter, Trainer
from .io import write_json
from .registry import FAMILIES


def build_task(cfg: Config, model_cfg: ModelConfig, prepared, **extra):
    import torch

    from . import families  # noqa: F401  (registers the families)

    # the same seed gives the same initial weights, whichever process builds the model
    torch.manual_seed(cfg.train.seed)
    return FAMILIES.build(
        model_cfg.family,
        model_cfg=model_cfg,
        prepared=prepared,
        train_cfg=cfg.train,
        predict_cfg=cfg.predict,
        quiet=cfg.output.quiet,
        **extra,
    )


def trial_finished(trial_dir: str | Path) -> dict[str, Any] | None:
    path = Path(trial_dir) / "result.json"
    return json.loads(path.read_text()) if path.exists() else None


def train_model(
    cfg: Config,
    model_cfg: ModelConfig,
    prepared,
    trial_dir: str | Path,
    *,
    callbacks: Sequence[Callback] = (),
    resume: bool = True,
    task_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit ``model_cfg`` on ``prepared`` into ``trial_dir``; skip if already finished."""
    trial_dir = Path(trial_dir)
    if resume:
        done = trial_finished(trial_dir)
        if done is not None:
            return done
    trial_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    task = build_task(cfg, model_cfg, prepared, **(task_kwargs or {}))
    trainer = Trainer(
        task,
        model_cfg.stages,
        checkpoint_dir=trial_dir / "checkpoints",
        callbacks=[
            MetricsLogger(trial_dir / "metrics.csv"),
            ProgressPrinter(model_cfg.name, quiet=cfg.output.quiet or not progress),
            *callbacks,
        ],
        seed=cfg.train.seed,
        eval_every=cfg.train.eval_every,
        checkpoint_every=cfg.train.checkpoint_every,
    )
    history = trainer.fit(resume=resume)
    trainer.load_best()
    exported = task.export(trial_dir)
    result = {
        "name": model_cfg.name,
        "family": model_cfg.family,
        "backbone": model_cfg.backbone,
        "val_map5": exported["val_map5"],
        "threshold": exported["threshold"],
        "best_epoch": trainer.state.best_epoch,
        "epochs": trainer.total_epochs,
        "final_loss": history[-1]["loss"] if history else None,
        "seconds": time.time() - t0,
    }
    write_json(trial_dir / "result.json", result)
    return result
