"""The Optuna study behind :func:`.tune.tune_blend`: its name, its run and how its trials are read.

The study lives in SQLite (``RDBStorage``) under a name derived from the models and their
validation scores, with ``load_if_exists``: a rerun on the same trials continues the study
(each run adds ``trials`` more), a changed set of models starts a new study in the same file;
with no ``storage_path`` (the outer folds) it lives in memory. Every single model is enqueued
as a one-hot trial (plus equal weights), so the search starts from what each model does alone.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..progress import progress_bar

__all__ = ["StudyRun", "run_study", "study_name_of", "within_se"]


@dataclass
class StudyRun:
    """A finished run of the study: the study, its best trial, and how many trials it holds,
    held before this run and ran in it."""

    study: Any
    best: Any
    n_total: int
    before: int
    n_run: int


def study_name_of(names, matrices, truth_idx, folds, seed, fixed, prior=None, row_weights=None) -> str:
    h = hashlib.sha1()
    for name, m in zip(names, matrices):
        h.update(name.encode() + b"\0")
        h.update(np.ascontiguousarray(m, dtype=np.float32).tobytes())
    h.update(np.asarray(truth_idx, dtype=np.int64).tobytes())
    if row_weights is not None:  # another objective: another study
        h.update(b"weights" + np.asarray(row_weights, dtype=np.float64).tobytes())
    h.update(f"{folds}|{seed}|{fixed}".encode() + (f"|prior={prior}".encode() if prior is not None else b""))
    return "blend-" + h.hexdigest()[:16]


def run_study(objective: Callable, keys: list[str], study_name: str, storage_path: str | Path | None, *,
              trials: int, seed: int, progress: bool) -> StudyRun:
    """Create or continue the study ``study_name`` (TPE, seeded), enqueue the one-hot and equal
    weights, and run ``trials`` trials (at least the enqueued ones still waiting)."""
    import optuna

    if storage_path is not None:
        storage_path = Path(storage_path)
        storage_path.parent.mkdir(parents=True, exist_ok=True)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = (optuna.storages.InMemoryStorage() if storage_path is None
               else optuna.storages.RDBStorage(f"sqlite:///{storage_path.resolve()}"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
            study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler,
                                        direction="maximize", load_if_exists=True)
            before = len(study.trials)
            for i in range(len(keys)):
                study.enqueue_trial({k: float(j == i) for j, k in enumerate(keys)}, skip_if_exists=True)
            study.enqueue_trial({k: 1.0 for k in keys}, skip_if_exists=True)
            waiting = sum(t.state == optuna.trial.TrialState.WAITING for t in study.trials)
            n_run = max(int(trials), waiting)
            with progress_bar(n_run, "ensemble: Optuna blend trials", quiet=not progress, unit="trials") as bar:
                study.optimize(objective, n_trials=n_run, callbacks=[_Progress(bar)])
            best = study.best_trial
            n_total = len(study.trials)
    finally:
        optuna.logging.set_verbosity(verbosity)
        engine = getattr(storage, "engine", None)
        if engine is not None:
            engine.dispose()
    return StudyRun(study=study, best=best, n_total=n_total, before=before, n_run=n_run)


def within_se(trials, keys: list[str], floor: float) -> tuple[np.ndarray, int]:
    """Mean normalised weights of the finished trials scoring at least ``floor``: on a small
    validation set many weight vectors tie within noise, and the single best of them (often a
    one-hot trial, enqueued first) is the most overfitted choice."""
    kept = []
    for t in trials:
        if t.value is None or t.value < floor or not all(k in t.params for k in keys):
            continue
        w = np.array([t.params[k] for k in keys])
        kept.append(w / w.sum() if w.sum() > 0 else np.full(len(keys), 1.0 / len(keys)))
    return np.mean(kept, axis=0), len(kept)


class _Progress:
    """Advance the progress bar with the best cross-validated MAP@5 so far as its note."""

    def __init__(self, bar):
        self.bar = bar

    def __call__(self, study, trial) -> None:
        try:
            best = f"best CV MAP@5 {study.best_value:.4f}"
        except ValueError:
            best = ""
        self.bar.advance(note=best)
