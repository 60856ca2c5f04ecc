"""Fault test under Ray: ``kill -9`` a Tune trial's worker while it writes its checkpoint, rerun the
same command, and the trial resumes from the previous good checkpoint with nothing lost — the same
weights and the same metrics.csv as a trial nobody killed.

Real Ray, real Tune, a real SIGKILL to the trial's worker process. A worker setup hook
(:mod:`kill_hook`) makes the trial's third ``last.pt`` write tear (the old ``last.pt`` already moved
to ``previous.pt``, the new one cut off half-way) and wait to be killed. The trial fails for good
(``ray.max_failures=0``), the run ends; the rerun continues the experiment and the trial resumes
from Tune's last checkpoint (epoch 2), whatever the torn file in its folder holds.

About 60–90 s on two cores (two Tune runs and a reference training), so marked slow.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from whaleflow.errors import WhaleflowError

from ray_jobs.trainable import read_attempts

HERE = Path(__file__).resolve().parent
EPOCHS, KILL_AT_SAVE = 4, 3
TRIAL = "metric_kill"
MODEL = (f"models=[{{name: {TRIAL}, family: metric, backbone: wf_compactnet, embedding_dim: 32, batch_size: 24, "
         f"p_individuals: 6, k_images: 4, augment: metric, stages: [{{size: 32, epochs: {EPOCHS}, lr: 0.002}}]}}]")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hooked_ray(tmp_path_factory):
    import ray

    assert not ray.is_initialized(), "another test module left Ray running"
    box = tmp_path_factory.mktemp("kill_hook")
    env = {"KILL_HOOK_ARM": str(box / "armed"), "KILL_HOOK_MARKER": str(box / "mid-write"),
           "KILL_HOOK_AT": str(KILL_AT_SAVE), "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE),
                                                                                          os.environ.get("PYTHONPATH")]))}
    ray.init(address="local", num_cpus=2, num_gpus=0, object_store_memory=150 << 20, include_dashboard=False,
             log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": env, "worker_process_setup_hook": "kill_hook.install"})
    yield box
    ray.shutdown()


def _kill_when_mid_write(marker: Path, killed: list[int]) -> None:
    end = time.time() + 240
    while time.time() < end:
        if marker.exists() and marker.read_text():
            pid = int(marker.read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.05)


def test_kill_9_mid_checkpoint_under_ray_then_rerun_loses_nothing(hooked_ray, tiny_config, tmp_path):
    from whaleflow.data.prepare import load_prepared
    from whaleflow.engine.checkpoint import CheckpointError, load_checkpoint
    from whaleflow.training import train_model

    from ray_jobs.pipeline import run_tune

    box = hooked_ray
    out = tmp_path / "run"
    cfg = tiny_config(out, MODEL, "ray.gpus_per_trial=0", "ray.max_failures=0")
    trial = out / "trials" / TRIAL
    (box / "armed").touch()
    killed: list[int] = []
    watcher = threading.Thread(target=_kill_when_mid_write, args=(box / "mid-write", killed), daemon=True)
    watcher.start()
    with pytest.raises(WhaleflowError, match="no trial finished"):
        run_tune(cfg, progress=False)
    watcher.join(timeout=5)
    assert killed, "the trial never reached its checkpoint write"
    assert not (box / "armed").exists()
    with pytest.raises(CheckpointError, match="is damaged"):
        load_checkpoint(trial / "checkpoints" / "last.pt")
    assert load_checkpoint(trial / "checkpoints" / "previous.pt")["state"]["epoch"] == KILL_AT_SAVE - 1
    assert not (trial / "result.json").exists()

    summary = run_tune(cfg, progress=False)  # the same command again
    assert summary["continued"] and summary["trials"][TRIAL]["state"] == "finished"
    starts = [r for r in read_attempts(trial) if r["event"] == "start"]
    assert [s["start_epoch"] for s in starts] == [0, KILL_AT_SAVE - 1], starts
    assert starts[0]["pid"] == killed[0]

    # the reference: the same trial trained straight through, one thread as in the trial
    straight = tmp_path / "straight"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_model(cfg, cfg.models[0], load_prepared(out / "prepared"), straight, progress=False)
    finally:
        torch.set_num_threads(threads)
    got, want = (load_checkpoint(d / "checkpoints" / "last.pt")["task"]["model"] for d in (trial, straight))
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want), "weights differ"
    a, b = (pd.read_csv(d / "metrics.csv") for d in (trial, straight))
    assert a["epoch"].tolist() == list(range(EPOCHS)), "each epoch once: none lost, none twice"
    timings = [c for c in a.columns if c.endswith("seconds")]
    pd.testing.assert_frame_equal(a.drop(columns=timings), b.drop(columns=timings))
