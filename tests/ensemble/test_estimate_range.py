"""The expected test MAP@5 as a range over test mixes, checked on hand-made mixes."""
from __future__ import annotations

import numpy as np
import pytest

from whaleflow.ensemble.estimate_range import estimate_range, mix_shares
from whaleflow.inference.ranked import RankedTopK


def test_mix_shares_by_hand():
    counts = np.array([1, 1, 1, 2, 8])          # bins: 1, 1, 1, 2, 5-8 (bin index 3)
    assert mix_shares("proportional", counts) == pytest.approx([3 / 13, 2 / 13, 0, 8 / 13])
    assert mix_shares("per_individual", counts) == pytest.approx([3 / 5, 1 / 5, 0, 1 / 5])
    # the test queries' first-ranked individuals had 1, 8, 8 and 0 (new) photos
    assert mix_shares("implied", counts, np.array([1, 8, 8, 0])) == pytest.approx([1 / 3, 0, 0, 2 / 3])
    assert mix_shares("implied", counts, None) is None


def test_range_spans_the_mixes_on_a_hand_made_set():
    # validation: 20 known queries with a one-photo gallery (AP 0.2), 20 with eight photos
    # (AP 1.0), 10 new ones (AP 0.5); two outer folds with identical make-up (no spread)
    sizes = np.r_[np.ones(20), np.full(20, 8), np.zeros(10)].astype(int)
    ap = np.r_[np.full(20, 0.2), np.ones(20), np.full(10, 0.5)]
    folds = np.tile([0, 1], 25)
    counts = np.r_[np.ones(30), np.full(10, 8)]  # 30 individuals with one photo, 10 with eight
    out = estimate_range(ap, folds, sizes, counts, min_queries=5)
    # proportional: one-photo share 30/110, eight-photo share 80/110 of the 40 known weight
    prop = (40 * (30 / 110 * 0.2 + 80 / 110 * 1.0) + 10 * 0.5) / 50
    per = (40 * (30 / 40 * 0.2 + 10 / 40 * 1.0) + 10 * 0.5) / 50
    assert out["mixes"]["proportional"]["map5"] == pytest.approx(prop)
    assert out["mixes"]["per_individual"]["map5"] == pytest.approx(per)
    assert out["mixes"]["proportional"]["se"] == pytest.approx(0.0, abs=1e-12)
    assert out["low"] == pytest.approx(min(prop, per)) and out["high"] == pytest.approx(max(prop, per))
    assert out["bins"]["1"] == {"map5": pytest.approx(0.2), "n": 20}
    assert out["bins"]["new"]["n"] == 10


def test_implied_mix_sets_the_new_share():
    sizes = np.r_[np.ones(20), np.zeros(20)].astype(int)
    ap = np.r_[np.full(20, 0.8), np.full(20, 0.4)]
    folds = np.tile([0, 1], 20)
    out = estimate_range(ap, folds, sizes, np.ones(20), predicted_sizes=np.ones(30), implied_new_share=0.25,
                         min_queries=5)
    m = out["mixes"]["implied"]
    assert m["new_share"] == pytest.approx(0.25)
    assert m["map5"] == pytest.approx(0.75 * 0.8 + 0.25 * 0.4)


def test_fold_spread_widens_the_range():
    sizes = np.ones(40, dtype=int)
    ap = np.r_[np.ones(20), np.zeros(20)]
    folds = np.r_[np.zeros(20), np.ones(20)].astype(int)  # fold 0 all hits, fold 1 all misses
    out = estimate_range(ap, folds, sizes, np.ones(40), min_queries=5)
    m = out["mixes"]["proportional"]
    assert m["map5"] == pytest.approx(0.5)
    assert m["se"] == pytest.approx(np.std([1.0, 0.0], ddof=1) / np.sqrt(2))
    assert out["low"] == pytest.approx(0.5 - m["se"]) and out["high"] == pytest.approx(0.5 + m["se"])


def test_ap_at_is_the_per_row_term_of_map_at():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(30, 12)).astype(np.float32)
    truth = rng.integers(-1, 12, 30)
    ranked = RankedTopK.from_scores(scores, truth)
    for t in (-1.0, 0.0, 0.8):
        assert ranked.ap_at(t).mean() == pytest.approx(ranked.map_at(t))


def test_galleries_larger_than_any_validation_query_widen_only_the_high_end():
    # every individual has three photos: validation queries search two, test queries three
    sizes = np.r_[np.full(30, 2), np.zeros(10)].astype(int)
    ap = np.r_[np.full(30, 0.8), np.full(10, 0.5)]
    folds = np.tile([0, 1], 20)
    out = estimate_range(ap, folds, sizes, np.full(30, 3), min_queries=5)
    m = out["mixes"]["proportional"]
    assert m["map5"] == pytest.approx((30 * 0.8 + 10 * 0.5) / 40)   # the point estimate credits nothing
    # one doubling (bin "2" → "3-4") halves the 0.2 miss rate of the known 75 % of the weight
    assert m["beyond"] == pytest.approx(0.75 * 0.2 * 0.5)
    assert out["low"] == pytest.approx(m["map5"]) and out["high"] == pytest.approx(m["map5"] + m["beyond"])
