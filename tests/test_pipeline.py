"""The whole job on tiny synthetic data, on CPU, without Ray: data → submission → MAP@5."""
import json

import pandas as pd
import pytest

from whaleflow.config import load_config
from whaleflow.pipeline import run_local

TINY = [
    "models.0.stages=[{size: 32, epochs: 2, lr: 0.002}, {size: 40, epochs: 1, lr: 0.001}]",
    "models.0.p_individuals=6",
    "models.1.stages=[{size: 32, epochs: 2, lr: 0.002}]",
    "models.1.mining.every=1",
    "ensemble.trials=8",
    "ensemble.classifier.epochs=30",
    "output.quiet=true",
    # the per-epoch figures use the train gallery; with it the export repeats the best epoch's figure
    "predict.val_gallery=train",
]


@pytest.fixture(scope="module")
def tiny_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = load_config("configs/demo.yaml", [f"data.root={tiny_data}", f"output.dir={out}", *TINY])
    return out, run_local(cfg, progress=False)


def test_run_writes_submission_and_summary(tiny_run, tiny_data):
    out, summary = tiny_run
    sub = pd.read_csv(out / "submission.csv")
    answers = pd.read_csv(tiny_data / "answers.csv")
    assert sorted(sub["Image"]) == sorted(answers["Image"]), "every test image exactly once"
    assert all(len(ids.split()) == 5 for ids in sub["Id"])
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["test_map5"] == pytest.approx(summary["test_map5"])
    assert 0.0 <= summary["test_map5"] <= 1.0
    assert set(summary["models"]) >= {"metric_compact", "siamese_compact"}
    assert (out / "config.yaml").exists()
    for name in ("metric_compact", "siamese_compact"):
        trial = out / "trials" / name
        for f in ("result.json", "metrics.csv", "scores_val.npz", "scores_test.npz", "checkpoints/last.pt"):
            assert (trial / f).exists(), f"{name}/{f}"


def test_rerun_skips_finished_trials(tiny_run, tiny_data):
    out, _ = tiny_run
    result = out / "trials" / "metric_compact" / "result.json"
    before = result.stat().st_mtime_ns
    cfg = load_config("configs/demo.yaml", [f"data.root={tiny_data}", f"output.dir={out}", *TINY])
    run_local(cfg, progress=False)
    assert result.stat().st_mtime_ns == before


def test_exported_scores_are_the_best_epochs(tiny_run):
    """The artifacts come from the best validation epoch, at the size it was validated at."""
    out, _ = tiny_run
    for name in ("metric_compact", "siamese_compact"):
        trial = out / "trials" / name
        best = pd.read_csv(trial / "metrics.csv")["val_map5"].max()
        assert json.loads((trial / "result.json").read_text())["val_map5"] == pytest.approx(best, abs=1e-6)


def test_changed_settings_retrain_and_keep_the_old_trial(tiny_data, tmp_path):
    base = [f"data.root={tiny_data}", f"output.dir={tmp_path}", *TINY, "models=[{name: m, family: metric, "
            "backbone: wf_compactnet, embedding_dim: 16, p_individuals: 6, stages: [{size: 32, epochs: 1}]}]"]
    from whaleflow.pipeline import run_prepare, start_run
    from whaleflow.training import train_model

    cfg = start_run(load_config("configs/demo.yaml", base), progress=False)
    prepared = run_prepare(cfg, progress=False)
    first = train_model(cfg, cfg.models[0], prepared, tmp_path / "trials" / "m", progress=False)
    assert train_model(cfg, cfg.models[0], prepared, tmp_path / "trials" / "m", progress=False) == first
    changed = load_config("configs/demo.yaml", [*base, "models.0.embedding_dim=8"])
    second = train_model(changed, changed.models[0], prepared, tmp_path / "trials" / "m", progress=False)
    assert second["fingerprint"] != first["fingerprint"]
    stale = list((tmp_path / "stale").glob("m-*"))
    assert len(stale) == 1 and json.loads((stale[0] / "result.json").read_text()) == first
