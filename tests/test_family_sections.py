"""A family's config sections: registered beside their families, held by ModelConfig, and only
the family's own in its trials' fingerprint (issue 26, part 1)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from whaleflow.config import ModelConfig, dump_config, from_dict, load_config, to_dict
from whaleflow.errors import ConfigError
from whaleflow.families import FAMILIES, MODEL_SECTIONS, FamilyTask, mining_settings
from whaleflow.families.arcface import ArcFaceConfig
from whaleflow.losses.margin_loss import MarginConfig
from whaleflow.mining import MiningConfig
from whaleflow.training import trial_fingerprint

YAML = """
models:
  - name: pairs
    family: siamese
    head_layers: [16]
    mining: {solver: sparse, k: 20, prefilter: 80, start: 2}
  - name: cosine
    family: arcface
    arcface: {scale: 16.0, subcenters: 2}
  - name: margin
    family: metric
    margin: {margin: 0.3}
"""


@pytest.fixture
def cfg(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(YAML)
    return load_config(path)


def _model(cfg, name):
    return next(m for m in cfg.models if m.name == name)


def _with_model(cfg, model):
    return cfg.replace(models=[model if m.name == model.name else m for m in cfg.models])


def test_sections_parse_into_their_registered_dataclasses(cfg, tmp_path):
    pairs, cosine, margin = cfg.models
    assert isinstance(pairs.mining, MiningConfig) and (pairs.mining.solver, pairs.mining.k, pairs.mining.start) == ("sparse", 20, 2)
    assert pairs.mining.noise_floor == MiningConfig().noise_floor  # the rest are the section's defaults
    assert isinstance(cosine.arcface, ArcFaceConfig) and (cosine.arcface.scale, cosine.arcface.subcenters) == (16.0, 2)
    assert isinstance(margin.margin, MarginConfig) and margin.margin.margin == 0.3
    assert set(pairs.sections) == set(MODEL_SECTIONS.names()) == {"arcface", "margin", "mining"}
    assert to_dict(pairs)["mining"]["k"] == 20 and "sections" not in to_dict(pairs)  # written as the model's keys
    assert load_config(dump_config(cfg, tmp_path / "resolved.yaml")) == cfg
    assert load_config(None, ["models.0.family=siamese", "models.0.mining.every=3"]).models[0].mining.every == 3


def test_an_unknown_key_in_a_section_is_named_with_the_fix(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  - name: m\n    family: siamese\n    mining: {solvr: sparse}\n")
    with pytest.raises(ConfigError, match=r"models\.0\.mining: unknown key 'solvr'\. Did you mean 'solver'\?"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"unknown key 'minig'\. Did you mean 'mining'\?.*Valid keys: .*arcface, margin, mining"):
        load_config(None, ["models.0.minig.k=3"])
    with pytest.raises(ConfigError, match=r"unknown key 'sections'"):  # the mapping is no key of its own
        from_dict(ModelConfig, {"sections": {}})
    with pytest.raises(ConfigError, match="prefilter 10 is below mining k 50"):  # the section's own check
        load_config(None, ["models.0.mining.prefilter=10"])


def test_with_sections_replaces_one_section_and_checks_it(cfg):
    pairs = _model(cfg, "pairs")
    random = pairs.with_sections(mining=dataclasses.replace(pairs.mining, solver="none"))
    assert random.mining.solver == "none" and pairs.mining.solver == "sparse"  # a new model, the old one kept
    assert random.arcface is pairs.arcface and random.head_layers == pairs.head_layers
    with pytest.raises(ConfigError, match="unknown model config section 'minig'. Did you mean 'mining'"):
        pairs.with_sections(minig=pairs.mining)
    with pytest.raises(ConfigError, match="section 'mining' must be a MiningConfig, got ArcFaceConfig"):
        pairs.with_sections(mining=ArcFaceConfig())
    with pytest.raises(AttributeError, match="no attribute 'minig'"):
        pairs.minig  # noqa: B018


def test_a_trials_fingerprint_holds_its_own_familys_sections_and_fields_alone(cfg):
    pairs, cosine, margin = (_model(cfg, n) for n in ("pairs", "cosine", "margin"))
    base = {m.name: trial_fingerprint(cfg, m) for m in cfg.models}

    def changed(edit) -> set[str]:
        """The models whose fingerprint changes when every model gets ``edit``."""
        edited = cfg.replace(models=[edit(m) for m in cfg.models])
        return {m.name for m in edited.models if trial_fingerprint(edited, m) != base[m.name]}

    mining = lambda m: m.with_sections(mining=dataclasses.replace(m.mining, noise_end=0.25))  # noqa: E731
    arcface = lambda m: m.with_sections(arcface=dataclasses.replace(m.arcface, knn_weight=0.9))  # noqa: E731
    margin_ = lambda m: m.with_sections(margin=dataclasses.replace(m.margin, beta_lr=0.5))  # noqa: E731
    assert changed(mining) == {"pairs"}
    assert changed(arcface) == {"cosine"}
    assert changed(margin_) == {"margin"}
    assert changed(lambda m: dataclasses.replace(m, head_layers=[8])) == {"pairs"}          # siamese's field
    assert changed(lambda m: dataclasses.replace(m, p_individuals=3)) == {"margin"}          # metric's
    assert changed(lambda m: dataclasses.replace(m, batch_size=7)) == {"pairs", "cosine"}    # two families'
    assert changed(lambda m: dataclasses.replace(m, flip_new_class=False)) == {"pairs", "cosine", "margin"}
    assert set(pairs.trial_settings()) >= {"mining", "head_layers", "stages"}
    assert not {"arcface", "margin", "p_individuals"} & set(pairs.trial_settings())
    assert {"arcface", "embedding_dim"} <= set(cosine.trial_settings()) and "mining" not in cosine.trial_settings()


def test_every_declared_section_and_field_exists():
    fields = {f.name for f in dataclasses.fields(ModelConfig)} - {"sections"}
    for name in FAMILIES.names():
        assert set(FAMILIES.sections(name)) <= set(MODEL_SECTIONS.names()), name
        assert set(FAMILIES.model_fields(name)) <= fields, name
    assert FAMILIES.sections("frozen") == () and FAMILIES.model_fields("frozen") == ()


def test_mining_settings_name_the_trials_that_mine(cfg):
    """What ray_jobs asks instead of a family name: a MiningActor only where a family reads a mining
    section whose solver mines; no bundle is reserved for ``solver: none``."""
    from ray_jobs.resources import resources_for

    pairs = _model(cfg, "pairs")
    assert mining_settings(pairs) == pairs.mining
    assert mining_settings(_model(cfg, "cosine")) is None and mining_settings(_model(cfg, "margin")) is None
    random = pairs.with_sections(mining=dataclasses.replace(pairs.mining, solver="none"))
    assert mining_settings(random) is None
    cfg = cfg.replace(ray=dataclasses.replace(cfg.ray, cpus_per_trial=2.0, mining_actor_cpus=1.0))
    assert resources_for(cfg, 0.0)({"variant": {"model": "pairs"}}).bundles == [{"CPU": 2.0}, {"CPU": 1.0, "memory": float(2**30)}]
    assert resources_for(_with_model(cfg, random), 0.0)({"variant": {"model": "pairs"}}).bundles == [{"CPU": 2.0}]
    assert resources_for(cfg, 0.0)({"variant": {"model": "cosine"}}).bundles == [{"CPU": 2.0}]


@pytest.fixture
def toy_family():
    """A family of one file's worth: its section and its class, registered, then taken out again."""

    @dataclass(frozen=True)
    class ToyConfig:
        temperature: float = 1.0

    class ToyTask(FamilyTask):
        SECTIONS = ("toy",)
        MODEL_FIELDS = ("k_images",)

        def build_networks(self, *, load_weights: bool = True) -> None:
            raise NotImplementedError

    MODEL_SECTIONS.register("toy")(ToyConfig)
    FAMILIES.register("toy")(ToyTask)
    try:
        yield ToyConfig
    finally:
        del MODEL_SECTIONS._items["toy"], FAMILIES._items["toy"]


def test_a_new_family_brings_its_section_without_touching_the_config_code(toy_family):
    cfg = load_config(None, ["models.0.family=toy", "models.0.toy.temperature=0.5"])
    toy = cfg.models[0]
    assert isinstance(toy.toy, toy_family) and toy.toy.temperature == 0.5
    assert {"toy", "k_images"} <= set(toy.trial_settings()) and "margin" not in toy.trial_settings()
    metric = load_config(None).models[0]
    assert "toy" not in metric.trial_settings() and "k_images" in metric.trial_settings()
