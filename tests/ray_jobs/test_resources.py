"""A request no node can hold fails in seconds with one line; a trial given no GPU trains on the CPU.

One local Ray for the module, started with ``CUDA_VISIBLE_DEVICES=0,1`` in its environment (as
on a GPU host) and two faked GPUs: Ray 2.60 hands that variable unchanged to a worker given
0 GPUs, so a 0-GPU trial would see both "GPUs" unless whaleflow clears it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from whaleflow.errors import WhaleflowError

from ray_jobs.resources import autoscaler_node_types, check_requests
from ray_jobs.trainable import read_attempts

REPO = Path(__file__).resolve().parents[2]
ONE_METRIC = ("models=[{name: metric_cpu, family: metric, backbone: wf_compactnet, embedding_dim: 32, batch_size: 24, "
              "p_individuals: 6, k_images: 4, augment: metric, stages: [{size: 32, epochs: 2, lr: 0.002}]}]")


@pytest.fixture(scope="module")
def gpu_host_ray():
    import ray

    assert not ray.is_initialized(), "another test module left Ray running"
    old = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = "0,1"
    try:
        ray.init(address="local", num_cpus=2, num_gpus=2, object_store_memory=150 << 20, include_dashboard=False,
                 log_to_driver=False, logging_level="ERROR")
        yield ray
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = old


def test_a_zero_gpu_trial_trains_on_cpu_whatever_cuda_visible_devices_says(gpu_host_ray, tiny_config, tmp_path):
    from ray_jobs.pipeline import run_tune

    out = tmp_path / "run"
    summary = run_tune(tiny_config(out, ONE_METRIC, "ray.gpus_per_trial=0"), progress=False)
    assert summary["trials"]["metric_cpu"]["state"] == "finished"
    start = next(r for r in read_attempts(out / "trials" / "metric_cpu") if r["event"] == "start")
    assert start["cuda_visible_devices"] == "", f"a 0-GPU trial saw CUDA_VISIBLE_DEVICES={start['cuda_visible_devices']!r}"
    log = (out / "trials" / "metric_cpu" / "log.txt").read_text()
    assert "CUDA_VISIBLE_DEVICES=''" in log and "epoch 2/2" in log, log
    assert not (out / "stale").exists(), "a first run must not leave stale/ folders"


def test_an_explicit_cuda_device_without_a_gpu_is_a_one_line_error(gpu_host_ray):
    import ray

    from whaleflow.config import load_config
    from ray_jobs.trainable import cpu_unless_given_gpus

    @ray.remote(num_gpus=0)
    def resolve(device):
        try:
            cfg = cpu_unless_given_gpus(load_config(REPO / "configs" / "demo.yaml", [f"train.device={device}"]))
            return cfg.train.device, os.environ.get("CUDA_VISIBLE_DEVICES")
        except WhaleflowError as exc:
            return str(exc), None

    assert ray.get(resolve.remote("auto")) == ("cpu", "")
    message, _ = ray.get(resolve.remote("cuda"))
    assert message.startswith("train.device=cuda but this trial was given no GPU") and "Fix:" in message
    assert ray.get(resolve.options(num_gpus=1).remote("auto"))[0] == "auto", "a trial with a GPU keeps auto"


def test_an_impossible_request_fails_in_seconds_naming_request_and_node(gpu_host_ray, tiny_config, tmp_path):
    from ray_jobs.pipeline import run_tune

    t0 = time.time()
    with pytest.raises(WhaleflowError) as err:
        run_tune(tiny_config(tmp_path / "run", "ray.cpus_per_trial=64"), progress=False)
    seconds = time.time() - t0
    text = str(err.value)
    assert "\n" not in text and seconds < 60, (seconds, text)
    assert "models[metric_compact]" in text and "ray.cpus_per_trial=64" in text and "{CPU: 64, GPU: 1}" in text
    assert "the largest node has {CPU: 2, GPU: 2}" in text and "no autoscaler" in text
    print(f"impossible request refused in {seconds:.2f}s: {text}")


def test_the_mining_actor_counts_toward_the_one_node(tiny_config, tmp_path):
    """STRICT_PACK: trial + actor bundles are summed against one node, not spread over two."""
    cfg = tiny_config(tmp_path / "run", "ray.cpus_per_trial=1", "ray.mining_actor_cpus=1")
    two_small = [{"CPU": 1.0, "GPU": 1.0}, {"CPU": 1.0, "GPU": 1.0}]
    with pytest.raises(WhaleflowError, match=r"models\[siamese_compact\].*\{CPU: 2, GPU: 1\}.*ray\.mining_actor_cpus=1"):
        check_requests(cfg, 1.0, nodes=two_small, node_types=[])
    check_requests(cfg, 1.0, nodes=[{"CPU": 2.0, "GPU": 1.0}], node_types=[])
    # an autoscaler that can add a big enough node: no error; one whose sizes are unknown: no error either
    check_requests(cfg, 1.0, nodes=two_small, node_types=[{"CPU": 8.0, "GPU": 1.0}])
    check_requests(cfg, 1.0, nodes=two_small, node_types=None)
    with pytest.raises(WhaleflowError, match="the largest node the autoscaler can add has"):
        check_requests(cfg.replace(ray=cfg.ray.__class__(**{**cfg.ray.__dict__, "cpus_per_trial": 64})), 1.0,
                       nodes=two_small, node_types=[{"CPU": 8.0, "GPU": 1.0}])


def test_autoscaler_node_types_come_from_the_launchers_bootstrap_config(tmp_path):
    boot = tmp_path / "ray_bootstrap_config.yaml"
    assert autoscaler_node_types(boot) == []
    boot.write_text("head_node_type: head\navailable_node_types:\n"
                    "  head: {resources: {CPU: 16}, node_config: {}}\n"
                    "  gpu: {min_workers: 0, max_workers: 4, resources: {CPU: 8, GPU: 1}, node_config: {}}\n"
                    "  never: {max_workers: 0, resources: {CPU: 96}, node_config: {}}\n")
    assert autoscaler_node_types(boot) == [{"CPU": 16.0}, {"CPU": 8.0, "GPU": 1.0}]
    boot.write_text("available_node_types:\n  gpu: {max_workers: 4, resources: {}, node_config: {}}\n")
    assert autoscaler_node_types(boot) is None, "resources the launcher has not filled in: cannot tell"


@pytest.mark.slow
def test_the_cli_refuses_an_impossible_request_within_a_minute(ray_data, tmp_path):
    """The user's view: `whaleflow tune ... --set ray.cpus_per_trial=64` on this machine (own local Ray)."""
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "ray_jobs.cli", "tune", "--config", str(REPO / "configs" / "demo.yaml"),
                           "--quiet", "--set", f"data.root={ray_data}", f"output.dir={tmp_path / 'run'}",
                           "ray.cpus_per_trial=64", "ray.object_store_memory=100000000"],
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=120)
    seconds = time.time() - t0
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("whaleflow tune: error:")]
    assert len(lines) == 1 and "ray.cpus_per_trial=64" in lines[0] and "the largest node has" in lines[0], proc.stderr
    assert seconds < 60, seconds
    print(f"CLI: impossible request refused in {seconds:.1f}s (Ray start included)")


