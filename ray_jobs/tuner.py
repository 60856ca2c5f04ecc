"""How to search and how to run: the Tune experiment that trains every model variant.

One experiment over all variants (not one Tuner per model): Ray then schedules every
model's trials against the same GPUs at once — a siamese trial and a metric trial
share the cluster instead of waiting for each other's Tuner — and rerunning an
interrupted run restores one experiment. The three Tune pieces stay separate:

* what to search — :func:`ray_jobs.search_space.param_space` (one grid entry per model);
* how to search — :func:`tune_config`: Tune's seeded random/grid generator, or
  :class:`~ray_jobs.variant_searcher.VariantSearcher` (one seeded Optuna study per
  variant, in an Optuna storage object on ``RUN_DIR/tune/optuna.db``); ASHA per model
  (:class:`~ray_jobs.per_model_asha.PerModelASHA`) or none; ``num_samples``;
  ``max_concurrent_trials``; metric ``val_map5``, mode ``max``;
* how to run — :func:`run_config`: storage under ``RUN_DIR/tune`` (Tune's CSV, JSON
  and TensorBoard logs and its checkpoints live in the run folder; for an ``s3://`` or
  ``gs://`` run folder that is Tune's ``storage_path`` URI, read and written through
  pyarrow.fs), keep the last checkpoint, ``FailureConfig(max_failures)``.

Resources per trial come from ``tune.with_resources``: one STRICT_PACK placement group
(:mod:`ray_jobs.resources`) of ``gpus_per_trial`` (fractions pack small models on one
GPU) and ``cpus_per_trial``, plus a bundle for the mining actor of a trial that mines when
``mining_actor_cpus`` > 0; a group no node can hold fails before the experiment starts.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from ray import tune

from whaleflow.config import Config, to_dict
from whaleflow.errors import WhaleflowError
from whaleflow.io import write_json
from whaleflow.storage import RunStore

from .resources import check_requests, resources_for
from .search_space import check_models, expanded_variants, param_space, trial_namer

EXPERIMENT = "whaleflow"


class Interrupted(KeyboardInterrupt):
    """Ctrl+C stopped the experiment with trials unfinished (their checkpoints are kept); the CLI
    says how to continue, once, for this and for a Ctrl+C anywhere else."""
METRIC, MODE = "val_map5", "max"


def experiment_path(cfg: Config) -> str:
    """Tune's experiment folder: an absolute path, or a URI for a run folder at one."""
    return RunStore.for_config(cfg).uri(f"tune/{EXPERIMENT}")


def tune_dir(cfg: Config) -> Path:
    """This node's ``RUN_DIR/tune`` for whaleflow's own files there (experiment.json, trials.json,
    optuna.db); pushed to the run folder when it is a URI."""
    return RunStore.for_config(cfg).local / "tune"


def gpus_for_trials(cfg: Config) -> float:
    """``gpus_per_trial``, or 0 on a local Ray without GPUs (nothing else could ever run it).

    On a cluster (an address) the request stands: an autoscaler may still add GPU nodes.
    """
    import ray

    from .pipeline import cluster_address

    want = float(cfg.ray.gpus_per_trial)
    if want <= 0 or cluster_address(cfg):
        return max(0.0, want)
    have = float(ray.cluster_resources().get("GPU", 0.0))
    return 0.0 if have <= 0 else min(want, have)


def build_trainable(cfg: Config, gpus: float):
    from .trainable import train_variant

    base = to_dict(cfg)
    return tune.with_resources(tune.with_parameters(train_variant, base=base), resources_for(cfg, gpus))


