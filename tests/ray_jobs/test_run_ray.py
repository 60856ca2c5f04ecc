"""``whaleflow run`` through Ray on a local Ray with two faked GPUs: trials side by side on their
own GPU, siamese mining through its actor, the ensemble as a Ray task, and continuing after Ctrl+C."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import pandas as pd
import pytest

from ray_jobs.trainable import read_attempts

MODELS = ("metric_compact", "siamese_compact")


@pytest.fixture(scope="module")
def ray_run(local_ray, tiny_config, tmp_path_factory):
    from ray_jobs.pipeline import run_ray

    out = tmp_path_factory.mktemp("ray_run")
    cfg = tiny_config(out, "models.0.stages=[{size: 32, epochs: 8, lr: 0.002}]",
                      "models.1.stages=[{size: 32, epochs: 8, lr: 0.002}]")
    t0 = time.time()
    summary = run_ray(cfg, progress=False)
    return out, summary, time.time() - t0


def _progress(out, name):
    return pd.read_csv(out / "tune" / "whaleflow" / name / "progress.csv")


def test_trials_run_side_by_side_on_their_own_gpu(ray_run):
    out, summary, _ = ray_run
    assert summary["tune"]["finished"] == 2
    spans, devices = [], []
    for name in MODELS:
        rows = read_attempts(out / "trials" / name)
        start = next(r for r in rows if r["event"] == "start")
        end = next(r for r in rows if r["event"] == "end")
        spans.append((start["time"], end["time"]))
        devices.append(start["cuda_visible_devices"])
        assert set(_progress(out, name)["cuda_visible_devices"].astype(str)) == {start["cuda_visible_devices"]}
    assert sorted(devices) == ["0", "1"], f"each trial should own one of the two GPUs, saw {devices}"
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1, f"the trials did not overlap in time: {spans}"


def test_siamese_trial_mines_through_its_actor(ray_run):
    out, _, _ = ray_run
    progress = _progress(out, "siamese_compact")
    assert progress["mining_solves"].max() >= 1
    assert "lap (actor)" in set(progress["mining_source"].dropna())
    metrics = pd.read_csv(out / "trials" / "siamese_compact" / "metrics.csv")
    used = metrics[metrics["mining_source"] == "lap (actor)"]
    assert len(used) >= 1 and used["mining_hardness"].notna().all()


def test_ensemble_task_is_at_least_as_good_as_the_best_single_model(ray_run):
    out, summary, _ = ray_run
    singles = {n: m["val_map5"] for n, m in summary["models"].items()}
    assert set(MODELS) <= set(singles)
    assert summary["val_map5"] >= max(singles.values()) - 1e-9, (summary["val_map5"], singles)
    assert (out / "submission.csv").exists()
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["val_map5"] == pytest.approx(summary["val_map5"]) and "test_map5" in on_disk


def test_tune_logs_stay_in_the_run_folder(ray_run):
    out, _, seconds = ray_run
    for name in MODELS:
        tune_dir = out / "tune" / "whaleflow" / name
        assert (tune_dir / "progress.csv").exists()
        assert list(tune_dir.glob("events.out.tfevents*")), "no TensorBoard log"
        for f in ("result.json", "metrics.csv", "scores_val.npz", "scores_test.npz", "checkpoints/best.pt"):
            assert (out / "trials" / name / f).exists(), f"{name}/{f}"
    print(f"run_ray on the tiny set took {seconds:.1f}s")


def test_resume_after_interrupt_reruns_no_finished_trial(local_ray, tiny_config, tmp_path):
    """Ctrl+C while one trial is done and the other is halfway; the same call again finishes only the other."""
    from ray_jobs.pipeline import run_tune

    out = tmp_path / "run"
    cfg = tiny_config(out, "models.0.stages=[{size: 32, epochs: 1, lr: 0.002}]",
                      "models.1.stages=[{size: 32, epochs: 30, lr: 0.002}]", "models.1.mining.every=5")
    done, slow = out / "trials" / "metric_compact", out / "trials" / "siamese_compact"
    fired: list[float] = []

    def interrupt_when_half_done():
        end = time.time() + 180
        while time.time() < end:
            rows = len(pd.read_csv(slow / "metrics.csv")) if (slow / "metrics.csv").exists() else 0
            if (done / "result.json").exists() and rows >= 2 and not (slow / "result.json").exists():
                fired.append(time.time())
                os.kill(os.getpid(), signal.SIGINT)  # Tune's handler: stop, save state, return
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=interrupt_when_half_done, daemon=True)
    watcher.start()
    with pytest.raises(KeyboardInterrupt):
        run_tune(cfg, progress=False)
    watcher.join(timeout=5)
    assert fired, "the run finished before it could be interrupted"
    assert not (slow / "result.json").exists()
    before = {p: p.stat().st_mtime_ns for p in done.rglob("*") if p.is_file()}

    summary = run_tune(cfg, progress=False)

    assert summary["continued"], "the interrupted Tune experiment should be restored, not started afresh"
    assert summary["finished"] == 2 and (slow / "result.json").exists()
    after = {p: p.stat().st_mtime_ns for p in done.rglob("*") if p.is_file()}
    assert after == before, "the finished trial's folder was touched by the resumed run"
    starts = [r for r in read_attempts(slow) if r["event"] == "start"]
    assert len(starts) == 2 and starts[0]["start_epoch"] == 0
    assert starts[1]["start_epoch"] > 0, "the interrupted trial restarted from scratch, not from its checkpoint"
    assert len(pd.read_csv(slow / "metrics.csv")) == 30
