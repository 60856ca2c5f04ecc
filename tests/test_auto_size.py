"""size: auto — the photos' aspect at a pixel budget, resolved once when the run starts."""
import numpy as np
import pytest
import yaml

from whaleflow.auto_size import auto_hw, auto_side, photo_aspect, resolve_auto_sizes
from whaleflow.config import load_config
from whaleflow.data.synthetic import generate_synthetic
from whaleflow.errors import ConfigError
from whaleflow.pipeline import start_run


@pytest.mark.parametrize("aspect, side", [(1.0, 112), (2.0, 112), (0.5, 224), (92 / 112, 112), (1.6, 64)])
def test_auto_hw_keeps_the_aspect_and_the_budget(aspect, side):
    h, w = auto_hw(aspect, side)
    assert h % 16 == 0 and w % 16 == 0
    assert w / h == pytest.approx(aspect, rel=0.25)
    assert h * w == pytest.approx(side * side, rel=0.3)


def test_extreme_aspects_are_clamped_and_bad_sizes_say_how_to_fix():
    h, w = auto_hw(20.0, 112)
    assert w / h <= 3.5
    assert auto_side("auto") == 112 and auto_side("auto:224") == 224
    for bad in ("auto:x", "auto:4", "big"):
        with pytest.raises(ConfigError, match="Fix"):
            load_config("configs/cpu.yaml", [f"models.0.stages.0.size={bad}"])


def test_run_start_resolves_auto_from_the_photos_or_their_boxes(tmp_path):
    data = tmp_path / "wide"
    generate_synthetic(data, individuals=8, seed=5, width=256, height=128)
    cfg = load_config("configs/cpu.yaml", [f"data.root={data}", f"output.dir={tmp_path / 'run'}",
                                           "models.0.stages.0.size=auto", "models.1.stages.0.size=auto:224"])
    assert photo_aspect(data) == pytest.approx(2.0)
    resolved = start_run(cfg, progress=False)
    assert resolved.models[0].stages[0].size == [80, 160]
    assert resolved.models[1].stages[0].size == [160, 320]
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["models"][0]["stages"][0]["size"] == [80, 160]  # a rerun reads the same shape
    # with a box file the boxes' aspect counts, not the frames'
    boxed = resolve_auto_sizes(load_config("configs/cpu.yaml", [f"data.root={data}", "data.boxes=boxes.csv",
                                                                "models.0.stages.0.size=auto"]))
    boxes = np.loadtxt(data / "boxes.csv", delimiter=",", skiprows=1, usecols=(1, 2, 3, 4))
    aspect = np.median((boxes[:, 2] - boxes[:, 0]) / (boxes[:, 3] - boxes[:, 1]))
    assert boxed.models[0].stages[0].size == auto_hw(aspect, 112)
