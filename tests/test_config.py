"""Config loading: YAML + dotted overrides, type checks, unknown keys with suggestions."""
import pytest

from whaleflow.config import Config, cache_shape, dump_config, load_config, size_hw
from whaleflow.errors import ConfigError


def test_defaults_build():
    cfg = load_config()
    assert isinstance(cfg, Config)
    assert cfg.models[0].family == "metric"


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  seed: 3\nmodels:\n  - name: a\n    stages: [{size: 32, epochs: 2}]\n")
    cfg = load_config(path, ["train.seed=7", "models.0.stages.0.epochs=5", "data.root=/data/hwi", "models.0.pretrained=true"])
    assert cfg.train.seed == 7
    assert cfg.models[0].stages[0].epochs == 5
    assert cfg.models[0].stages[0].size == 32
    assert cfg.data.root == "/data/hwi"
    assert cfg.models[0].pretrained is True
    assert cache_shape(cfg) == (32, 32)


def test_override_on_default_list_section():
    cfg = load_config(None, ["models.0.embedding_dim=16"])
    assert cfg.models[0].embedding_dim == 16


def test_pretrained_path_string():
    cfg = load_config(None, ["models.0.pretrained=/weights/r34.pth"])
    assert cfg.models[0].pretrained == "/weights/r34.pth"


def test_unknown_key_suggests_closest(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'epochs'"):
        load_config(None, ["models.0.stages.0.epoch=3"])
    path = tmp_path / "c.yaml"
    path.write_text("trian:\n  seed: 1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'trian'.*Did you mean 'train'"):
        load_config(path)


def test_type_errors_are_named():
    with pytest.raises(ConfigError, match=r"train.seed: expected an integer"):
        load_config(None, ["train.seed=abc"])
    with pytest.raises(ConfigError, match=r"predict.flip_tta: expected true or false"):
        load_config(None, ["predict.flip_tta=3"])
    with pytest.raises(ConfigError, match="expected a list"):
        load_config(None, ["models=5"])


def test_bad_override_syntax_and_index():
    with pytest.raises(ConfigError, match="has no '='"):
        load_config(None, ["train.seed"])
    with pytest.raises(ConfigError, match="not a valid index"):
        load_config(None, ["models.4.name=x"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_dump_round_trip(tmp_path):
    cfg = load_config(None, ["train.seed=9", "models.0.stages.0.size=40"])
    path = dump_config(cfg, tmp_path / "config.yaml")
    assert load_config(path) == cfg


def test_shipped_configs_load():
    from pathlib import Path

    import timm

    from whaleflow.auto_size import auto_side, is_auto
    from whaleflow.registry import FAMILIES
    import whaleflow.families  # noqa: F401  (registers the families)

    paths = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert {"cpu.yaml", "demo.yaml", "happywhale.yaml", "hwi_full.yaml"} <= {p.name for p in paths}
    for path in paths:
        cfg = load_config(path)
        for m in cfg.models:
            assert m.family in FAMILIES, (path, m.name)
            assert timm.is_model(m.backbone), (path, m.backbone)
            for s in m.stages:  # "auto" sizes are resolved from the photos when a run starts
                auto_side(s.size) if is_auto(s.size) else size_hw(s.size)


def test_rectangular_sizes_and_bad_sizes():
    cfg = load_config(None, ["models.0.stages=[{size: [64, 128]}, {size: 48}]"])
    assert size_hw(cfg.models[0].stages[0].size) == (64, 128)
    assert cache_shape(cfg) == (64, 128)
    with pytest.raises(ConfigError, match="height, width"):
        load_config(None, ["models.0.stages=[{size: [64, 128, 3]}]"])
    with pytest.raises(ConfigError):
        load_config(None, ["models.0.stages=[{size: -4}]"])