def test_memory_requests_of_the_mining_actor_and_the_ensemble(tiny_config, tmp_path):
    """The MiningActor's `memory` sits in its own bundle; it counts only against nodes
    that state their memory; the ensemble task's is estimated from the score files, capped by the node."""
    from ray_jobs.ensemble_driver import ensemble_memory
    from ray_jobs.resources import trial_bundles

    cfg = tiny_config(tmp_path / "run", "ray.mining_actor_cpus=1", "ray.mining_actor_memory_gb=2")
    assert trial_bundles(cfg, True, 1.0)[1] == {"CPU": 1.0, "memory": 2.0 * 2**30}
    assert "memory" not in trial_bundles(cfg, False, 1.0)[0]
    shared = tiny_config(tmp_path / "run", "ray.mining_actor_memory_gb=2")  # no own bundle: no memory ask
    assert all("memory" not in b for b in trial_bundles(shared, True, 1.0))
    check_requests(cfg, 1.0, nodes=[{"CPU": 4.0, "GPU": 1.0}], node_types=[])  # memory not stated: not counted
    with pytest.raises(WhaleflowError, match=r"memory: 2\.0 GiB.*ray\.mining_actor_memory_gb=2"):
        check_requests(cfg, 1.0, nodes=[{"CPU": 4.0, "GPU": 1.0, "memory": 2.0**30}], node_types=[])
    trials = tmp_path / "run" / "trials" / "m"
    trials.mkdir(parents=True)
    (trials / "scores_val.npz").write_bytes(b"x" * 2**20)
    est = ensemble_memory(cfg, node_memory=64 * 2**30)
    assert est == 2**30 + (3 + 2) * 2**20
    assert ensemble_memory(cfg, node_memory=2**29) == int(0.9 * 2**29)  # never above the node


def test_a_trial_that_does_not_mine_reserves_no_mining_actor(tiny_config, tmp_path):
    """The family registry says which trials mine (ray_jobs names no family): a siamese model
    with ``mining.solver: none`` — set in the config or sampled by the search — gets one bundle,
    and its request is checked without the actor's CPUs."""
    from whaleflow.families import mining_settings
    from ray_jobs.resources import resources_for

    cfg = tiny_config(tmp_path / "run", "ray.cpus_per_trial=2", "ray.mining_actor_cpus=1")
    siamese, metric = cfg.models[1], cfg.models[0]
    assert (siamese.family, metric.family) == ("siamese", "metric")
    assert mining_settings(siamese) == siamese.mining and mining_settings(metric) is None
    res = resources_for(cfg, 0.0)
    assert len(res({"variant": {"model": siamese.name}}).bundles) == 2
    sampled = {"variant": {"model": siamese.name, "params": {"mining.solver": "none"}}}
    assert res(sampled).bundles == [{"CPU": 2.0}]
    with pytest.raises(WhaleflowError, match="ray.mining_actor_cpus=1"):
        check_requests(cfg, 0.0, nodes=[{"CPU": 2.0}], node_types=[])  # the mining siamese needs 3 CPUs
    random_pairs = tiny_config(tmp_path / "run2", "ray.cpus_per_trial=2", "ray.mining_actor_cpus=1",
                               "models.1.mining.solver=none")
    assert mining_settings(random_pairs.models[1]) is None
    assert resources_for(random_pairs, 0.0)({"variant": {"model": siamese.name}}).bundles == [{"CPU": 2.0}]
    check_requests(random_pairs, 0.0, nodes=[{"CPU": 2.0}], node_types=[])  # fits: no actor to place
