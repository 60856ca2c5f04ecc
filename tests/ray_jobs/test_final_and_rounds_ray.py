"""On Ray: final fits and pseudo-labelling rounds run as further Tune trials."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from whaleflow.labels import NEW_WHALE

ONE_MODEL = ("models=[{name: metric_compact, family: metric, backbone: wf_compactnet, embedding_dim: 32, "
             "p_individuals: 6, k_images: 4, stages: [{size: 32, epochs: 2, lr: 0.002}]}]")


@pytest.mark.slow
def test_final_fit_and_a_pseudo_round_are_tune_trials(local_ray, tiny_config, tmp_path):
    from ray_jobs.pipeline import run_ray

    cfg = tiny_config(tmp_path, ONE_MODEL, "train.final_fit=true", "pseudo_label.rounds=1",
                      "pseudo_label.min_score=-10", "pseudo_label.min_precision=null", "predict.new_prior=0.3",
                      "ensemble.outer_folds=2",
                      "ensemble.classifier.enabled=false")
    summary = run_ray(cfg, progress=False)
    # the final fit: a trial of its own experiment, on train + val, for the validated epoch count
    final = json.loads((tmp_path / "final" / "metric_compact" / "result.json").read_text())
    validated = json.loads((tmp_path / "trials" / "metric_compact" / "result.json").read_text())
    assert final["final_epochs"] == validated["best_epoch"] + 1
    assert (tmp_path / "tune" / "whaleflow-final").is_dir() and summary["tune"]["final"]["final_fits"] == 1
    # the round: its own Tune experiment in the round folder, trained with the pseudo-labels
    rdir = tmp_path / "pseudo" / "round_1"
    labels = pd.read_csv(rdir / "pseudo_labels.csv", dtype=str, keep_default_na=False)
    assert len(labels) and NEW_WHALE not in set(labels["id"])
    assert (rdir / "tune" / "whaleflow").is_dir() and (rdir / "trials" / "metric_compact" / "result.json").is_file()
    assert (rdir / "final" / "metric_compact" / "result.json").is_file()
    rounds = summary["ensemble"]["pseudo_rounds"]
    assert [r["round"] for r in rounds] == [0, 1] and "val_gain" in rounds[1]
    assert summary["ensemble"]["expected_test_map5"] is not None
