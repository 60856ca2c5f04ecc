"""``train.final_fit`` on Ray: one more Tune trial per finished validated trial.

After the main experiment, every finished trial (``trials/<name>/result.json``) gets
a final fit — the same model variant (its ``params.json``), retrained on train + val
for its best epoch count by :func:`whaleflow.final_fit.train_final` — as a trial of a
second Tune experiment (``tune/whaleflow-final``), with the same per-trial resources,
retries and mining actor as the validated trials. A final fit that finished before
(same settings) is not rerun. Results land in ``RUN_DIR/final/<name>/``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ray import tune

from whaleflow.config import Config, from_dict, to_dict

from .resources import resources_for

EXPERIMENT = "whaleflow-final"


def final_variants(cfg: Config) -> list[dict[str, Any]]:
    """One variant per finished validated trial: its model, its sampled params, its name."""
    from whaleflow.ensemble.classifier_model import CLASSIFIER_NAME

    trials_dir = Path(cfg.output.dir) / "trials"
    known = {m.name for m in cfg.models}
    out = []
    for d in sorted(p for p in trials_dir.iterdir() if p.is_dir()) if trials_dir.is_dir() else []:
        if d.name == CLASSIFIER_NAME or not (d / "result.json").is_file():
            continue
        params = json.loads((d / "params.json").read_text()) if (d / "params.json").is_file() else {}
        model = params.get("model") or json.loads((d / "result.json").read_text()).get("name")
        if model in known:
            out.append({"model": model, "params": params.get("params") or {}, "validated": d.name})
    return out


def train_final_variant(config: dict[str, Any], base: dict[str, Any]) -> None:
    """Tune entry point of a final fit: ``config["variant"]`` names the validated trial."""
    import torch

    from whaleflow.final_fit import final_dir, train_final
    from whaleflow.pipeline import load_run_prepared

    from .search_space import model_for_trial
    from .trainable import _mining_client, cpu_unless_given_gpus

    cfg = cpu_unless_given_gpus(from_dict(Config, base))
    variant = config["variant"]
    model_cfg = model_for_trial(cfg, variant)
    torch.set_num_threads(max(1, int(round(cfg.ray.cpus_per_trial))))
    run_dir = Path(cfg.output.dir)
    name = variant["validated"]
    mining = _mining_client(cfg, model_cfg, f"final-{name}")
    try:
        result = train_final(cfg, model_cfg, load_run_prepared(cfg), run_dir / "trials" / name,
                             final_dir(run_dir, name), task_kwargs={"mining_client": mining} if mining else None,
                             progress=False)
    finally:
        if mining is not None:
            mining.close()
    tune.report({"trial": f"final-{name}", "final_of": name, "final_epochs": result.get("final_epochs"),
                 "finished": True})


def run_final_experiment(cfg: Config, gpus: float, *, progress: bool = True) -> dict[str, Any]:
    """Train the final fit of every finished trial as one Tune experiment; a summary per fit."""
    from whaleflow.errors import WhaleflowError
    from whaleflow.storage import RunStore

    variants = final_variants(cfg)
    if not variants:
        return {"final_fits": 0}
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    trainable = tune.with_resources(tune.with_parameters(train_final_variant, base=to_dict(cfg)),
                                    resources_for(cfg, gpus))

    def namer(trial) -> str:
        return f"final-{trial.config['variant']['validated']}"

    store = RunStore.for_config(cfg)
    tuner = tune.Tuner(
        trainable, param_space={"variant": tune.grid_search(variants)},
        tune_config=tune.TuneConfig(max_concurrent_trials=cfg.ray.max_concurrent_trials, reuse_actors=False,
                                    trial_name_creator=namer, trial_dirname_creator=namer),
        run_config=tune.RunConfig(name=EXPERIMENT, storage_path=store.uri("tune"), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=cfg.ray.max_failures)))
    results = tuner.fit()
    fits = {}
    for res in results:
        m = res.metrics or {}
        # a failed fit reports no metrics: its variant names the validated trial all the same
        name = m.get("final_of") or ((res.config or {}).get("variant") or {}).get("validated") or Path(res.path).name
        fits[name] = "finished" if m.get("finished") else "error"
    if results.errors and progress and not cfg.output.quiet:
        print(f"{len(results.errors)} final fit(s) failed; their models predict the test set from the "
              "validated trial (see tune/whaleflow-final)")
    if not any(v == "finished" for v in fits.values()):
        # the experiment's own folder (a path, or a URI for a run folder in a bucket): its trials' error.txt
        raise WhaleflowError(f"no final fit finished ({fits}); see {store.uri(f'tune/{EXPERIMENT}')}.")
    return {"final_fits": len(fits), "states": fits}
