"""The whole job on one machine without Ray: data → prepare → train each model → ensemble.

``ray_jobs.pipeline`` runs the same steps with trials on a Ray cluster; both end in
:func:`whaleflow.finalize.finalize`, which scores the submission against ``answers.csv`` when the data
folder has one (synthetic sets do) and writes ``summary.json``.

``output.dir`` may be a URI (``s3://…``, ``gs://…``): every step then works in this
machine's copy of the run folder (:class:`~whaleflow.storage.RunStore`), pulling what it
reads and pushing what it wrote, so the run folder in the bucket is always complete up
to the last finished step.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

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


def run_local(cfg: Config, *, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Every step in this process, models one after another."""
    timings: dict[str, float] = {}
    t0 = time.time()
    cfg = start_run(cfg, progress=progress)
    prepared = run_prepare(cfg, progress=progress)
    timings["prepare_s"] = time.time() - t0
    for model_cfg in cfg.models:
        t = time.time()
        train_in_store(cfg, model_cfg, prepared, model_cfg.name, resume=resume, progress=progress)
        timings[f"train_{model_cfg.name}_s"] = time.time() - t
        if cfg.train.final_fit:
            from .final_fit import final_dir, train_final

            t = time.time()
            run_dir = RunStore.for_config(cfg).local
            train_final(cfg, model_cfg, prepared, run_dir / "trials" / model_cfg.name,
                        final_dir(run_dir, model_cfg.name), progress=progress)
            timings[f"final_{model_cfg.name}_s"] = time.time() - t
    t = time.time()
    ensemble = ensemble_in_store(cfg, progress=progress, test_duplicates=_duplicates(cfg, prepared))
    timings["ensemble_s"] = time.time() - t
    if cfg.pseudo_label.rounds:
        from .pseudo_label import run_rounds, with_pseudo_labels

        def train_round(cfg_r: Config, rdir: Path) -> dict[str, Any]:
            from .ensemble import run_ensemble

            view = with_pseudo_labels(prepared, rdir / "pseudo_labels.csv")
            for m in cfg_r.models:
                train_in_store(cfg_r, m, view, m.name, resume=resume, progress=progress)
                if cfg_r.train.final_fit:
                    from .final_fit import final_dir, train_final

                    train_final(cfg_r, m, view, rdir / "trials" / m.name, final_dir(rdir, m.name), progress=progress)
            return run_ensemble(cfg_r, rdir, progress=progress, test_duplicates=_duplicates(cfg, prepared),
                                layout=prepared.layout)

        t = time.time()
        ensemble = run_rounds(cfg, ensemble, train_round, progress=progress)
        timings["pseudo_rounds_s"] = time.time() - t
    timings["total_s"] = time.time() - t0
    return finalize(cfg, prepared, ensemble, timings, progress=progress)


def _duplicates(cfg: Config, prepared) -> dict[str, list[str]] | None:
    return getattr(prepared, "test_duplicates", None) if cfg.predict.use_duplicates else None
