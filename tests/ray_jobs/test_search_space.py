"""Search spaces from YAML, the per-variant Optuna searcher, per-model ASHA, trial resources.

No Ray cluster is started here: these are the pieces Tune is handed, checked on their own.
"""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from ray.tune.search.variant_generator import generate_variants

from whaleflow.errors import ConfigError

from ray_jobs.search_space import (TrialNamer, apply_params, expanded_variants, model_for_trial,
                                   param_space, trial_namer)

SEARCH = [
    "models.0.search={stages.0.lr: {loguniform: [1.0e-4, 1.0e-2]}, batch_size: {choice: [16, 32]}}",
    "models.1.search={mining.every: {grid_search: [1, 2]}, head_layers: [48]}",
]


@pytest.fixture
def cfg(tiny_config, tmp_path):
    return tiny_config(tmp_path / "run", *SEARCH)


def test_param_space_gives_every_model_its_own_dimensions(cfg):
    space = param_space(cfg)
    variants = [spec["variant"] for _, spec in generate_variants(space, random_state=np.random.RandomState(0))]
    assert [v["model"] for v in variants] == ["metric_compact", "siamese_compact", "siamese_compact"]
    metric = variants[0]["params"]
    assert 1e-4 <= metric["stages.0.lr"] <= 1e-2 and metric["batch_size"] in (16, 32)
    assert sorted(v["params"]["mining.every"] for v in variants[1:]) == [1, 2]
    assert all(v["params"]["head_layers"] == [48] for v in variants[1:])  # a constant override
    model = model_for_trial(cfg, variants[0])
    assert model.stages[0].lr == metric["stages.0.lr"] and model.name == "metric_compact"


def test_sampled_numpy_values_become_config_values(cfg):
    model = apply_params(cfg.models[1], {"batch_size": np.int64(16), "stages.0.lr": np.float32(0.5)})
    assert model.batch_size == 16 and type(model.batch_size) is int
    assert model.stages[0].lr == pytest.approx(0.5)


@pytest.mark.parametrize("search, message", [
    ("{stages.0.lrr: {uniform: [0.1, 0.2]}}", "stages.0.lrr"),
    ("{stages.5.lr: {uniform: [0.1, 0.2]}}", "not a valid index"),
    ("{stages.0.lr: {loguniform: [0, 0.1]}}", "positive lower bound"),
    ("{stages.0.lr: {uniform: [0.3, 0.1]}}", "low < high"),
    ("{batch_size: {choice: [16, big]}}", "expected an integer"),
    ("{family: {choice: [metric, siamese]}}", "cannot be searched"),
])
def test_bad_search_spaces_fail_before_ray_starts(tiny_config, tmp_path, search, message):
    cfg = tiny_config(tmp_path / "run", f"models.0.search={search}")
    with pytest.raises(ConfigError, match=message):
        param_space(cfg)


@pytest.mark.parametrize("name, message", [("classifier", "reserved"), ("siamese_compact", "unique"),
                                           ("bad name", "letters")])
def test_model_names_are_checked(tiny_config, tmp_path, name, message):
    with pytest.raises(ConfigError, match=message):
        param_space(tiny_config(tmp_path / "run", f"models.0.name={name}"))


def test_trial_names_are_plain_unless_a_model_has_several_trials(cfg):
    assert trial_namer(cfg).multi == {"siamese_compact"}, "one sampled trial keeps the plain name; a grid does not"
    assert trial_namer(cfg.replace(ray=dataclasses.replace(cfg.ray, num_samples=2))).multi == {"metric_compact", "siamese_compact"}
    plain = TrialNamer(set())
    trial = SimpleNamespace(config={"variant": {"model": "m", "params": {"a": 1}}}, experiment_tag="3_a=1",
                            trial_id="abc_00003")
    assert plain(trial) == "m"
    name = TrialNamer({"m"})(trial)
    assert name.startswith("m-3-") and name == TrialNamer({"m"})(trial), "names are stable across reruns"
    other = SimpleNamespace(config={"variant": {"model": "m", "params": {"a": 2}}}, experiment_tag="3_a=2",
                            trial_id="abc_00003")
    assert TrialNamer({"m"})(other) != name


def test_variant_searcher_is_seeded_round_robin_and_finishes(cfg, tmp_path):
    from ray_jobs.variant_searcher import VariantSearcher

    variants = expanded_variants(cfg)
    assert len(variants) == 3  # metric + siamese at two grid points

    def suggestions(seed):
        s = VariantSearcher(variants, 2, metric="val_map5", mode="max", seed=seed)
        out = [s.suggest(f"t{i}") for i in range(7)]
        for i in range(6):
            s.on_trial_complete(f"t{i}", {"val_map5": 0.1 * i, "training_iteration": 1})
        return out

    first = suggestions(0)
    assert first[6] == VariantSearcher.FINISHED
    models = [s["variant"]["model"] for s in first[:6]]
    assert models == ["metric_compact", "siamese_compact", "siamese_compact"] * 2
    assert first[:6] == suggestions(0)[:6], "same seed, same trials"
    assert first[0] == suggestions(1)[0], "a study's first trial is the recipe, whatever the seed"
    assert first[3] != suggestions(1)[3]
    assert {first[i]["variant"]["params"]["mining.every"] for i in (1, 2)} == {1, 2}


