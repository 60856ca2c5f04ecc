"""The classifier on concatenated embeddings as one more model of the ensemble."""
from __future__ import annotations

import json

import numpy as np
import pytest

from whaleflow.config import ClassifierConfig
from whaleflow.ensemble import build_classifier_model, gather_embeddings, run_ensemble
from whaleflow.inference import ClassScores

CFG = ClassifierConfig(pca_dim=8, hidden=32, dropout=0.1, epochs=60, lr=1e-2)


def test_classifier_from_embedding_clusters_beats_chance(make_run):
    run = make_run(embeddings=("cos", "prob"))
    outcome = build_classifier_model(CFG, run, ["cos", "prob"], seed=0)
    d = outcome.trial_dir
    assert d == run / "trials" / "classifier"
    result = json.loads((d / "result.json").read_text())
    assert result["family"] == "classifier" and result["sources"] == ["cos", "prob"]
    assert result["embedding_dim"] == 32
    # 30 individuals, ~30% new_whale: chance MAP@5 is well under 0.2
    assert result["val_map5"] > 0.6
    val, test = ClassScores.load(d / "scores_val.npz"), ClassScores.load(d / "scores_test.npz")
    other_val = ClassScores.load(run / "trials" / "cos" / "scores_val.npz")
    assert sorted(val.classes) == sorted(other_val.classes)          # train-role known individuals
    assert set(val.images) == set(other_val.images) and val.truth is not None
    assert set(test.images) == set(ClassScores.load(run / "trials" / "cos" / "scores_test.npz").images)
    assert len(test.classes) >= len(val.classes)                        # refit on train + val
    # unchanged sources: reused, not refitted
    again = build_classifier_model(CFG, run, ["cos", "prob"], seed=0)
    assert "reused" in again.note


def test_gather_embeddings_puts_blocks_on_one_scale(make_run):
    run = make_run(embeddings=("cos", "prob"))
    p = [run / "trials" / n / "embeddings.npz" for n in ("cos", "prob")]
    with np.load(p[1]) as d:  # blow one block up: it must not dominate after scaling
        arrays = {k: d[k] for k in d.files}
    arrays["embeddings"] = arrays["embeddings"] * 1000
    np.savez(p[1], **arrays)
    x, images, roles, ids = gather_embeddings(p)
    train = roles == "train"
    for block in (x[train, :16], x[train, 16:]):
        assert ((block - block.mean(0)) ** 2).sum(1).mean() == pytest.approx(1.0, rel=1e-3)


def test_classifier_is_skipped_cleanly(make_run):
    run = make_run(embeddings=())
    out = build_classifier_model(CFG, run, ["cos", "prob"])
    assert out.trial_dir is None and "no trial wrote embeddings" in out.note
    off = build_classifier_model(ClassifierConfig(enabled=False), make_run(name="r2"), ["cos"])
    assert off.trial_dir is None and "disabled" in off.note


def test_driver_blends_the_classifier_as_one_more_model(make_run, ens_cfg):
    run = make_run()
    out = run_ensemble(ens_cfg(classifier=True), run, progress=False)
    assert set(out["models"]) == {"cos", "prob", "classifier"}
    assert out["models"]["classifier"]["family"] == "classifier"
    assert out["val_map5"] >= max(m["val_map5"] for m in out["models"].values())
    assert any("classifier on embeddings: built" in n for n in out["notes"])
    # disabled later: the stale classifier folder is not blended
    later = run_ensemble(ens_cfg(classifier=False), run, progress=False)
    assert set(later["models"]) == {"cos", "prob"}
    assert any("disabled" in n for n in later["notes"])
