"""The prior rule for the new-individual threshold, on hand-made cases and against a brute-force count."""
import numpy as np
import pytest

from whaleflow.inference.new_prior import new_first_share, prior_threshold
from whaleflow.inference.topk import insert_new_whale


def _new_first(scores, t):
    return int((insert_new_whale(np.asarray(scores, np.float32), t)[:, 0] == -1).sum())


def test_hand_made_cases():
    top = np.array([0.9, 0.1, 0.5, 0.3, 0.7])
    # 2 of 5 (prior 0.4): the two lowest (0.1, 0.3) get new first; the cut sits between 0.3 and 0.5
    t = prior_threshold(top, 0.4)
    assert 0.3 < t <= 0.5 and t == pytest.approx(0.4)
    assert new_first_share(top, t) == pytest.approx(0.4)
    assert prior_threshold(top, 0.0) == pytest.approx(0.1) and new_first_share(top, prior_threshold(top, 0.0)) == 0
    assert new_first_share(top, prior_threshold(top, 1.0)) == 1.0
    # round(0.3 * 5) = 2 as well; round(0.5 * 5) = 2 (banker's rounding of 2.5), 0.6 → 3
    assert new_first_share(top, prior_threshold(top, 0.6)) == pytest.approx(0.6)


def test_ties_stay_known_never_more_than_the_prior():
    top = np.array([0.2, 0.5, 0.5, 0.5, 0.9])
    t = prior_threshold(top, 0.4)  # the 2nd and 3rd lowest tie: only the 0.2 can be cut off
    assert t == pytest.approx(0.5) and new_first_share(top, t) == pytest.approx(0.2)


def test_matrix_input_uses_row_max_and_matches_insert_new_whale():
    rng = np.random.default_rng(0)
    for prior in (0.0, 0.1, 0.28, 0.5, 0.93):
        s = rng.normal(size=(37, 9)).astype(np.float32)
        t = prior_threshold(s, prior)
        assert _new_first(s, t) == int(round(prior * 37))  # continuous scores: no ties


def test_bad_prior():
    with pytest.raises(ValueError):
        prior_threshold(np.ones(3), 1.5)
    assert prior_threshold(np.zeros(0), 0.3) == 0.0
