"""Training engine on tiny synthetic data: exact resume, and learning beats no learning."""
import numpy as np
import pytest
import torch

from whaleflow.config import load_config
from whaleflow.engine import Callback, Trainer
from whaleflow.pipeline import run_prepare
from whaleflow.training import build_task


class Interrupt(Exception):
    """Stands for a crash mid-run."""


class StopAfter(Callback):
    """Simulates a crash right after epoch ``n``'s checkpoint is written."""

    def __init__(self, n):
        self.n = n

    def on_epoch_end(self, trainer, metrics):
        if metrics["epoch"] + 1 == self.n:
            raise Interrupt


def _setup(tiny_data, tmp_path, family_index, extra=()):
    overrides = [
        f"data.root={tiny_data}",
        f"output.dir={tmp_path}",
        "output.quiet=true",
        f"models.{family_index}.stages=[{{size: 32, epochs: 2, lr: 0.002}}, {{size: 40, epochs: 2, lr: 0.001}}]",
        "models.1.mining.every=1",
        "models.1.mining.start=1",  # rounds on epochs 1 and 3 (2 starts stage 2), the resume point
        "models.1.mining.noise_start=0.1",
        *extra,
    ]
    cfg = load_config("configs/demo.yaml", overrides)
    return cfg, run_prepare(cfg, progress=False)


def _weights(task):
    return {k: v.detach().clone() for k, v in task.model.state_dict().items()}


@pytest.mark.parametrize("family_index", [0, 1], ids=["metric", "siamese"])
def test_resume_gives_the_same_weights(tiny_data, tmp_path, family_index):
    cfg, prepared = _setup(tiny_data, tmp_path, family_index)
    model_cfg = cfg.models[family_index]

    straight = build_task(cfg, model_cfg, prepared)
    Trainer(straight, model_cfg.stages, checkpoint_dir=tmp_path / "a", seed=1).fit()

    first = build_task(cfg, model_cfg, prepared)
    with pytest.raises(Interrupt):  # dies after epoch 3 of 4, inside the second stage
        Trainer(first, model_cfg.stages, checkpoint_dir=tmp_path / "b", seed=1, callbacks=[StopAfter(3)]).fit()
    resumed = build_task(cfg, model_cfg, prepared)
    trainer = Trainer(resumed, model_cfg.stages, checkpoint_dir=tmp_path / "b", seed=1)
    history = trainer.fit(resume=True)

    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.size == 40


def _beats_untrained(data, tmp_path, index, extra):
    cfg, prepared = _setup(data, tmp_path, index, extra)
    model_cfg = cfg.models[index]
    task = build_task(cfg, model_cfg, prepared)
    task.setup_stage(model_cfg.stages[0], fresh=True)
    before = task.evaluate()
    trainer = Trainer(task, model_cfg.stages, checkpoint_dir=tmp_path / "ckpt", seed=0)
    history = trainer.fit(resume=False)
    assert trainer.state.best_map5 > before + 0.05, (before, trainer.state.best_map5)
    return history


def test_metric_training_beats_untrained(small_data, tmp_path):
    _beats_untrained(small_data, tmp_path, 0, ["models.0.stages=[{size: 48, epochs: 8, lr: 0.002}]"])


def test_siamese_training_beats_untrained(small_data, tmp_path):
    history = _beats_untrained(small_data, tmp_path, 1, [
        "models.1.stages=[{size: 48, epochs: 8, lr: 0.001}]", "models.1.mining.start=4", "models.1.mining.every=2"])
    mined = [h for h in history if h.get("mining_source")]
    assert mined and all(np.isfinite(h["mining_hardness"]) for h in mined)


def test_loader_workers_change_no_weight(tiny_data, tmp_path):
    """The default path (workers from the trial's CPUs: 3 → 2 worker processes) trains the
    very weights of the in-process loader: every batch is augmented from its own seed."""
    stages = ["models.0.stages=[{size: 24, epochs: 2, lr: 0.002}]", "train.max_train_images=48"]
    cfg, prepared = _setup(tiny_data, tmp_path, 0, stages)
    model_cfg = cfg.models[0]
    weights = []
    for name, cpus, overrides in (("pool", 3, []), ("inline", None, ["train.workers=0"])):
        c, _ = _setup(tiny_data, tmp_path, 0, [*stages, *overrides])
        task = build_task(c, model_cfg, prepared, cpus=cpus)
        assert task.workers == (2 if name == "pool" else 0)
        history = Trainer(task, model_cfg.stages, checkpoint_dir=tmp_path / name, seed=1).fit()
        assert task._loader is None  # fit stopped the workers
        weights.append((_weights(task), [h["loss"] for h in history]))
    (a, loss_a), (b, loss_b) = weights
    assert loss_a == loss_b
    for k in a:
        assert torch.equal(a[k], b[k]), k
