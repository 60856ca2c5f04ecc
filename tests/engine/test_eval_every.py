"""Which epochs validate: train.eval_every for the run, a stage's own eval_every within it."""
import pytest

from whaleflow.config import StageConfig
from whaleflow.engine.trainer import Trainer
from whaleflow.errors import ConfigError


def _evaluated(stages, run_every=1):
    t = Trainer(object(), stages, checkpoint_dir="unused", eval_every=run_every)
    return [e for e in range(t.total_epochs) if t._evaluates(e)]


def test_run_wide_every_unchanged():
    assert _evaluated([StageConfig(epochs=3), StageConfig(epochs=4)], run_every=2) == [1, 3, 5, 6]


def test_stage_every_counts_from_the_stage_and_ends_it():
    stages = [StageConfig(epochs=5, eval_every=3), StageConfig(epochs=4), StageConfig(epochs=3, eval_every=2)]
    # stage 0 (epochs 0-4): 2, and its last 4; stage 1 uses the run's every 1: 5..8; stage 2 (9-11): 10, 11
    assert _evaluated(stages) == [2, 4, 5, 6, 7, 8, 10, 11]


def test_bad_stage_every():
    with pytest.raises(ConfigError, match="eval_every"):
        StageConfig(eval_every=0)
