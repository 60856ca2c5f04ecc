"""Ctrl+C as a user meets it: one message, the same for every path, saying to rerun the same command."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ctrl_c_says_once_to_rerun_the_same_command(tiny_data, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ray_jobs.cli", "run", "--local", "--config", str(REPO / "configs" / "demo.yaml"),
           "--set", f"data.root={tiny_data}", f"output.dir={out}", "train.device=cpu",
           "models=[{name: m, family: metric, backbone: wf_compactnet, embedding_dim: 32, batch_size: 24, "
           "p_individuals: 6, k_images: 4, augment: metric, stages: [{size: 32, epochs: 40, lr: 0.002}]}]",
           "ensemble.trials=4", "ensemble.classifier.enabled=false"]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "trials" / "m" / "metrics.csv"
    end = time.time() + 180
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.time() < end, proc.communicate()[1][-2000:]
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    said = [line for line in err.splitlines() if "interrupted" in line]
    assert len(said) == 1 and said[0].startswith("whaleflow run: interrupted") and "rerun the same command" in said[0], err
    assert "Traceback" not in err and "--resume" not in err
    assert (out / "trials" / "m" / "checkpoints" / "last.pt").exists()
