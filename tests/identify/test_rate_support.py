"""Whether validation can back a stated false-match rate: the boundary by hand, the one line, and decide()."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from whaleflow.identify.auto_accept import decide
from whaleflow.identify.calibration import wilson
from whaleflow.identify.rate_support import LADDER, fmr_check, lowest_supported, support_line


def test_a_one_percent_rate_needs_381_right_answers_with_no_error():
    """Wilson's upper bound of 0 of n is z² / (n + z²): at most 1 % from n = 381 on."""
    for n, ok in ((100, False), (380, False), (381, True), (1000, True)):
        c = fmr_check(np.full(n, 0.999), np.ones(n, bool), 0.01)
        assert c["accepted"] == n and c["fmr_high"] == pytest.approx(wilson(0, n)[1])
        assert c["supported"] is ok and c["needed"] == 100


def test_errors_among_the_accepted_count_through_the_upper_bound():
    right = np.ones(1000, bool)
    right[:5] = False  # observed 0.5 %, upper bound about 1.17 %
    p = np.full(1000, 0.995)
    assert not fmr_check(p, right, 0.01)["supported"]
    assert fmr_check(p, right, 0.02)["supported"]
    assert lowest_supported(p, right) == 0.02


def test_only_what_the_rate_accepts_counts():
    # 400 right answers at 0.995 and 600 wrong ones at 0.5: 1 % accepts the 400 alone
    p, right = np.r_[np.full(400, 0.995), np.full(600, 0.5)], np.r_[np.ones(400, bool), np.zeros(600, bool)]
    c = fmr_check(p, right, 0.01)
    assert (c["accepted"], c["false_matches"], c["supported"]) == (400, 0, True)
    assert not fmr_check(p, right, 0.5)["supported"]  # now the wrong ones are accepted too


def test_lowest_supported_against_a_loop_over_the_ladder():
    rng = np.random.default_rng(2)
    for _ in range(20):
        n = int(rng.integers(5, 3000))
        p = rng.uniform(0.5, 1, n)
        right = rng.random(n) < p
        expect = None
        for r in LADDER:
            acc = (1 - p) <= r + 1e-9
            k, m = int((acc & ~right).sum()), int(acc.sum())
            if m >= np.ceil(1 / r - 1e-9) and wilson(k, m)[1] <= r + 1e-9:
                expect = r
                break
        assert lowest_supported(p, right) == expect


def test_the_line_is_one_line_and_says_the_lowest_supported_rate():
    p, right = np.full(150, 0.999), np.ones(150, bool)
    line = support_line(p, right, 0.01, "photo")
    assert "\n" not in line and line.startswith("validation cannot support a false-match rate of 1 % per photo")
    assert "accepted 150 of 150 photos" in line and "nothing was auto-accepted" in line
    assert "the lowest rate it supports is 5 %" in line  # 0 of 150: upper bound 2.5 %
    assert support_line(p, right, 0.05, "photo") is None
    assert "supports none of" in support_line(np.full(3, 0.999), np.ones(3, bool), 0.01)


class _Cal:
    def __init__(self, p, right):
        self.oof_p, self.oof_right = np.asarray(p, float), np.asarray(right, bool)

    def fmr_check(self, rate):
        return fmr_check(self.oof_p, self.oof_right, rate)


def test_decide_accepts_nothing_of_a_kind_whose_validation_cannot_back_the_rate():
    units = pd.DataFrame({"p_correct": [0.999, 0.97, 0.999, 0.999], "n_photos": [1, 1, 3, 2]})
    photos_ok = _Cal(np.full(2000, 0.999), np.ones(2000, bool))      # backs 1 %
    encounters_few = _Cal(np.full(40, 0.999), np.ones(40, bool))     # 40 encounters cannot
    accepted, notes = decide(units, 0.01, photos_ok, encounters_few)
    assert accepted.tolist() == [True, False, False, False]
    assert len(notes) == 2 and notes[0].startswith("auto-accept at a false-match rate of at most 1 % per photo")
    assert notes[1].startswith("validation cannot support a false-match rate of 1 % per encounter")
    accepted, notes = decide(units, 0.01, encounters_few, photos_ok)
    assert accepted.tolist() == [False, False, True, True] and "per photo" in notes[0]
    # photos only (no encounters): one kind
    accepted, notes = decide(units[["p_correct"]], 0.1, encounters_few)  # 0 of 40: bound 8.8 %
    assert accepted.tolist() == [True, True, True, True] and len(notes) == 1