def tune_config(cfg: Config):
    from ray.tune.search.basic_variant import BasicVariantGenerator

    r = cfg.ray
    namer = trial_namer(cfg)
    kwargs: dict[str, Any] = dict(metric=METRIC, mode=MODE, max_concurrent_trials=r.max_concurrent_trials,
                                  trial_name_creator=namer, trial_dirname_creator=namer, reuse_actors=False)
    if r.searcher == "optuna":
        from .variant_searcher import VariantSearcher

        db = tune_dir(cfg) / "optuna.db"  # SQLite needs a local file: pulled before, pushed after the run
        db.parent.mkdir(parents=True, exist_ok=True)
        searcher = VariantSearcher(expanded_variants(cfg), r.num_samples, metric=METRIC, mode=MODE,
                                   seed=cfg.train.seed, storage_url=f"sqlite:///{db}")
        kwargs.update(search_alg=searcher, num_samples=searcher.total)
    elif r.searcher == "none":
        # a SearchAlgorithm, not a Searcher: Tune ignores max_concurrent_trials for it, so it gets its own
        kwargs.update(search_alg=BasicVariantGenerator(random_state=cfg.train.seed,
                                                       max_concurrent=r.max_concurrent_trials or 0),
                      num_samples=r.num_samples, max_concurrent_trials=None)
    else:
        raise WhaleflowError(f"ray.searcher must be 'none' or 'optuna', got {r.searcher!r}.")
    if r.scheduler == "asha":
        from .per_model_asha import PerModelASHA

        kwargs["scheduler"] = PerModelASHA({m.name: sum(s.epochs for s in m.stages) for m in cfg.models})
    elif r.scheduler != "none":
        raise WhaleflowError(f"ray.scheduler must be 'none' or 'asha', got {r.scheduler!r}.")
    return tune.TuneConfig(**kwargs)


def run_config(cfg: Config, *, progress: bool):
    return tune.RunConfig(
        name=EXPERIMENT, storage_path=RunStore.for_config(cfg).uri("tune"),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        failure_config=tune.FailureConfig(max_failures=cfg.ray.max_failures),
        verbose=0,
        callbacks=[EpochLines(quiet=not progress, max_failures=cfg.ray.max_failures)],
    )


