"""The Tune trainable: one trial = one model variant, trained by the library's ``train_model``.

A plain function (Tune's function API). It rebuilds the run's ``Config`` from the
driver's dict plus the trial's sampled params, loads the prepared data from the run
folder, and trains into ``RUN_DIR/trials/<trial name>/``, where the ensemble driver
finds it. The only Ray-specific pieces are here:

* :class:`TuneReporter`, an engine ``Callback`` that forwards each epoch's metrics to
  ``ray.tune.report`` with the checkpoint folder the trainer just wrote;
* resuming: when Tune restores or retries a trial, ``ray.tune.get_checkpoint()`` is
  copied into the trial folder's ``checkpoints/`` and the trainer resumes from it
  exactly (RNG included) — on whatever node the trial now runs;
* a trial whose family mines (:func:`whaleflow.families.mining_settings`) does so through a
  :class:`~ray_jobs.mining_client.RayMiningClient`;
* a trial given no GPU trains on the CPU (:func:`cpu_unless_given_gpus`);
* what the trial prints, and one line per epoch, go to ``trials/<name>/log.txt``;
* with the run folder at a URI (``s3://``, ``gs://``) the trial works in its node's copy
  (:class:`whaleflow.storage.RunStore`): it stages ``prepared/`` to the node's disk once,
  pulls its own folder from earlier attempts, and pushes the folder after every epoch
  and at the end, so the ensemble (on any node) finds it in the bucket.

Each start of a trial appends a line to ``attempts.jsonl`` in its folder (node,
process, ``CUDA_VISIBLE_DEVICES``, the epoch it starts from, start and end time): the
record of where and when it ran, and proof of retries.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from whaleflow.config import Config, from_dict
from whaleflow.engine import Callback, ProgressPrinter
from whaleflow.errors import WhaleflowError
from whaleflow.storage import NOT_MIRRORED, RunStore

from . import quiet_exit
from .trial_log import trial_log

SCALARS = (int, float, str, bool)


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def log_attempt(trial_dir: Path, event: str, **fields) -> None:
    """Append one JSON line to ``trial_dir/attempts.jsonl`` (small, append-only, crash-safe enough)."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    row = {"event": event, "time": time.time(), "pid": os.getpid(), "node_id": _node_id(),
           "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), **fields}
    with open(trial_dir / "attempts.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


def read_attempts(trial_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(trial_dir) / "attempts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class TuneReporter(Callback):
    """Per epoch: ``tune.report(metrics, checkpoint=...)``; the checkpoint is the trainer's folder."""

    def __init__(self, trial_dir: Path, extra: dict[str, Any], store: RunStore | None = None):
        self.trial_dir = trial_dir
        self.extra = extra
        self.store = store
        self.last_val = 0.0
        self.started = False

    def on_fit_start(self, trainer) -> None:
        self.started = True
        log_attempt(self.trial_dir, "start", start_epoch=trainer.state.epoch, epochs=trainer.total_epochs)

    def on_epoch_end(self, trainer, metrics: dict[str, Any]) -> None:
        from ray import tune

        row = {k: v for k, v in metrics.items() if isinstance(v, SCALARS) and k != "checkpoint_dir"}
        if row.get("val_map5") is None:  # epochs without evaluation carry the last value (ASHA needs one)
            row["val_map5"] = self.last_val
        self.last_val = row["val_map5"]
        row.update(self.extra, epochs_total=trainer.total_epochs, best_map5=trainer.state.best_map5)
        ckpt_dir = metrics.get("checkpoint_dir")
        if self.store is not None:  # metrics.csv, log.txt and checkpoints in the bucket before Tune counts the epoch
            self.store.push(self.trial_dir.relative_to(self.store.local).as_posix())
        checkpoint = tune.Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None
        tune.report(row, checkpoint=checkpoint)


def restore_checkpoint(checkpoint, checkpoint_dir: Path) -> bool:
    """Copy Tune's checkpoint (the trainer's ``last.pt``/``best.pt``) into the trial folder."""
    if checkpoint is None:
        return False
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    with checkpoint.as_directory() as src:
        for f in Path(src).iterdir():
            if f.is_file():
                tmp = checkpoint_dir / f".{f.name}.restoring"
                shutil.copy2(f, tmp)
                os.replace(tmp, checkpoint_dir / f.name)
    return True


def _mining_client(cfg: Config, model_cfg, name: str):
    """A started MiningActor client for a trial of ``model_cfg``, or None where its family does not
    mine (:func:`whaleflow.families.mining_settings`)."""
    from whaleflow.families import mining_settings

    from .mining_client import RayMiningClient
    from .resources import mining_actor_memory

    mining = mining_settings(model_cfg)
    if mining is None:
        return None
    return RayMiningClient(mining, seed=cfg.train.seed, timeout_s=cfg.ray.mining_timeout_s,
                           actor_cpus=cfg.ray.mining_actor_cpus, name=f"whaleflow-miner-{name}",
                           memory=mining_actor_memory(cfg)).start()


def _claim(trial_dir: Path, fingerprint: str, store: RunStore) -> None:
    """Make ``trial_dir`` this trial's before anything is written into it: a folder trained with
    other settings goes to ``stale/`` now, and the fingerprint marks the folder as ours, so the
    trainer does not mistake this trial's own ``params.json`` for a stale trial's."""
    from whaleflow.io import write_text
    from whaleflow.training import set_aside_if_stale

    moved = set_aside_if_stale(trial_dir, fingerprint)
    if moved is not None:
        rel = lambda p: p.relative_to(store.local).as_posix()  # noqa: E731
        store.move(rel(trial_dir), rel(moved))  # the bucket's copy too, or a later pull brings it back
        print(f"settings changed since {trial_dir} was trained; the old trial moved to {moved}", file=sys.stderr)
    trial_dir.mkdir(parents=True, exist_ok=True)
    write_text(trial_dir / "fingerprint.txt", fingerprint + "\n")


def _train(cfg: Config, model_cfg, store: RunStore, trial_dir: Path, config: dict[str, Any],
           extra: dict[str, Any]) -> dict:
    from ray import tune

    from whaleflow.pipeline import load_run_prepared
    from whaleflow.training import train_model, trial_fingerprint

    _claim(trial_dir, trial_fingerprint(cfg, model_cfg), store)
    (trial_dir / "params.json").write_text(json.dumps(
        {"model": model_cfg.name, "params": config["variant"].get("params") or {},
         "trial_id": tune.get_context().get_trial_id()}, indent=2, default=str), encoding="utf-8")
    header = f"trial {extra['trial']} on node {extra['node_id'][:12]}, CUDA_VISIBLE_DEVICES={extra['cuda_visible_devices']!r}"
    with trial_log(trial_dir, header) as log:
        extra["restored"] = restore_checkpoint(tune.get_checkpoint(), trial_dir / "checkpoints")
        mining = _mining_client(cfg, model_cfg, extra["trial"])
        reporter = TuneReporter(trial_dir, extra, store if store.remote else None)
        # the loader's workers come out of the trial's own CPUs (train.workers unset)
        task_kwargs = {"cpus": cfg.ray.cpus_per_trial, **({"mining_client": mining} if mining is not None else {})}
        try:
            result = train_model(
                cfg, model_cfg, load_run_prepared(cfg), trial_dir,
                callbacks=[reporter, ProgressPrinter(model_cfg.name, stream=log)], resume=True,
                task_kwargs=task_kwargs, progress=False,
            )
        finally:
            if mining is not None:
                mining.close()
        print(f"finished: val MAP@5 {float(result['val_map5']):.4f}", file=log)
    log_attempt(trial_dir, "end", val_map5=result.get("val_map5"))
    return result


def cpu_unless_given_gpus(cfg: Config) -> Config:
    """A trial Ray gave no GPU trains on the CPU, whatever ``CUDA_VISIBLE_DEVICES`` says.

    Ray 2.60 no longer clears ``CUDA_VISIBLE_DEVICES`` for a worker with 0 GPUs, so on a GPU
    host such a trial would see every GPU and ``device: auto`` would take cuda:0 behind Ray's
    back (beside the trials that own it). Here the variable is emptied (for anything this
    process starts) and ``auto`` becomes ``cpu``; an explicit ``cuda`` is a one-line error.
    """
    import ray

    if ray.get_gpu_ids():
        return cfg
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    device = cfg.train.device
    if device.startswith("cuda"):
        raise WhaleflowError(f"train.device={device} but this trial was given no GPU (ray.gpus_per_trial="
                             f"{cfg.ray.gpus_per_trial:g}). Fix: set ray.gpus_per_trial > 0, or train.device=auto.")
    return cfg.replace(train=dataclasses.replace(cfg.train, device="cpu")) if device == "auto" else cfg


def train_variant(config: dict[str, Any], base: dict[str, Any]) -> None:
    """Tune entry point: ``config`` is the trial's ``{"variant": ...}``, ``base`` the run's config dict."""
    import torch
    from ray import tune

    from whaleflow.training import trial_finished, trial_fingerprint

    from .search_space import model_for_trial

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # not one "checkpoint created" line per epoch
    quiet_exit.install()  # Tune stops this worker with SIGTERM when the trial ends: no traceback for it
    cfg = cpu_unless_given_gpus(from_dict(Config, base))
    model_cfg = model_for_trial(cfg, config["variant"])
    torch.set_num_threads(max(1, int(round(cfg.ray.cpus_per_trial))))
    name = tune.get_context().get_trial_name()
    store = RunStore.for_config(cfg)
    store.pull(f"trials/{name}", exclude=NOT_MIRRORED)  # what earlier attempts (on any node) left
    trial_dir = store.local / "trials" / name
    extra: dict[str, Any] = {"trial": name, "model": model_cfg.name, "family": model_cfg.family,
                             "node_id": _node_id(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES") or "",
                             "device": cfg.train.device}
    result = trial_finished(trial_dir, trial_fingerprint(cfg, model_cfg))
    if result is not None:  # trained by an earlier run into this run folder: leave it untouched
        extra["skipped"] = True
    else:
        store.pull(f"trials/{name}")  # and its checkpoints, to resume from when Tune has none
        try:
            result = _train(cfg, model_cfg, store, trial_dir, config, extra)
        finally:
            store.push(f"trials/{name}")
    final = {k: v for k, v in result.items() if isinstance(v, SCALARS)}
    tune.report({**extra, **final, "val_map5": float(result["val_map5"]), "finished": True})
