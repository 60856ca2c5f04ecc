"""The pipeline's steps on Ray: the models as one Tune experiment, the ensemble as a Ray task.

:func:`whaleflow.pipeline.run_pipeline` sequences the steps; this executor runs them inside a
Ray session (:func:`~ray_jobs.pipeline.ray_session`), with absolute paths (trials and tasks
run in other folders and on other nodes), and checks before the data is prepared that every
trial's request fits the cluster and that the run folder is shared
(:func:`~ray_jobs.pipeline.preflight`). Training is :func:`~ray_jobs.tuner.run_experiment`
(timing ``tune_s``), the final fits one more experiment
(:func:`~ray_jobs.final_fit.run_final_experiment`, ``final_fit_s``), the ensemble
:func:`~ray_jobs.ensemble_driver.run_ensemble_task`.
"""
from __future__ import annotations

import time
from typing import Any, ContextManager, Mapping, Sequence

from whaleflow.config import Config
from whaleflow.executor import Executor

__all__ = ["RayExecutor"]

#: the steps that start trials: the cluster must be able to hold them
_TRIAL_STEPS = ("train", "final_fit")


class RayExecutor(Executor):
    """Trials on a Ray cluster (``whaleflow run``/``tune``/``ensemble`` without ``--local``)."""

    def start(self, cfg: Config, *, progress: bool = True) -> Config:
        from .pipeline import absolute

        return absolute(super().start(cfg, progress=progress))

    def session(self, cfg: Config, *, progress: bool = True) -> ContextManager[Any]:
        from .pipeline import ray_session

        return ray_session(cfg, progress=progress)

    def preflight(self, cfg: Config, steps: Sequence[str]) -> None:
        from .pipeline import preflight
        from .shared_storage import check_shared_storage

        if any(s in steps for s in _TRIAL_STEPS):
            preflight(cfg)
        else:  # blending only: the ensemble task must see the run folder
            check_shared_storage(cfg)

    def train(self, cfg: Config, prepared, timings: dict[str, float], *, resume: bool = True,
              progress: bool = True) -> dict[str, Any]:
        from .tuner import run_experiment

        t = time.time()
        tuned = run_experiment(cfg, resume=resume, progress=progress)
        timings["tune_s"] = time.time() - t
        return tuned

    def final_fit(self, cfg: Config, prepared, timings: dict[str, float], *, progress: bool = True) -> dict[str, Any]:
        from .final_fit import run_final_experiment
        from .tuner import gpus_for_trials

        t = time.time()
        fits = run_final_experiment(cfg, gpus_for_trials(cfg), progress=progress)
        timings["final_fit_s"] = time.time() - t
        return fits

    def ensemble(self, cfg: Config, *, test_duplicates: Mapping[str, Sequence[str]] | None = None,
                 progress: bool = True) -> dict[str, Any]:
        from .ensemble_driver import run_ensemble_task

        return run_ensemble_task(cfg, progress=progress, test_duplicates=test_duplicates)
