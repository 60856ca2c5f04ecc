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
    assert mix_shares("proportional", np.zeros(3)) is None
    with pytest.raises(ValueError, match="unknown test mix"):
        mix_shares("implied", counts)


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


def _two_bins():
    """20 one-photo queries (AP 0.2, "new" put first), 20 eight-photo ones (AP 1.0, not), 10 new
    ones (AP 0.5, "new" first); 30 individuals with one photo, 10 with eight; two identical folds."""
    sizes = np.r_[np.ones(20), np.full(20, 8), np.zeros(10)].astype(int)
    ap = np.r_[np.full(20, 0.2), np.ones(20), np.full(10, 0.5)]
    new_first = np.r_[np.ones(20), np.zeros(20), np.ones(10)].astype(bool)
    return ap, np.tile([0, 1], 25), sizes, np.r_[np.ones(30), np.full(10, 8)], new_first


def test_implied_mix_matches_the_tests_new_first_share_by_hand():
    ap, folds, sizes, counts, nf = _two_bins()
    # a mix with one-photo share q0 weighs those queries 2·q0, the eight-photo ones 2·(1 − q0):
    # new first for (40·q0 + 10) / 50 of the weight. The test's 60 % means q0 = 0.5, i.e.
    # λ·30/110 + (1 − λ)·30/40 = 0.5, and MAP@5 (40·(0.5·0.2 + 0.5·1.0) + 10·0.5) / 50 = 0.58
    lam = (0.75 - 0.5) / (0.75 - 30 / 110)
    out = estimate_range(ap, folds, sizes, counts, val_new_first=nf, test_new_first=0.6, test_n=10 ** 7,
                         min_queries=5)
    m = out["mixes"]["implied"]
    assert m["lambda"] == pytest.approx(lam, abs=0.006)
    assert m["new_first"] == pytest.approx(0.6, abs=0.003)
    assert m["map5"] == pytest.approx(0.58, abs=0.003)
    # ten million test queries pin the mix: the range is that one estimate
    assert out["low"] == pytest.approx(0.58, abs=0.004) and out["high"] == pytest.approx(0.58, abs=0.004)
    # fifty leave a band of mixes around it, each with the test sample's own error
    few = estimate_range(ap, folds, sizes, counts, val_new_first=nf, test_new_first=0.6, test_n=50, min_queries=5)
    assert few["lambda_low"] < lam < few["lambda_high"]
    assert few["low"] < 0.58 - 0.03 and few["high"] > 0.58 + 0.03


def test_a_hard_test_excludes_the_proportional_mix():
    # every query of the test answered "new" first where proportional validation expects 52 %:
    # only one query per individual (λ = 0) explains it, so the optimistic end is left out
    ap, folds, sizes, counts, nf = _two_bins()
    out = estimate_range(ap, folds, sizes, counts, val_new_first=nf, test_new_first=0.8, test_n=200,
                         min_queries=5)
    prop, per = out["mixes"]["proportional"], out["mixes"]["per_individual"]
    assert per["new_first"] == pytest.approx((40 * 0.75 + 10) / 50)
    assert out["mixes"]["implied"]["lambda"] == 0.0 and out["lambda_high"] < 0.3
    assert out["high"] < prop["map5"] < prop["map5"] + prop["se"]
    assert out["low"] == pytest.approx(per["map5"] - per["se"])


def test_the_test_samples_own_error_is_added():
    ap, folds, sizes, counts, nf = _two_bins()
    out = estimate_range(ap, folds, sizes, counts, test_n=40, min_queries=5)
    m = out["mixes"]["proportional"]
    w = np.r_[np.full(20, 2 * 30 / 110), np.full(20, 2 * 80 / 110), np.ones(10)]
    var = (w * (ap - m["map5"]) ** 2).sum() / w.sum()
    assert m["se"] == pytest.approx(np.sqrt(var / 40))  # identical folds: no spread of their own


def test_one_gallery_bin_leaves_the_mix_open():
    # faces: every individual has three photos, so no mix moves the new-first share
    sizes = np.r_[np.full(30, 2), np.zeros(10)].astype(int)
    nf = np.r_[np.zeros(30), np.ones(10)].astype(bool)
    out = estimate_range(np.r_[np.full(30, 0.8), np.full(10, 0.5)], np.tile([0, 1], 20), sizes, np.full(30, 3),
                         val_new_first=nf, test_new_first=0.1, test_n=100, min_queries=5)
    assert "implied" not in out["mixes"] and (out["lambda_low"], out["lambda_high"]) == (0.0, 1.0)


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


def test_the_range_never_leaves_zero_to_one():
    # a near-perfect validation with a large spread: mean ± se would pass 1.0 (faces_unseen stated 1.002)
    sizes = np.full(40, 2)
    ap = np.r_[np.ones(36), np.zeros(4)]
    folds = np.r_[np.zeros(36), np.ones(4)].astype(int)
    out = estimate_range(ap, folds, sizes, np.full(40, 3), min_queries=5)
    m = out["mixes"]["proportional"]
    assert m["map5"] + m["se"] > 1.0  # the unclipped end would overstate
    assert out["high"] == 1.0 and 0.0 <= out["low"] < out["high"]
    worst = estimate_range(1 - ap, folds, sizes, np.full(40, 3), min_queries=5)
    assert worst["low"] == 0.0


def test_range_from_file_reads_back_what_the_run_saved(tmp_path):
    # the file run_estimate writes, read back: the same range as from the arrays in memory
    from types import SimpleNamespace

    from whaleflow.ensemble.estimate_range import EstimateEvidence, _save_evidence, range_from_file

    ap, folds, sizes, counts, nf = _two_bins()
    val_score = np.where(nf, 0.1, 0.9)                  # below the threshold 0.5: "new" first
    test_score = np.r_[np.full(30, 0.2), np.full(20, 0.8)]  # 60 % of 50 test queries "new" first
    path = tmp_path / "estimate_inputs.npz"
    ev = EstimateEvidence(val_top=["a"] * len(ap), val_score=val_score, val_ap=ap, threshold=0.5,
                          test_score=test_score, test_threshold=0.5, path=path)
    outer = SimpleNamespace(query_ap=ap, fold_ids=folds)
    mix = SimpleNamespace(val_sizes=sizes, labelled_counts={f"id{i}": int(c) for i, c in enumerate(counts)})
    _save_evidence(ev, outer, mix, np.array([f"v{i}" for i in range(len(ap))]), np.zeros(len(ap), int), ["a"] * 50)
    expected = estimate_range(ap, folds, sizes, counts, val_new_first=nf, test_new_first=0.6, test_n=50,
                              min_queries=5)
    got = range_from_file(path, min_queries=5)
    assert got["low"] == pytest.approx(expected["low"]) and got["high"] == pytest.approx(expected["high"])
    assert got["test_new_first"] == pytest.approx(0.6)
    assert got["lambda_low"] == expected["lambda_low"] and got["lambda_high"] == expected["lambda_high"]
