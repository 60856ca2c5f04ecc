"""The steps of a run, written once: prepare → train → final fit → ensemble → pseudo-label rounds → finalize.

:func:`run_pipeline` sequences them; an executor (:mod:`whaleflow.executor`) runs the steps that
train or blend: :class:`~whaleflow.local_executor.LocalExecutor` in this process
(:func:`run_local`, ``--local``), ``ray_jobs.ray_executor.RayExecutor`` on a Ray cluster
(``ray_jobs.pipeline``). Every run ends in :func:`whaleflow.finalize.finalize`, which scores
the submission against ``answers.csv`` when the data folder has one (synthetic sets do) and
writes ``summary.json``.

``output.dir`` may be a URI (``s3://…``, ``gs://…``): every step then works in this
machine's copy of the run folder (:class:`~whaleflow.storage.RunStore`), pulling what it
reads and pushing what it wrote, so the run folder in the bucket is always complete up
to the last finished step.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .auto_size import resolve_auto_sizes
from .config import Config, ConfigError, dump_config
from .storage import NOT_MIRRORED, RunStore
from .finalize import (  # noqa: F401  (complete_submission … write_report: re-exported)
    FINAL_OUTPUTS,
    complete_submission,
    finalize,
    frequency_baseline,
    print_summary,
    write_report,
)

if TYPE_CHECKING:
    from .executor import Executor

#: what the ensemble writes into the run folder (pushed as a whole when the run folder is a URI)
ENSEMBLE_OUTPUTS = ("ensemble", "submission.csv", "trials/classifier")


def resolve_data(cfg: Config, *, progress: bool = True) -> Config:
    """With no ``data.root``, generate the embedded synthetic set into the run folder."""
    if cfg.data.root:
        return cfg
    from .data.synthetic import generate_synthetic

    syn = cfg.data.synthetic
    layout = "" if syn.layout == "kaggle" else f"-{syn.layout}"
    root = RunStore.for_config(cfg).local / (f"data-synthetic-{syn.individuals}-{syn.seed}-{syn.image_width}x{syn.image_height}"
                                             + layout)
    if not (root / "train.csv").exists():
        if progress and not cfg.output.quiet:
            print(f"generating a synthetic data set ({syn.individuals} individuals, seed {syn.seed}, "
                  f"{syn.layout} layout) in {root}")
        generate_synthetic(root, individuals=syn.individuals, seed=syn.seed, width=syn.image_width,
                           height=syn.image_height, layout=syn.layout)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(root)))


def start_run(cfg: Config, *, progress: bool = True) -> Config:
    """Create the run folder, resolve the data root, and save the resolved config.

    ``output.dir`` stays as given (a URI is never turned into a local path); a URI's bucket
    must be reachable now, not after the data is prepared.
    """
    store = RunStore.for_config(cfg)
    if store.remote and (cfg.train.final_fit or cfg.pseudo_label.rounds):
        # final fits and rounds write beside trials/ (final/, rounds/) through plain paths
        raise ConfigError(f"train.final_fit and pseudo_label.rounds need a local or mounted output.dir, "
                          f"got {cfg.output.dir}. Fix: set output.dir to a folder (a shared mount on a "
                          "cluster), or turn both off.")
    store.check()
    store.local.mkdir(parents=True, exist_ok=True)
    cfg = resolve_auto_sizes(resolve_data(cfg, progress=progress))
    dump_config(cfg, store.local / "config.yaml")
    store.push("config.yaml")
    return cfg


def run_prepare(cfg: Config, *, progress: bool = True):
    """Prepare into the run folder (an earlier ``prepared/`` there is reused when unchanged)."""
    from .data.prepare import prepare

    store = RunStore.for_config(cfg)
    with store.lock("prepared"):
        store.pull("prepared")
        prepared = prepare(cfg, store.local, progress=progress and not cfg.output.quiet)
        store.push("prepared", delete=True)  # caches prepare pruned go from the bucket too
        store.push("photos.csv")  # the photos' crop boxes and hashes identify reads (data.run_photos)
        if (store.local / "box_model").is_dir():  # the box model identify crops new photos with
            store.push("box_model")
    return prepared


def load_run_prepared(cfg: Config):
    """Open the run's ``prepared/`` on this node (staged to its local disk when the run folder is a
    URI), plus the round's pseudo-labels when the run folder is a pseudo-labelling round's. With a
    path run folder and ``data.local_cache_dir`` set, the image caches are read from copies on this
    node's disk (a path run folder is a shared, often network, filesystem)."""
    from .data.prepare import load_prepared
    from .pseudo_label import with_pseudo_labels

    store = RunStore.for_config(cfg)
    local = None if store.remote else cfg.data.local_cache_dir  # a URI run's mirror is local already
    prepared = load_prepared(store.stage("prepared"), local_cache_dir=local)
    if store.exists("pseudo_labels.csv"):
        store.pull("pseudo_labels.csv")
        prepared = with_pseudo_labels(prepared, store.local / "pseudo_labels.csv")
    return prepared


def train_in_store(cfg: Config, model_cfg, prepared, name: str, **kwargs) -> dict[str, Any]:
    """``train_model`` into ``trials/<name>``, continuing what the run folder already holds of it."""
    from .training import train_model, trial_finished

    store = RunStore.for_config(cfg)
    store.pull(f"trials/{name}", exclude=NOT_MIRRORED)
    if not trial_finished(store.local / "trials" / name):  # an unfinished trial resumes from its checkpoints
        store.pull(f"trials/{name}")
    try:
        return train_model(cfg, model_cfg, prepared, store.local / "trials" / name, **kwargs)
    finally:
        store.push(f"trials/{name}")


