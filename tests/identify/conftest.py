"""A tiny trained run (every family: metric, siamese, arcface, plus the classifier on
embeddings) for the identify / enroll tests, trained once per session on CPU. The nets
barely learn in these few epochs (validation MAP@5 about 0.3): the tests check that
identify reproduces the run and that enrolled photos are scored, not how well it ranks."""
from __future__ import annotations

import shutil

import pytest

MODELS = ("models=[{name: metric_compact, family: metric, backbone: wf_compactnet, embedding_dim: 32, "
          "p_individuals: 6, k_images: 4, augment: metric, stages: [{size: 32, epochs: 1, lr: 0.002}]}, "
          "{name: siamese_compact, family: siamese, backbone: wf_compactnet, head_layers: [32, 16], batch_size: 32, "
          "augment: siamese, mining: {solver: none}, stages: [{size: 32, epochs: 1, lr: 0.002}]}, "
          "{name: arcface_compact, family: arcface, backbone: wf_compactnet, embedding_dim: 32, batch_size: 16, "
          "stages: [{size: [32, 48], epochs: 2, lr: 0.002}]}]")


@pytest.fixture(scope="session")
def trained_run(tiny_data, tmp_path_factory):
    """(run folder, data folder) of a finished run; treat it as read-only (copy it to change it)."""
    from whaleflow.config import load_config
    from whaleflow.pipeline import run_local

    out = tmp_path_factory.mktemp("identify_run")
    cfg = load_config("configs/demo.yaml", [f"data.root={tiny_data}", f"output.dir={out}", MODELS,
                                            "ensemble.trials=8", "ensemble.classifier.epochs=30", "output.quiet=true"])
    run_local(cfg, progress=False)
    return out, tiny_data


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """A private copy of the trained run, to enroll into or break."""
    run, data = trained_run
    dest = tmp_path / "run"
    shutil.copytree(run, dest)
    return dest, data



#: what a run folder can ship without: the prepared data and caches, Tune's state, training checkpoints
NOT_SHIPPED = ("prepared", "tune", "checkpoints")


@pytest.fixture
def ship():
    """``ship(run, dest)``: a copy of ``run`` at ``dest`` without any folder named in
    :data:`NOT_SHIPPED`, at any depth."""
    def copy(run, dest):
        shutil.copytree(run, dest, ignore=lambda _d, names: [n for n in names if n in NOT_SHIPPED])
        return dest
    return copy
