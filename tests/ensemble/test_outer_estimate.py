"""The expected test MAP@5: outer folds never take part in choosing what they are scored with."""
from __future__ import annotations

import numpy as np
import pytest

from whaleflow.ensemble.blend import blend_matrices
from whaleflow.ensemble.outer import OUTER_SEED_OFFSET, outer_estimate
from whaleflow.ensemble.tune import RankedTopK, make_folds


def _models(seed=0, n=120, c=25, bump=(1.2, 0.8), new_share=0.3):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, c, n)
    truth[rng.random(n) < new_share] = -1
    mats = []
    for b in bump:
        m = rng.normal(0, 1, (n, c)).astype(np.float32)
        known = truth >= 0
        m[np.flatnonzero(known), truth[known]] += b
        mats.append(m)
    return mats, truth


def test_a_held_out_fold_does_not_change_what_is_chosen_for_it():
    mats, truth = _models()
    kw = dict(outer_folds=4, trials=6, folds=3, seed=1)
    base = outer_estimate(mats, truth, ["a", "b"], **kw)
    fold_ids = make_folds(truth, 4, 1 + OUTER_SEED_OFFSET)
    for f in range(4):
        held = fold_ids == f
        poisoned = [m.copy() for m in mats]
        rng = np.random.default_rng(f)
        for m in poisoned:  # scramble the held-out fold's scores completely
            m[held] = rng.normal(0, 5, m[held].shape)
        again = outer_estimate(poisoned, truth, ["a", "b"], **kw)
        assert again.folds[f]["weights"] == base.folds[f]["weights"]
        assert again.folds[f]["threshold"] == base.folds[f]["threshold"]
        # ...and the held-out score is recomputed from the fold's own rows with those choices
        w = np.array([again.folds[f]["weights"][k] for k in ("a", "b")])
        ranked = RankedTopK.from_scores(blend_matrices([m[held] for m in poisoned], w), truth[held])
        assert again.folds[f]["map5"] == pytest.approx(ranked.map_at(again.folds[f]["threshold"]))


def test_estimate_is_the_size_weighted_mean_and_has_a_spread():
    mats, truth = _models(seed=3)
    est = outer_estimate(mats, truth, ["a", "b"], outer_folds=3, trials=4, folds=3, seed=0)
    sizes = np.array([f["images"] for f in est.folds])
    assert sizes.sum() == len(truth)
    assert est.map5 == pytest.approx(np.average([f["map5"] for f in est.folds], weights=sizes))
    assert est.std == pytest.approx(np.std([f["map5"] for f in est.folds], ddof=1)) and est.std > 0
    assert est.to_dict()["n_folds"] == 3


def test_in_sample_choice_flatters_itself_on_noise():
    """Pure-noise models: the best of many trials looks good in-sample, the outer folds say no."""
    from whaleflow.ensemble.tune import tune_blend

    rng = np.random.default_rng(5)
    truth = rng.integers(0, 20, 150)
    mats = [rng.normal(size=(150, 20)).astype(np.float32) for _ in range(4)]
    names = list("abcd")
    inside = tune_blend(mats, truth, names, trials=30, folds=3, seed=0, storage_path=None, progress=False)
    est = outer_estimate(mats, truth, names, outer_folds=5, trials=30, folds=3, seed=0)
    assert est.map5 < inside.val_map5


def test_prior_rule_takes_each_held_out_folds_threshold_from_its_own_scores():
    from whaleflow.inference.new_prior import new_first_share

    mats, truth = _models(seed=2)
    est = outer_estimate(mats, truth, ["a", "b"], outer_folds=3, trials=3, folds=3, seed=0, prior=0.3)
    fold_ids = make_folds(truth, 3, OUTER_SEED_OFFSET)
    for f, row in enumerate(est.folds):
        held = fold_ids == f
        w = np.array([row["weights"][k] for k in ("a", "b")])
        blended = blend_matrices([m[held] for m in mats], w)
        assert new_first_share(blended, row["threshold"]) == pytest.approx(0.3, abs=0.5 / held.sum() + 1e-9)


