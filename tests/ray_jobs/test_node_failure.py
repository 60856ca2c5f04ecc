"""A node dies under a running trial: Tune retries it on the other node, from its checkpoint.

About 20 s on two cores (node death is noticed fast with the head's health checks
tightened), so it runs with the default tests.

``ray.cluster_utils.Cluster`` on this machine: a head with no CPUs (so trials cannot run
there) and two one-CPU worker nodes labelled with a custom resource. The run folder
is on the shared local disk, as it would be on a cluster's shared file system.
"""
from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

from ray_jobs.trainable import read_attempts

MODEL = ("models=[{name: metric_move, family: metric, backbone: wf_compactnet, embedding_dim: 32, batch_size: 24, "
         "p_individuals: 6, k_images: 4, augment: metric, stages: [{size: 32, epochs: 16, lr: 0.002}]}]")


@pytest.fixture
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized(), "another test module left Ray running"
    fast_death = {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                  "health_check_initial_delay_ms": 0}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 100 << 20,
                                                      "_system_config": fast_death})
    workers = [c.add_node(num_cpus=1, resources={"trial_host": 1, f"host_{i}": 1}, object_store_memory=100 << 20)
               for i in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, logging_level="ERROR")
    yield c, workers
    ray.shutdown()
    c.shutdown()


def test_killing_the_node_under_a_trial_moves_it_and_it_continues(cluster, tiny_config, tmp_path):
    from ray_jobs.pipeline import run_tune

    c, workers = cluster
    out = tmp_path / "run"
    cfg = tiny_config(out, MODEL, "ray.gpus_per_trial=0", "ray.max_failures=3")
    trial = out / "trials" / "metric_move"
    removed: list[str] = []

    def kill_its_node():
        end = time.time() + 180
        while time.time() < end:
            starts = [r for r in read_attempts(trial) if r["event"] == "start"]
            rows = len(pd.read_csv(trial / "metrics.csv")) if (trial / "metrics.csv").exists() else 0
            if starts and rows >= 3:
                node = next(w for w in workers if w.node_id == starts[0]["node_id"])
                c.remove_node(node, allow_graceful=False)
                removed.append(node.node_id)
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=kill_its_node, daemon=True)
    watcher.start()
    summary = run_tune(cfg, progress=False)
    watcher.join(timeout=5)

    assert removed, "the trial finished before its node could be killed"
    assert summary["trials"]["metric_move"]["state"] == "finished"
    starts = [r for r in read_attempts(trial) if r["event"] == "start"]
    assert len(starts) >= 2, starts
    assert starts[0]["node_id"] == removed[0] and starts[-1]["node_id"] != removed[0]
    assert starts[-1]["start_epoch"] > 0, "the retried trial started over instead of from its checkpoint"
    assert (trial / "result.json").exists()
    epochs = pd.read_csv(trial / "metrics.csv")["epoch"].tolist()
    assert epochs == list(range(16)), "metrics.csv should hold each epoch once after the retry"
