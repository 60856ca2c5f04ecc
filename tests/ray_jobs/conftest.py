"""Ray-layer fixtures: a tiny synthetic data set, a local Ray with two faked GPUs, tiny configs.

Every Ray test module gets its own Ray (module scope) and shuts it down, so one module
that dies does not leave the next one a broken cluster. Models are the compact net at
32×32 for a few epochs: a trial takes seconds on two CPU cores.
"""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "demo.yaml"

#: both demo models, tiny; two trials fit the faked 2 GPUs / 2 CPUs side by side
TINY = [
    "train.device=cpu",
    "output.quiet=true",
    "models.0.stages=[{size: 32, epochs: 3, lr: 0.002}]",
    "models.0.p_individuals=6",
    "models.1.stages=[{size: 32, epochs: 3, lr: 0.002}]",
    "models.1.mining.every=1",
    "models.1.mining.start=0",
    "ensemble.trials=8",
    "ensemble.classifier.epochs=30",
    "ray.gpus_per_trial=1",
    "ray.cpus_per_trial=1",
    "ray.max_concurrent_trials=2",
    "ray.mining_timeout_s=60",
]


@pytest.fixture(scope="session")
def ray_data(tmp_path_factory):
    from whaleflow.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("ray_data")
    generate_synthetic(root, individuals=12, seed=0, width=64, height=48)
    return root


@pytest.fixture(scope="module")
def local_ray():
    """``ray.init(num_cpus=2, num_gpus=2)``: every GPU trial sees its own CUDA_VISIBLE_DEVICES."""
    import ray

    # address="local": a new Ray even when another process on this machine runs one (ray.init()
    # without an address would join it)
    ray.init(address="local", num_cpus=2, num_gpus=2, object_store_memory=200 << 20, include_dashboard=False,
             log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_config(ray_data):
    """``tiny_config(out, *overrides)`` → the demo config shrunk to :data:`TINY` on the tiny data."""
    from whaleflow.config import load_config

    def make(out, *overrides):
        return load_config(DEMO, [f"data.root={ray_data}", f"output.dir={out}", *TINY, *overrides])

    return make
