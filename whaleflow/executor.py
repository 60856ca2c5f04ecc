"""What runs the pipeline's steps: the operations that differ between one process and a Ray cluster.

:func:`whaleflow.pipeline.run_pipeline` lists the steps once (prepare → train → final fit →
ensemble → pseudo-label rounds → finalize); an :class:`Executor` says how each step that
trains or blends runs. :class:`~whaleflow.local_executor.LocalExecutor` trains the models one
after another in this process; ``ray_jobs.ray_executor.RayExecutor`` trains them as a Tune
experiment and blends in a Ray task. Everything else (the run folder, preparing the data,
the rounds' labels, ``finalize``) is the pipeline's and the same for both.

Each executor names its own timing keys (``timings`` is written to ``summary.json`` and
shown by the report): locally one per model (``train_<name>_s``, ``final_<name>_s``), on Ray
one per experiment (``tune_s``, ``final_fit_s``). The pipeline adds ``prepare_s``,
``ensemble_s``, ``pseudo_rounds_s`` and ``total_s``.
"""
from __future__ import annotations

import abc
import contextlib
from typing import Any, ContextManager, Mapping, Sequence

from .config import Config

__all__ = ["Executor"]


class Executor(abc.ABC):
    """How a run's models are trained, final-fitted and blended (see the module notes)."""

    def start(self, cfg: Config, *, progress: bool = True) -> Config:
        """The run-start bookkeeping (:func:`~whaleflow.pipeline.start_run`): the run folder, the
        resolved data root and sizes, ``config.yaml``; returns the resolved config."""
        from .pipeline import start_run

        return start_run(cfg, progress=progress)

    def session(self, cfg: Config, *, progress: bool = True) -> ContextManager[Any]:
        """What the steps before ``finalize`` run inside (a Ray connection); nothing locally."""
        return contextlib.nullcontext()

    def preflight(self, cfg: Config, steps: Sequence[str]) -> None:
        """Checks that must fail before the data is prepared (minutes on a large set)."""

    @abc.abstractmethod
    def train(self, cfg: Config, prepared, timings: dict[str, float], *, resume: bool = True,
              progress: bool = True) -> dict[str, Any] | None:
        """Train every model of ``cfg`` into ``trials/`` (finished trials are never retrained,
        unfinished ones resume); returns what the executor records of it (Ray: the Tune summary)."""

    @abc.abstractmethod
    def final_fit(self, cfg: Config, prepared, timings: dict[str, float], *,
                  progress: bool = True) -> dict[str, Any] | None:
        """``train.final_fit``: retrain each finished trial on train + val into ``final/``."""

    @abc.abstractmethod
    def ensemble(self, cfg: Config, *, test_duplicates: Mapping[str, Sequence[str]] | None = None,
                 progress: bool = True) -> dict[str, Any]:
        """Blend the run folder's finished trials into ``submission.csv``; the ensemble summary."""