def test_too_few_folds_or_images_give_no_estimate():
    mats, truth = _models(n=6)
    assert outer_estimate(mats, truth, ["a", "b"], outer_folds=1, trials=2, folds=2, seed=0) is None
    assert outer_estimate(mats, truth, ["a", "b"], outer_folds=5, trials=2, folds=2, seed=0) is None


def test_row_weights_score_each_fold_by_weight_and_leave_the_choice_alone():
    mats, truth = _models(seed=4)
    w = np.random.default_rng(0).integers(1, 5, len(truth)).astype(float)
    kw = dict(outer_folds=3, trials=4, folds=3, seed=0)
    plain = outer_estimate(mats, truth, ["a", "b"], **kw)
    ones = outer_estimate(mats, truth, ["a", "b"], row_weights=np.ones(len(truth)), **kw)
    assert ones.map5 == pytest.approx(plain.map5)
    est = outer_estimate(mats, truth, ["a", "b"], row_weights=w, weighted_choice=False, **kw)
    fold_ids = make_folds(truth, 3, OUTER_SEED_OFFSET)
    for f, (row, base) in enumerate(zip(est.folds, plain.folds)):
        assert row["weights"] == base["weights"] and row["threshold"] == base["threshold"]  # same choice
        held = fold_ids == f
        wm = np.array([row["weights"][k] for k in ("a", "b")])
        ranked = RankedTopK.from_scores(blend_matrices([m[held] for m in mats], wm), truth[held])
        counts = (ranked.values >= np.float32(row["threshold"])).sum(axis=1)
        ap = ranked.ap[np.arange(len(counts)), counts]
        assert row["map5"] == pytest.approx(np.average(ap, weights=w[held]))
        assert row["weight"] == pytest.approx(w[held].sum())
    assert est.map5 == pytest.approx(np.average([r["map5"] for r in est.folds], weights=[r["weight"] for r in est.folds]))
    chosen = outer_estimate(mats, truth, ["a", "b"], row_weights=w, weighted_choice=True, **kw)
    assert any(r["threshold"] != b["threshold"] or r["weights"] != b["weights"]
               for r, b in zip(chosen.folds, plain.folds))  # a weighted choice is another choice


def test_within_se_averages_the_trials_that_tie_within_noise():
    """The mean of the normalised weights of every trial at or above the floor, by hand."""
    from types import SimpleNamespace

    from whaleflow.ensemble.blend_study import within_se

    trials = [SimpleNamespace(value=v, params={"w_a": a, "w_b": b}) for v, a, b in
              ((0.80, 1.0, 0.0), (0.79, 0.5, 0.5), (0.70, 0.0, 1.0), (None, 0.3, 0.3), (0.795, 0.0, 0.0))]
    w, kept = within_se(trials, ["w_a", "w_b"], 0.785)
    assert kept == 3  # 0.80, 0.79 and the all-zero trial (equal weights); not 0.70 or the unfinished one
    assert w == pytest.approx(np.mean([[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]], axis=0))


def test_within_se_choice_blends_models_a_tiny_validation_cannot_tell_apart():
    """Two equally good, independent models on 40 queries: "best" keeps whichever trial won by
    noise, "within_se" keeps both (and a single model beats it only by more than the error)."""
    from whaleflow.ensemble.tune import tune_blend

    mats, truth = _models(seed=3, n=40, c=15, bump=(1.5, 1.5))
    kw = dict(trials=20, folds=3, seed=0, storage_path=None, progress=False)
    best = tune_blend(mats, truth, ["a", "b"], **kw)
    se = tune_blend(mats, truth, ["a", "b"], choice="within_se", **kw)
    assert min(se.weights.values()) > 0.2
    assert any("within one standard error" in n for n in se.notes)
    assert min(best.weights.values()) <= min(se.weights.values())
    with pytest.raises(ValueError, match="unknown blend choice"):
        tune_blend(mats, truth, ["a", "b"], choice="mean", **kw)
