"""Normalisation, blending, exact thresholds and folds, against brute force."""
from __future__ import annotations

import numpy as np
import pytest

from whaleflow.ensemble import (RankedTopK, ScoreNormalizer, best_threshold, blend_matrices, cv_map5,
                                make_folds, normalize_weights)
from whaleflow.inference.topk import insert_new_whale, tune_threshold
from whaleflow.metrics import map_at_k_indices


def _random_problem(seed, n=80, c=12, ties=False):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n, c)).astype(np.float32)
    if ties:
        s = np.round(s, 1)
    truth = rng.integers(-1, c, n)
    s[np.arange(n)[truth >= 0], truth[truth >= 0]] += 1.0
    return s, truth


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, False)])
def test_best_threshold_is_exact(seed, ties):
    s, truth = _random_problem(seed, ties=ties)
    t, value = best_threshold(RankedTopK.from_scores(s, truth))
    # what insert_new_whale does at that threshold is what best_threshold claims
    assert value == pytest.approx(map_at_k_indices(insert_new_whale(s, t), truth))
    # no threshold does better: every distinct top-5 value and a point above them
    top = np.sort(s, axis=1)[:, -5:]
    cands = np.r_[np.unique(top), top.max() + 1.0]
    brute = max(map_at_k_indices(insert_new_whale(s, c), truth) for c in cands)
    assert value == pytest.approx(brute)
    assert value >= tune_threshold(s, truth)[1] - 1e-12


def test_ranked_map_matches_insert_new_whale_on_a_grid():
    s, truth = _random_problem(3)
    ranked = RankedTopK.from_scores(s, truth)
    for t in np.linspace(-1, 4, 23):
        assert ranked.map_at(t) == pytest.approx(map_at_k_indices(insert_new_whale(s, t), truth))


def test_threshold_invariant_under_monotone_normalisation():
    rng = np.random.default_rng(4)
    truth = rng.integers(-1, 10, 60)
    logits = rng.normal(size=(60, 10))
    logits[np.arange(60)[truth >= 0], truth[truth >= 0]] += 2
    probs = (1 / (1 + np.exp(-logits))).astype(np.float32)
    norm = ScoreNormalizer.fit(probs)
    assert norm.logit
    raw = best_threshold(RankedTopK.from_scores(probs, truth))[1]
    assert best_threshold(RankedTopK.from_scores(norm.transform(probs), truth))[1] == pytest.approx(raw)


def test_normalizer_fits_on_val_and_applies_the_same_transform_to_test():
    rng = np.random.default_rng(5)
    val = rng.uniform(-1, 1, (40, 20)).astype(np.float32)
    test = rng.uniform(-1, 1, (30, 25)).astype(np.float32) * 3  # different scale: must not be refitted
    norm = ScoreNormalizer.fit(val)
    assert not norm.logit
    top = np.sort(val.astype(np.float64), axis=1)[:, -5:]
    assert norm.mean == pytest.approx(top.mean()) and norm.std == pytest.approx(top.std())
    np.testing.assert_allclose(norm.transform(test), (test - top.mean()) / top.std(), rtol=1e-5, atol=1e-5)
    again = ScoreNormalizer.from_dict(norm.to_dict())
    np.testing.assert_array_equal(again.transform(test), norm.transform(test))
    # on validation the top-5 scores are standardised
    tv = np.sort(norm.transform(val), axis=1)[:, -5:]
    assert abs(tv.mean()) < 1e-5 and tv.std() == pytest.approx(1.0, rel=1e-4)


def test_blend_weights_are_nonnegative_and_normalised():
    a, b = np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32)
    np.testing.assert_allclose(blend_matrices([a, b], [3, 1]), 0.75)
    np.testing.assert_array_equal(blend_matrices([a, b], [0, 2]), b)  # one-hot = that model exactly
    with pytest.raises(ValueError):
        normalize_weights([1.0, -0.1])
    with pytest.raises(ValueError):
        normalize_weights([0.0, 0.0])
    with pytest.raises(ValueError):
        blend_matrices([a, np.ones((2, 4), np.float32)], [1, 1])


def test_folds_are_stratified_and_cv_holds_out_the_threshold():
    truth = np.array([-1] * 30 + [0] * 60)
    folds = make_folds(truth, 3, seed=0)
    for f in range(3):
        assert (truth[folds == f] == -1).sum() == 10 and (folds == f).sum() == 30
    np.testing.assert_array_equal(folds, make_folds(truth, 3, seed=0))
    s, t = _random_problem(6, n=90)
    ranked = RankedTopK.from_scores(s, t)
    f = make_folds(t, 3, seed=1)
    manual = 0.0
    for k in range(3):
        held = f == k
        t_k, _ = best_threshold(RankedTopK.from_scores(s[~held], t[~held]))
        manual += map_at_k_indices(insert_new_whale(s[held], t_k), t[held]) * held.sum()
    assert cv_map5(ranked, f) == pytest.approx(manual / len(t))