class EpochLines(tune.Callback):
    """One console line per finished epoch and per finished, retried or failed trial."""

    def __init__(self, quiet: bool = False, max_failures: int = 0):
        self.quiet = quiet
        self.max_failures = max_failures

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("finished"):
            return
        mining = f" [{result['mining_source']}]" if result.get("mining_source") else ""
        self._say(f"[{trial}] epoch {int(result.get('epoch', 0)) + 1}/{result.get('epochs_total', '?')} "
                  f"size {result.get('size')} loss {float(result.get('loss', float('nan'))):.4f} "
                  f"val MAP@5 {float(result.get('val_map5', 0.0)):.3f} ({float(result.get('seconds', 0.0)):.1f}s)"
                  f"{mining}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        res = trial.last_result or {}
        state = "finished" if res.get("finished") else "stopped early"
        self._say(f"[{trial}] {state}: val MAP@5 {float(res.get('val_map5', 0.0)):.4f}")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._say(f"[{trial}] failed (failure {trial.num_failures} of {self.max_failures} allowed); "
                  "retrying from its last checkpoint")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._say(f"[{trial}] failed for good; see error.txt in {trial.local_path}")


def _archive_previous(cfg: Config) -> None:
    """A fresh run keeps the old experiment's logs beside it instead of mixing them."""
    store, rel = RunStore.for_config(cfg), f"tune/{EXPERIMENT}"
    dest = f"{rel}.{time.strftime('%Y%m%d-%H%M%S')}"
    if store.remote:
        store.move(rel, dest)
    elif (store.local / rel).exists():
        (store.local / rel).rename(store.local / dest)


#: RUN_DIR/tune/experiment.json: which settings the experiment in tune/whaleflow runs, and whether it ended
STATE_FILE = "experiment.json"
#: settings that say where and how to run, not what to train: changing them still continues the run
_HOW_TO_RUN = ("address", "object_store_memory", "mining_timeout_s", "max_failures", "max_concurrent_trials")


def experiment_fingerprint(cfg: Config) -> str:
    """A hash of what the experiment trains and searches (not where its output goes or how it connects)."""
    d = to_dict(cfg)
    d.pop("output", None), d.pop("ensemble", None)
    d["data"].pop("local_cache_dir", None)
    for key in _HOW_TO_RUN:
        d["ray"].pop(key, None)
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _state(cfg: Config) -> dict[str, Any]:
    RunStore.for_config(cfg).pull(f"tune/{STATE_FILE}")
    file = tune_dir(cfg) / STATE_FILE
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _mark(cfg: Config, state: str) -> None:
    write_json(tune_dir(cfg) / STATE_FILE, {"fingerprint": experiment_fingerprint(cfg), "state": state,
                                            "time": time.time()})
    RunStore.for_config(cfg).push(f"tune/{STATE_FILE}")


def continuable(cfg: Config) -> bool:
    """Rerunning the same command continues the experiment when it did not end (Ctrl+C, a lost
    driver) and its settings are unchanged; otherwise a fresh experiment starts (finished trials
    are still never retrained, unfinished ones still resume from their trial folders)."""
    state = _state(cfg)
    return (state.get("state") != "done" and state.get("fingerprint") == experiment_fingerprint(cfg)
            and tune.Tuner.can_restore(experiment_path(cfg)))


def run_experiment(cfg: Config, *, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Run the experiment, or continue it (see :func:`continuable`); return a summary of its trials.

    One behaviour, whatever stopped the last run: a trial folder that holds ``result.json``
    is never retrained, an unfinished trial resumes from its checkpoint, and an interrupted
    experiment with unchanged settings is restored (the searcher's studies, failure counts,
    trial states). ``resume=False`` forces a fresh experiment (the old one's logs are kept).
    """
    check_models(cfg)
    # With num_to_keep=1 every checkpoint forces a snapshot of the experiment state, which is
    # what an exact resume needs; Tune warns about it when epochs are short (tiny models).
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    path = experiment_path(cfg)
    gpus = gpus_for_trials(cfg)
    say = print if progress and not cfg.output.quiet else (lambda *a, **k: None)
    if gpus != cfg.ray.gpus_per_trial:
        say(f"no GPU in this Ray cluster: trials run on CPU (gpus_per_trial {cfg.ray.gpus_per_trial} → {gpus:g})")
    check_requests(cfg, gpus)  # a trial no node can hold fails now, not after hours of Tune warnings
    trainable = build_trainable(cfg, gpus)
    continued = resume and continuable(cfg)
    store = RunStore.for_config(cfg)
    store.pull("tune/optuna.db")
    if continued:
        say(f"continuing the interrupted Tune experiment in {path}")
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=True)
    else:
        _archive_previous(cfg)
        tuner = tune.Tuner(trainable, param_space={} if cfg.ray.searcher == "optuna" else param_space(cfg),
                           tune_config=tune_config(cfg), run_config=run_config(cfg, progress=progress))
    _mark(cfg, "running")
    try:
        with _quiet_tune(not progress or cfg.output.quiet):
            results = tuner.fit()
    finally:
        store.push("tune/optuna.db")
    try:
        summary = summarize(results, path, tune_dir(cfg))  # raises Interrupted when trials are left unfinished
    finally:
        store.push("tune/trials.json")
    _mark(cfg, "done")
    return {**summary, "continued": continued}


@contextlib.contextmanager
def _quiet_tune(quiet: bool):
    """Under --quiet, also silence Tune's start banner and INFO lines (verbose=0 leaves them)."""
    if not quiet:
        yield
        return
    log = logging.getLogger("ray.tune")
    old_env, old_level = os.environ.get("RAY_AIR_NEW_OUTPUT"), log.level
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # the classic reporter prints nothing at verbose=0
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(old_level)
        if old_env is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = old_env


def summarize(results, path: str, out_dir: Path) -> dict[str, Any]:
    """Per trial: finished (exported), stopped (by ASHA), error, or interrupted (no ``done`` yet)."""
    trials: dict[str, dict[str, Any]] = {}
    for res in results:
        m = res.metrics or {}
        if res.error is not None:
            state = "error"
        elif m.get("finished"):
            state = "finished"
        elif m.get("done"):  # Tune marks the last result done=True when a scheduler stops a trial
            state = "stopped"
        else:
            state = "interrupted"
        trials[m.get("trial") or Path(res.path).name] = {"state": state, "val_map5": m.get("val_map5"),
                                                         "path": res.path}
    count = {s: sum(t["state"] == s for t in trials.values()) for s in ("finished", "stopped", "error", "interrupted")}
    finished, interrupted = count["finished"], count["interrupted"]
    summary = {"experiment": str(path), "trials": trials, **count}
    write_json(out_dir / "trials.json", summary)
    if interrupted:
        raise Interrupted(f"{interrupted} trial(s) unfinished")
    if finished == 0:
        detail = "; ".join(f"{n}: {t['state']}" for n, t in trials.items()) or "no trials ran"
        raise WhaleflowError(f"no trial finished ({detail}). Each failed trial's error.txt is under {path}.")
    return summary