def test_variant_searcher_studies_continue_from_their_storage(cfg, tmp_path):
    import optuna

    from ray_jobs.variant_searcher import VariantSearcher

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    for run in range(2):
        s = VariantSearcher(expanded_variants(cfg)[:1], 2, metric="val_map5", mode="max", seed=0, storage_url=url)
        for i in range(2):
            s.suggest(f"r{run}t{i}")
            s.on_trial_complete(f"r{run}t{i}", {"val_map5": 0.5, "training_iteration": 1})
    study = optuna.load_study(study_name="whaleflow:metric_compact", storage=url)
    assert len(study.trials) == 4
    recipe = {"stages.0.lr": cfg.models[0].stages[0].lr, "batch_size": cfg.models[0].batch_size}
    assert [t.params == recipe for t in study.trials] == [True, False, False, False], \
        "the recipe is the study's first point, and a rerun continuing the study does not train it again"


def test_the_recipe_is_the_first_optuna_point_when_it_lies_in_the_space(cfg, tiny_config, tmp_path):
    from ray_jobs.variant_searcher import VariantSearcher

    variants = expanded_variants(cfg)
    assert variants[0]["recipe"] == {"stages.0.lr": 0.002, "batch_size": 32}
    assert variants[1]["recipe"] is None, "no sampled key, no recipe point (grid and constants only)"
    first = VariantSearcher(variants[:1], 1, metric="val_map5", mode="max").suggest("t0")
    assert first["variant"]["params"] == {"stages.0.lr": 0.002, "batch_size": 32}
    outside = tiny_config(tmp_path / "run2", "models.0.search={stages.0.lr: {loguniform: [1.0e-2, 1.0e-1]}}")
    assert expanded_variants(outside)[0]["recipe"] is None, "a recipe outside the searched range is not a point of it"


def test_per_model_asha_never_compares_different_models():
    from ray.tune.schedulers import TrialScheduler

    from ray_jobs.per_model_asha import PerModelASHA

    sched = PerModelASHA({"good": 9, "slow": 9}, reduction_factor=2, grace_fraction=0.12)
    sched.set_search_properties("val_map5", "max")
    good = [SimpleNamespace(trial_id=f"g{i}", config={"variant": {"model": "good"}}) for i in range(3)]
    slow = SimpleNamespace(trial_id="s0", config={"variant": {"model": "slow"}})
    for t in [*good, slow]:
        sched.on_trial_add(None, t)
    decisions = {}
    for t, val in zip([*good, slow], [0.9, 0.8, 0.1, 0.05]):
        decisions[t.trial_id] = sched.on_trial_result(None, t, {"training_iteration": 1, "val_map5": val})
    assert decisions["g2"] == TrialScheduler.STOP, "the worst sample of a model is stopped"
    assert decisions["s0"] == TrialScheduler.CONTINUE, "a lone model is never stopped by another model's trials"
    last = sched.on_trial_result(None, good[0], {"training_iteration": 9, "val_map5": 0.9})
    assert last == TrialScheduler.CONTINUE, "the last epoch must not be stopped: the trial still exports"


def test_resources_per_variant(tiny_config, tmp_path):
    from ray_jobs.tuner import resources_for, tune_config
    from ray_jobs.variant_searcher import VariantSearcher

    cfg = tiny_config(tmp_path / "run", "ray.cpus_per_trial=2", "ray.mining_actor_cpus=1")
    res = resources_for(cfg, 0.5)
    metric = res({"variant": {"model": "metric_compact"}})
    siamese = res({"variant": {"model": "siamese_compact"}})
    assert metric.bundles == [{"CPU": 2.0, "GPU": 0.5}]
    # the mining actor gets its own bundle, holding its memory request (ray.mining_actor_memory_gb, 1 GiB)
    assert siamese.bundles == [{"CPU": 2.0, "GPU": 0.5}, {"CPU": 1.0, "memory": float(2**30)}]
    assert metric.strategy == siamese.strategy == "STRICT_PACK", "a trial and its mining actor share one node"
    assert resources_for(cfg, 0.0)({"variant": {"model": "metric_compact"}}).bundles == [{"CPU": 2.0}]

    tc = tune_config(tiny_config(tmp_path / "run2", *SEARCH, "ray.searcher=optuna", "ray.scheduler=asha",
                                 "ray.num_samples=2"))
    assert tc.num_samples == 6 and tc.metric == "val_map5" and tc.mode == "max"
    assert isinstance(tc.search_alg, VariantSearcher)
    assert (tmp_path / "run2" / "tune" / "optuna.db").parent.is_dir()
    basic = tune_config(cfg)
    assert basic.max_concurrent_trials is None and basic.search_alg.max_concurrent == 2
