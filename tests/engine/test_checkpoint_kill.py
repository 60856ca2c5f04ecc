"""Fault test: ``kill -9`` a training process while it writes its checkpoint, rerun, and it resumes
from the previous good checkpoint with nothing lost (same weights and metrics as a run never killed).

Real processes, real files, a real SIGKILL. The child is the library's own ``train_model``; to
kill it *inside* a write, its ``torch.save`` writes half of the checkpoint's bytes, flushes them to
disk, says so, and waits to be killed. Two file systems:

* ``atomic`` — the write goes to a temp file that is renamed over ``last.pt`` only when complete
  (what ``whaleflow.io`` does): ``last.pt`` is never touched, the half file is left over;
* ``torn`` — a file system that does not keep that promise (``last.pt`` itself cut off, the old
  one already moved to ``previous.pt``): the rerun says so and resumes from ``previous.pt``.

About 25 s on two cores per case (two short processes of a 32-pixel model, mostly imports):
the torn case runs by default; the atomic ones (metric, and siamese, whose state holds numpy
arrays of mined pairs) are marked slow.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from whaleflow.engine.checkpoint import CheckpointError, load_checkpoint

REPO = Path(__file__).resolve().parents[2]
FAMILIES = {"metric": 0, "siamese": 1}
EPOCHS, KILL_AT_SAVE = 4, 3  # killed while writing epoch 3's checkpoint; epochs 1-2 are safe on disk

CHILD = r'''
import io, os, sys, time
from pathlib import Path
import torch


def main():
    torch.set_num_threads(1)
    mode, kill_at, run, trial, index = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
    from whaleflow.config import load_config
    from whaleflow.data.prepare import load_prepared
    from whaleflow.training import train_model
    cfg = load_config(run / "config.yaml", ["output.quiet=false", "train.workers=1"])
    if mode != "clean":
        real_save, calls = torch.save, [0]
        def save(obj, f, *args, **kwargs):
            if ".last.pt." in Path(f).name:
                calls[0] += 1
                if calls[0] == kill_at:
                    buf = io.BytesIO()
                    real_save(obj, buf, *args, **kwargs)
                    target = Path(f)
                    if mode == "torn":
                        last = target.parent / "last.pt"
                        last.replace(target.parent / "previous.pt")
                        target = last
                    with open(target, "wb") as fh:
                        fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                        fh.flush()
                        os.fsync(fh.fileno())
                    (trial.parent / "mid-write").touch()
                    time.sleep(600)
            return real_save(obj, f, *args, **kwargs)
        torch.save = save
    train_model(cfg, cfg.models[index], load_prepared(run / "prepared"), trial, progress=True)


# the loader's workers start from a fork server and import this script: a script that trains
# does so under the guard (as with any torch DataLoader that has workers)
if __name__ == "__main__":
    main()
'''


@pytest.fixture(scope="module")
def prepared_run(tiny_data, tmp_path_factory):
    from whaleflow.config import dump_config, load_config
    from whaleflow.pipeline import run_prepare

    run = tmp_path_factory.mktemp("killrun")
    stage = f"[{{size: 32, epochs: {EPOCHS}, lr: 0.002}}]"
    cfg = load_config(REPO / "configs" / "demo.yaml", [
        f"data.root={tiny_data}", f"output.dir={run}", "output.quiet=true", "train.device=cpu",
        f"models.0.stages={stage}", "models.0.p_individuals=6",
        f"models.1.stages={stage}", "models.1.mining.every=1", "models.1.mining.start=0"])
    run_prepare(cfg, progress=False)
    dump_config(cfg, run / "config.yaml")
    (run / "child.py").write_text(CHILD)
    return run


def _child(run: Path, mode: str, trial: Path, family: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", KILL_TEST_MARK=_mark(trial))
    return subprocess.Popen([sys.executable, str(run / "child.py"), mode, str(KILL_AT_SAVE), str(run), str(trial),
                             str(FAMILIES[family])], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> str:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return err


@pytest.fixture(scope="module")
def never_killed(prepared_run):
    """``never_killed(family)`` → the trial folder of a run nobody interrupted (trained once, in
    this process with one thread like the child: the reference for "nothing lost")."""
    from whaleflow.config import load_config
    from whaleflow.data.prepare import load_prepared
    from whaleflow.training import train_model

    def get(family: str) -> Path:
        trial = prepared_run / "straight" / family
        if not (trial / "result.json").exists():
            cfg = load_config(prepared_run / "config.yaml")
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                train_model(cfg, cfg.models[FAMILIES[family]], load_prepared(prepared_run / "prepared"), trial,
                            progress=False)
            finally:
                torch.set_num_threads(threads)
        return trial
    return get


def _mark(trial: Path) -> str:
    return f"{os.getpid()}-{trial.parent.name}-{trial.name}"


def _marked_processes(mark: str) -> list[int]:
    """Pids whose environment carries ``mark``: the child, its fork server and loader workers."""
    needle = f"KILL_TEST_MARK={mark}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):  # gone, or not ours to read
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
    return pids


def _kill_mid_write(run: Path, mode: str, trial: Path, family: str) -> None:
    marker = trial.parent / "mid-write"
    proc = _child(run, mode, trial, family)
    end = time.time() + 240
    while not marker.exists():
        assert proc.poll() is None, f"the child ended before the kill: {proc.communicate()[1][-3000:]}"
        assert time.time() < end, "the child never reached its checkpoint write"
        time.sleep(0.05)
    helpers = set(_marked_processes(_mark(trial))) - {proc.pid}
    assert helpers, "the child reads its batches in worker processes (train.workers=1)"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    marker.unlink()
    # the workers and the fork server notice their parent is gone and exit: none outlives a kill -9
    end = time.time() + 30
    while (left := _marked_processes(_mark(trial))) and time.time() < end:
        time.sleep(0.2)
    assert not left, f"processes of the killed child still running: {left}"


@pytest.mark.parametrize("mode,family", [("torn", "metric"), pytest.param("atomic", "metric", marks=pytest.mark.slow),
                                         pytest.param("atomic", "siamese", marks=pytest.mark.slow)])
def test_kill_9_during_a_checkpoint_write_then_rerun_loses_nothing(prepared_run, never_killed, mode, family):
    trial = prepared_run / mode / family
    ckpts = trial / "checkpoints"
    _kill_mid_write(prepared_run, mode, trial, family)

    safe_epochs = KILL_AT_SAVE - 1
    if mode == "atomic":
        assert list(ckpts.glob(".last.pt.*")), "the half-written temp file should be there"
        assert load_checkpoint(ckpts / "last.pt")["state"]["epoch"] == safe_epochs
    else:
        with pytest.raises(CheckpointError, match="is damaged"):
            load_checkpoint(ckpts / "last.pt")
        assert load_checkpoint(ckpts / "previous.pt")["state"]["epoch"] == safe_epochs

    err = _finish(_child(prepared_run, "clean", trial, family))

    ran = [line for line in err.splitlines() if "] epoch " in line]
    assert [line.split("] epoch ")[1].split()[0] for line in ran] == [f"{e}/{EPOCHS}" for e in range(safe_epochs + 1, EPOCHS + 1)], err
    if mode == "torn":
        said = [line for line in err.splitlines() if "is damaged" in line]
        assert len(said) == 1 and "last.pt" in said[0] and f"previous.pt instead (epoch {safe_epochs})" in said[0], err
    assert not list(ckpts.glob(".*.pt")), "temp files of the killed write are cleaned up"
    straight = never_killed(family)
    got, want = (load_checkpoint(d / "checkpoints" / "last.pt")["task"]["model"] for d in (trial, straight))
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want), "weights differ"
    a, b = (pd.read_csv(d / "metrics.csv") for d in (trial, straight))
    assert a["epoch"].tolist() == list(range(EPOCHS))
    timings = [c for c in a.columns if c.endswith("seconds")]
    pd.testing.assert_frame_equal(a.drop(columns=timings), b.drop(columns=timings))
