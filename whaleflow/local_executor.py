"""The pipeline's steps in this process, without Ray: each model in turn, then each final fit.

A model that finished before is not retrained (``train_model`` returns its result), an
unfinished one resumes from its checkpoints; so does a final fit. The ensemble reads the run
folder's finished trials (:func:`whaleflow.pipeline.ensemble_in_store`).
"""
from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

from .config import Config
from .executor import Executor

__all__ = ["LocalExecutor"]


class LocalExecutor(Executor):
    """Models one after another in this process (``whaleflow run --local``)."""

    def train(self, cfg: Config, prepared, timings: dict[str, float], *, resume: bool = True,
              progress: bool = True) -> None:
        from .pipeline import train_in_store

        for model_cfg in cfg.models:
            t = time.time()
            train_in_store(cfg, model_cfg, prepared, model_cfg.name, resume=resume, progress=progress)
            timings[f"train_{model_cfg.name}_s"] = time.time() - t
        return None

    def final_fit(self, cfg: Config, prepared, timings: dict[str, float], *, progress: bool = True) -> None:
        from .final_fit import final_dir, train_final
        from .storage import RunStore

        run_dir = RunStore.for_config(cfg).local
        for model_cfg in cfg.models:
            t = time.time()
            train_final(cfg, model_cfg, prepared, run_dir / "trials" / model_cfg.name,
                        final_dir(run_dir, model_cfg.name), progress=progress)
            timings[f"final_{model_cfg.name}_s"] = time.time() - t
        return None

    def ensemble(self, cfg: Config, *, test_duplicates: Mapping[str, Sequence[str]] | None = None,
                 progress: bool = True) -> dict[str, Any]:
        from .pipeline import ensemble_in_store

        return ensemble_in_store(cfg, progress=progress, test_duplicates=test_duplicates)
