"""Train one model variant end to end: build its family task, fit, export artifacts.

This is what a Ray trial calls (with its reporting and mining callbacks) and what
the local pipeline calls directly. A trial folder holds everything later steps need:
``checkpoints/`` (last, the previous last, best), ``metrics.csv``, ``scores_val.npz``,
``scores_test.npz``, ``embeddings.npz``, ``model.pt`` + ``gallery.npz`` (the exported
weights and gallery vectors ``whaleflow identify`` reads) and ``result.json``, which is
written last and marks the trial finished.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from .config import Config, ModelConfig, to_dict
from .engine import Callback, MetricsLogger, ProgressPrinter, Trainer
from .io import write_json, write_text
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


def trial_fingerprint(cfg: Config, model_cfg: ModelConfig) -> str:
    """A hash of everything that decides what a trial learns: the model variant (its shared
    fields and its own family's sections and fields alone, :meth:`ModelConfig.trial_settings`:
    another family's defaults retrain nothing here) and the
    data, prepare, train and predict settings. Ray and search settings do not count, nor
    ``train.device``: a model trained on a GPU or on the CPU is the same trial; nor how its
    batches are loaded (``train.workers``, ``train.prefetch``, ``data.local_cache_dir``),
    which changes no batch."""
    payload = {k: to_dict(getattr(cfg, k)) for k in ("data", "prepare", "train", "predict")}
    for key in ("device", "workers", "prefetch"):
        payload["train"].pop(key, None)
    payload["data"].pop("local_cache_dir", None)  # where a node keeps copies, not what it learns
    payload["train"].pop("final_fit", None)  # a validated trial is the same with or without a final fit
    if payload["train"].get("grad_clip") is None:  # off, as before the key existed: old trials stay finished
        payload["train"].pop("grad_clip", None)
    payload["model"] = model_cfg.trial_settings()
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def trial_finished(trial_dir: str | Path, fingerprint: str | None = None) -> dict[str, Any] | None:
    """The trial's result if it finished (with the same settings, when ``fingerprint`` is given)."""
    path = Path(trial_dir) / "result.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    if fingerprint is not None and result.get("fingerprint") != fingerprint:
        return None
    return result


def set_aside_if_stale(trial_dir: Path, fingerprint: str) -> Path | None:
    """Move a trial folder trained with other settings out of the way (kept, not deleted),
    so it neither resumes into the new settings nor gets blended. Returns where it went."""
    marker = trial_dir / "fingerprint.txt"
    if not trial_dir.exists() or not any(trial_dir.iterdir()):
        return None
    if marker.exists() and marker.read_text().strip() == fingerprint:
        return None
    dest = trial_dir.parent.parent / "stale" / f"{trial_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(trial_dir), dest)
    return dest


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
    fingerprint = trial_fingerprint(cfg, model_cfg)
    if resume:
        done = trial_finished(trial_dir, fingerprint)
        if done is not None:
            return done
    moved = set_aside_if_stale(trial_dir, fingerprint)
    if moved is not None and progress and not cfg.output.quiet:
        print(f"[{model_cfg.name}] settings changed since {trial_dir} was trained; old trial moved to {moved}")
    trial_dir.mkdir(parents=True, exist_ok=True)
    write_text(trial_dir / "fingerprint.txt", fingerprint + "\n")
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
        "fingerprint": fingerprint,
    }
    write_json(trial_dir / "result.json", result)
    return result
