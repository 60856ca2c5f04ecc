"""The calibration of "the top candidate is right" against brute force on hand-made scores."""
from __future__ import annotations

import numpy as np
import pytest

from whaleflow.identify.calibration import (Calibration, accepts, fit_isotonic, fit_temperature, outcome_logprobs, pav,
                                            reliability, top_right, wilson)


def _groups(spec, rng):
    """Hand-made scores: per (feature centre, n, right) a group of n photos near the centre,
    its right answers at the low end so that pooling joins the group into one block."""
    feats, right = [], []
    for centre, n, k in spec:
        feats.append(centre + np.linspace(-0.01, 0.01, n))
        right.append(np.r_[np.ones(k), np.zeros(n - k)])
    f, r = np.concatenate(feats), np.concatenate(right)
    perm = rng.permutation(len(f))
    return f[perm], r[perm]


def test_isotonic_steps_equal_a_brute_force_binning_of_hand_made_scores():
    spec = [(0.2, 10, 2), (0.5, 20, 12), (0.9, 40, 39)]
    f, r = _groups(spec, np.random.default_rng(0))
    steps = fit_isotonic(f, r)
    # brute force: every group is one bin; its rate shrunk to (k + 1) / (n + 2)
    for centre, n, k in spec:
        members = np.abs(f - centre) <= 0.011
        assert members.sum() == n
        expect = (r[members].sum() + 1) / (n + 2)
        np.testing.assert_allclose(steps(f[members]), expect)
    assert list(steps.counts) == [10, 20, 40] and list(steps.right) == [2, 12, 39]
    # between blocks the lower step holds; below the first, the first
    assert steps(0.3) == pytest.approx(3 / 12) and steps(-5.0) == pytest.approx(3 / 12)
    assert steps(5.0) == pytest.approx(40 / 42)


def _minmax_isotonic(num, den):
    """Brute-force isotonic regression of the rates num/den (weights den): the fitted value at i
    is max over j <= i of min over l >= i of the pooled rate of j..l (no PAV involved)."""
    n = len(num)
    return np.array([max(min(num[j:l + 1].sum() / den[j:l + 1].sum() for l in range(i, n)) for j in range(i + 1))
                     for i in range(n)])


def _runs(values):
    """Start indices of the maximal runs of equal values."""
    return np.flatnonzero(np.r_[True, ~np.isclose(values[1:], values[:-1], rtol=0, atol=1e-12)])


def _brute_force_steps(feature, correct):
    """fit_isotonic's answer, by brute force: bin equal features, min-max isotonic rates, one
    block per run of equal fitted rates, each shrunk to (k+1)/(n+2), then a weighted min-max
    pass (weights n + 2) over the shrunk blocks; per distinct feature its step."""
    ux = np.unique(feature)
    k = np.array([correct[feature == x].sum() for x in ux], float)
    n = np.array([(feature == x).sum() for x in ux], float)
    starts = _runs(_minmax_isotonic(k, n))
    bk, bn = np.add.reduceat(k, starts), np.add.reduceat(n, starts)
    shrunk = (bk + 1) / (bn + 2)
    final = _minmax_isotonic(shrunk * (bn + 2), bn + 2)
    return ux, np.repeat(final, np.diff(np.r_[starts, len(ux)]))


def test_isotonic_steps_equal_a_brute_force_pav_on_hand_made_scores():
    """Hand-made runs of right answers (ties in the rate) must pool into one block, as the
    brute-force min-max isotonic fit pools them; before the fix each right answer of a run
    stayed a block of one at 2/3, so the top step could never pass 0.67."""
    rng = np.random.default_rng(5)
    cases = [np.r_[0, 1, 0, 1, np.ones(20)], np.r_[np.zeros(5), np.ones(3), 0, np.ones(8)],
             np.r_[1, 1, 0, 0, 1, 1, 1, 0, 1, 1]]
    cases += [(rng.random(30) < rng.random()).astype(float) for _ in range(15)]
    for right in cases:
        feature = np.sort(rng.random(len(right)))
        feature[3:6] = feature[3]  # a tie in the feature: one bin
        ux, expect = _brute_force_steps(feature, right)
        steps = fit_isotonic(feature, right)
        np.testing.assert_allclose(steps(ux), expect, atol=1e-12)
        assert np.all(np.diff(steps.values) > 0)  # maximal blocks: no two equal steps
        assert steps.counts.sum() == len(right) and steps.right.sum() == right.sum()


def test_a_run_of_98_right_answers_at_the_top_states_a_one_percent_rate():
    """(k + 1) / (k + 2) >= 0.99 needs k >= 98 right answers in a row at the top."""
    rng = np.random.default_rng(6)
    low = (rng.random(100) < 0.5).astype(float)
    low[-1] = 0  # the run at the top is exactly `run` long
    for run, ok in ((97, False), (98, True), (300, True)):
        feature, right = np.linspace(0, 1, 100 + run), np.r_[low, np.ones(run)]
        top = fit_isotonic(feature, right)(1.0)
        assert top == pytest.approx((run + 1) / (run + 2))
        assert bool(accepts(top, 0.01)) is ok
    assert not accepts(float("nan"), 0.5)