def ensemble_in_store(cfg: Config, *, progress: bool = True, test_duplicates=None) -> dict[str, Any]:
    """``run_ensemble`` over the run folder's finished trials (read without their checkpoints)."""
    from .ensemble import run_ensemble

    store = RunStore.for_config(cfg)
    store.pull("trials", exclude=NOT_MIRRORED)
    store.pull("ensemble")  # the Optuna study a rerun continues
    try:
        return run_ensemble(cfg, store.local, progress=progress, test_duplicates=test_duplicates)
    finally:
        for rel in ENSEMBLE_OUTPUTS:
            store.push(rel)


#: the steps of a run, in order (``steps=`` of :func:`run_pipeline` picks some)
STEPS = ("prepare", "train", "final_fit", "ensemble", "pseudo_rounds", "finalize")
#: ``whaleflow tune``: the data prepared and the models trained, nothing blended
TRAIN_STEPS = ("prepare", "train")
#: ``whaleflow ensemble``: a run's finished trials blended again (its ``prepared/`` read when there)
ENSEMBLE_STEPS = ("ensemble", "finalize")


@dataclass
class PipelineRun:
    """What :func:`run_pipeline` did: the resolved config, the prepared data (None when the
    steps neither prepared it nor found it), the timings and each step's outcome."""

    cfg: Config
    prepared: Any = None
    timings: dict[str, float] = field(default_factory=dict)
    trained: dict[str, Any] | None = None     # the executor's record of the training (Ray: the Tune summary)
    final: dict[str, Any] | None = None       # … and of the final fits
    ensemble: dict[str, Any] | None = None    # the ensemble summary (round 0's, with ``pseudo_rounds``)
    summary: dict[str, Any] | None = None     # what ``finalize`` wrote to summary.json


def run_pipeline(cfg: Config, executor: Executor, *, steps: Sequence[str] = STEPS, resume: bool = True,
                 progress: bool = True) -> PipelineRun:
    """Run ``steps`` (in :data:`STEPS` order) of the run ``cfg`` describes, each training or
    blending step by ``executor``. Every step continues what the run folder holds: prepare reuses
    an unchanged ``prepared/``, training and final fits skip finished trials and resume
    unfinished ones, the ensemble continues its Optuna study, a round reuses its folder while its
    labels are unchanged. ``finalize`` (and ``total_s``) when the run prepared or found its data."""
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise ValueError(f"unknown pipeline steps {unknown}; the steps are {STEPS}")
    t0 = time.time()
    run = PipelineRun(executor.start(cfg, progress=progress))
    cfg, timings = run.cfg, run.timings
    with executor.session(cfg, progress=progress):
        executor.preflight(cfg, steps)
        if "prepare" in steps:
            run.prepared = run_prepare(cfg, progress=progress)
            timings["prepare_s"] = time.time() - t0
        elif RunStore.for_config(cfg).exists("prepared/summary.json"):
            run.prepared = load_run_prepared(cfg)
        if "train" in steps:
            run.trained = executor.train(cfg, run.prepared, timings, resume=resume, progress=progress)
        if "final_fit" in steps and cfg.train.final_fit:
            run.final = executor.final_fit(cfg, run.prepared, timings, progress=progress)
        dups = _duplicates(cfg, run.prepared)
        if "ensemble" in steps:
            t = time.time()
            run.ensemble = executor.ensemble(cfg, test_duplicates=dups, progress=progress)
            timings["ensemble_s"] = time.time() - t
        if "pseudo_rounds" in steps and cfg.pseudo_label.rounds and run.ensemble is not None:
            t = time.time()
            run.ensemble = _pseudo_rounds(run, executor, dups, resume=resume, progress=progress)
            timings["pseudo_rounds_s"] = time.time() - t
    if "finalize" in steps and run.prepared is not None and run.ensemble is not None:
        if "prepare" in steps:
            timings["total_s"] = time.time() - t0
        run.summary = finalize(cfg, run.prepared, run.ensemble, timings, progress=progress)
    return run


def _pseudo_rounds(run: PipelineRun, executor: Executor, dups, *, resume: bool, progress: bool) -> dict[str, Any]:
    """The pseudo-labelling rounds (:func:`~whaleflow.pseudo_label.run_rounds`): each round trains,
    final-fits and blends like the run itself, in its round folder, on the prepared data plus its
    pseudo-labels."""
    from .pseudo_label import run_rounds, with_pseudo_labels

    def train_round(cfg_r: Config, rdir: Path) -> dict[str, Any]:
        view = with_pseudo_labels(run.prepared, rdir / "pseudo_labels.csv")
        executor.train(cfg_r, view, {}, resume=resume, progress=progress)
        if cfg_r.train.final_fit:
            executor.final_fit(cfg_r, view, {}, progress=progress)
        return executor.ensemble(cfg_r, test_duplicates=dups, progress=progress)

    return run_rounds(run.cfg, run.ensemble, train_round, progress=progress)


def run_local(cfg: Config, *, steps: Sequence[str] = STEPS, resume: bool = True,
              progress: bool = True) -> dict[str, Any] | None:
    """``steps`` (all by default) in this process, models one after another
    (:class:`~whaleflow.local_executor.LocalExecutor`); the run's summary (the ensemble summary
    when nothing was finalized)."""
    from .local_executor import LocalExecutor

    run = run_pipeline(cfg, LocalExecutor(), steps=steps, resume=resume, progress=progress)
    return run.summary if run.summary is not None else run.ensemble


def _duplicates(cfg: Config, prepared) -> dict[str, list[str]] | None:
    """The test photos' near-duplicate labels the submission puts first (``predict.use_duplicates``)."""
    return getattr(prepared, "test_duplicates", None) if cfg.predict.use_duplicates else None
