"""``train.final_fit``: retrain each model on every labelled photo for the test predictions.

A validated trial never learns from its validation photos — for many individuals one
of only two — yet the test set asks about them. The winning HWI and Happywhale
solutions therefore retrained each model on train + validation for the number of
epochs its validated run had chosen, and predicted the test set with that fit. Here:

* the data is the prepared split with validation folded into training
  (:func:`final_prepared`): known validation photos train under their true ids,
  individuals held out as new ones included; ``new_whale`` photos still never train;
* the length is the validated run's best epoch + 1, over the same stages cut short
  there (:func:`truncate_stages`); nothing is evaluated (there is nothing left to
  evaluate on), so the last epoch is the model;
* it writes ``RUN_DIR/final/<trial>/`` like a trial (``scores_test.npz``,
  ``embeddings.npz``, ``result.json`` last), outside ``trials/`` so it is never
  blended as a model of its own. The ensemble takes each model's test scores from its
  final fit, with a normaliser fitted on that fit's own scores, and keeps the
  validated trial's validation scores for the weights and the threshold.

On Ray each final fit is one more trial (``ray_jobs.final_fit``); locally the final fits
follow once every model has trained (:class:`~whaleflow.local_executor.LocalExecutor`).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

from .config import Config, ModelConfig, StageConfig
from .io import write_json
from .labels import NEW_WHALE

__all__ = ["FINAL_DIR", "final_dir", "final_epochs", "final_prepared", "truncate_stages", "train_final",
           "final_test_scores"]

FINAL_DIR = "final"
#: evaluate only after the last epoch (on an empty validation set): the last epoch is the model
_NEVER = 10 ** 9


def final_dir(run_dir: str | Path, trial_name: str) -> Path:
    return Path(run_dir) / FINAL_DIR / trial_name


def final_epochs(result: dict[str, Any]) -> int:
    """Epochs for the final fit: the validated run's best epoch + 1 (all its epochs if unknown)."""
    best = result.get("best_epoch")
    if isinstance(best, int) and best >= 0:
        return best + 1
    return max(1, int(result.get("epochs") or 1))


def truncate_stages(stages: Sequence[StageConfig], epochs: int) -> list[StageConfig]:
    """The stages of a run cut after ``epochs`` epochs in all (the last kept stage shortened)."""
    out, left = [], int(epochs)
    for st in stages:
        if left <= 0:
            break
        out.append(dataclasses.replace(st, epochs=min(st.epochs, left)))
        left -= out[-1].epochs
    return out or [dataclasses.replace(stages[0], epochs=1)]


def final_prepared(prepared):
    """``prepared`` with validation folded into training: labelled validation photos train
    under their true ids (held-out individuals too), ``new_whale`` ones are unused."""
    idx = prepared.index.copy()
    val = (idx["role"] == "val").to_numpy()
    is_new = (idx["id"].astype(str) == NEW_WHALE).to_numpy()
    idx.loc[val & ~is_new, "role"] = "train"
    idx.loc[val & is_new, "role"] = "unused"
    if "held_out" in idx.columns:
        idx["held_out"] = False
    return dataclasses.replace(prepared, index=idx)


def train_final(cfg: Config, model_cfg: ModelConfig, prepared, validated_dir: str | Path, out_dir: str | Path,
                *, callbacks=(), task_kwargs: dict[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
    """Retrain ``model_cfg`` on train + val for its validated run's epoch count into ``out_dir``."""
    from .training import train_model

    validated_dir, out_dir = Path(validated_dir), Path(out_dir)
    validated = json.loads((validated_dir / "result.json").read_text(encoding="utf-8"))
    epochs = final_epochs(validated)
    mc = dataclasses.replace(model_cfg, stages=truncate_stages(model_cfg.stages, epochs))
    fcfg = cfg.replace(train=dataclasses.replace(cfg.train, eval_every=_NEVER, max_train_images=None))
    result = train_model(fcfg, mc, final_prepared(prepared), out_dir, callbacks=callbacks, resume=True,
                         task_kwargs=task_kwargs, progress=progress)
    if result.get("final_of") != validated_dir.name:
        result = {**result, "final_of": validated_dir.name, "final_epochs": epochs,
                  "validated_best_epoch": validated.get("best_epoch")}
        write_json(out_dir / "result.json", result)
    return result


def final_test_scores(run_dir: str | Path, trial_name: str) -> Path | None:
    """The final fit's ``scores_test.npz`` of a trial, when it finished."""
    d = final_dir(run_dir, trial_name)
    if (d / "result.json").is_file() and (d / "scores_test.npz").is_file():
        return d / "scores_test.npz"
    return None
