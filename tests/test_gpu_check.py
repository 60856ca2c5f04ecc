"""benchmarks/gpu_check.sh runs end to end without a GPU (--cpu --small): the project's
training step against the bare model, a mining round and a validation step, in one table."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_script_runs_on_cpu(tmp_path):
    out = tmp_path / "rows.json"
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--cpu", "--small", "--only",
                           "pipeline", "mining", "validation", "--json", str(out)],
                          capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    steps = [r["step"] for r in rows]
    assert steps.count("train pipeline") == 2 and any(s.startswith("mining round") for s in steps)
    assert any(s.startswith("validation") for s in steps)
    assert not any(r["variant"] == "FAILED" for r in rows)
    pipe = [r for r in rows if r["step"] == "train pipeline"]
    assert all(r["extra"]["real_img_s"] > 0 and r["extra"]["bare_img_s"] > 0 for r in pipe)
    assert "True" in next(r for r in rows if r["step"].startswith("mining round"))["check"]
    assert "| step" in proc.stdout  # the table