def test_shrunk_rates_that_dip_are_pooled_again():
    # raw rates 0/1 then 1/100 are monotone, but shrunk they are 1/3 then 2/102: pooled to 3/105
    f = np.r_[0.1, np.linspace(0.5, 0.6, 100)]
    r = np.r_[0, 1, np.zeros(99)]
    steps = fit_isotonic(f, r)
    assert len(steps.values) == 1
    np.testing.assert_allclose(steps(f), 3 / 105)


def test_pav_against_sklearn_and_a_monotone_brute_force():
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(3)
    for _ in range(20):
        y = rng.random(12).round(1)
        w = rng.integers(1, 4, 12).astype(float)
        starts, means, weights = pav(y, w)
        fitted = np.repeat(means, np.diff(np.r_[starts, len(y)]))
        ref = IsotonicRegression().fit(np.arange(12), y, sample_weight=w).predict(np.arange(12))
        np.testing.assert_allclose(fitted, ref, atol=1e-9)
        assert np.all(np.diff(means) > 0) and weights.sum() == pytest.approx(w.sum())


def test_outcome_logprobs_rank_new_exactly_at_the_threshold():
    s = np.array([[0.2, 0.9, 0.1], [0.2, 0.3, 0.1]])
    logp = outcome_logprobs(s, 0.5, 0.1)
    np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0)
    assert logp[0].argmax() == 1 and logp[1].argmax() == 3  # 3 = new individual
    brute = np.exp(np.r_[s[0], 0.5] / 0.1)
    np.testing.assert_allclose(np.exp(logp[0]), brute / brute.sum())


def test_temperature_of_maximum_likelihood_is_recovered():
    rng = np.random.default_rng(1)
    n, c, true_t, thr = 4000, 6, 0.3, 0.0
    s = rng.normal(size=(n, c))
    p = np.exp(outcome_logprobs(s, thr, true_t))
    outcome = np.array([rng.choice(c + 1, p=row) for row in p])
    truth = np.where(outcome == c, -1, outcome)
    assert fit_temperature(s, truth, thr) == pytest.approx(true_t, rel=0.1)


def test_top_right_counts_the_new_decision_as_one_outcome():
    s = np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.1], [0.2, 0.1]])
    truth = np.array([0, 1, -1, 0])
    assert top_right(s, truth, 0.5).tolist() == [True, False, True, False]


def test_calibration_round_trips_and_is_monotone_in_the_top_posterior():
    rng = np.random.default_rng(2)
    s = rng.normal(size=(300, 5))
    truth = np.where(rng.random(300) < 0.2, -1, s.argmax(axis=1))
    cal = Calibration.fit(s, truth, 0.5)
    again = Calibration.from_dict(cal.to_dict())
    np.testing.assert_allclose(again.p_correct(s, 0.5), cal.p_correct(s, 0.5))
    logp = cal.logprobs(s, 0.5)
    top, new = np.exp(logp.max(axis=1)), logp.argmax(axis=1) == 5
    p = cal.p_correct(s, 0.5)
    for kind in (new, ~new):  # monotone within each kind of decision, each fitted on its own queries
        assert kind.any() and np.all(np.diff(p[kind][np.argsort(top[kind])]) >= -1e-12)
    right = top_right(s, truth, 0.5)
    np.testing.assert_allclose(cal.steps_new(top[new]), fit_isotonic(top[new], right[new])(top[new]))
    np.testing.assert_allclose(cal.steps(top[~new]), fit_isotonic(top[~new], right[~new])(top[~new]))


def test_reliability_against_a_per_bin_loop():
    rng = np.random.default_rng(4)
    p, c = rng.random(200), rng.random(200) < 0.5
    p[:3] = [0.0, 1.0, 0.1]
    got = reliability(p, c, bins=5)
    for b in got:
        m = [i for i in range(200) if b["lo"] <= p[i] < b["hi"] or (b["hi"] == 1.0 and p[i] == 1.0)]
        assert b["n"] == len(m)
        assert b["predicted"] == pytest.approx(np.mean(p[m])) and b["observed"] == pytest.approx(np.mean(c[m]))
    assert sum(b["n"] for b in got) == 200


def test_wilson_interval_known_values():
    lo, hi = wilson(0, 100)
    assert lo == 0.0 and hi == pytest.approx(0.0370, abs=1e-4)
    lo, hi = wilson(5, 50)
    assert lo == pytest.approx(0.0435, abs=1e-3) and hi == pytest.approx(0.2136, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)
