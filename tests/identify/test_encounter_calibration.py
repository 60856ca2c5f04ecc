"""Encounter-level calibration against a direct computation on hand-made scores; format 1 still loads."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from test_calibration import _brute_force_steps  # the brute-force isotonic fit of the photo tests
from whaleflow.errors import DataError
from whaleflow.identify.calibration import Calibration, top_right
from whaleflow.identify.encounter_calibration import (MAX_PHOTOS, cut, fit_encounter_calibration,
                                                      validation_encounters)
from whaleflow.identify.encounters import FUSIONS
from whaleflow.identify.run_calibration import CALIBRATION, RunCalibration, load_calibration


def _hand_made(seed=0, classes=4, per=(5, 4, 3, 1), new=6):
    """Validation scores: each known individual's photos favour it (noisily), the new ones favour no one."""
    rng = np.random.default_rng(seed)
    truth = np.r_[np.repeat(np.arange(classes), per), np.full(new, -1)]
    scores = rng.normal(0.0, 0.6, (len(truth), classes))
    scores[np.arange(len(truth))[truth >= 0], truth[truth >= 0]] += 1.0
    return scores, truth, 0.6


def test_cut_makes_encounters_of_two_to_max_photos_and_leaves_none_alone():
    rng = np.random.default_rng(1)
    for n in range(0, 25):
        for _ in range(5):
            chunks = cut(np.arange(n), rng)
            sizes = [len(c) for c in chunks]
            assert all(2 <= s <= MAX_PHOTOS for s in sizes)
            assert sum(sizes) == (n if n >= 2 else 0)
            if chunks:
                assert np.array_equal(np.concatenate(chunks), np.arange(n))


def test_validation_encounters_keep_one_truth_each_and_skip_lone_photos():
    _, truth, _ = _hand_made()
    groups = validation_encounters(truth, seed=3)
    assert all(len(set(truth[g])) == 1 for g in groups)
    covered = np.concatenate(groups)
    assert len(covered) == len(set(covered))
    # individual 3 has one validation photo: no encounter; every other photo is in one
    assert set(covered) == set(np.flatnonzero(truth != 3))


def _direct(scores, truth, threshold, temperature, groups, log_prior):
    """Each encounter's fused top probability, whether it is new, and whether it is right,
    by explicit loops over photos and outcomes (products of softmax probabilities)."""
    tops, news, rights = [], [], []
    for g in groups:
        n_out = scores.shape[1] + 1
        fused = [1.0] * n_out
        for i in g:
            z = [s / temperature for s in scores[i]] + [threshold / temperature]
            norm = sum(math.exp(v) for v in z)
            fused = [f * math.exp(v) / norm for f, v in zip(fused, z)]
        if log_prior is not None:  # naive Bayes: n - 1 priors taken back out
            fused = [f / math.exp(lp) ** (len(g) - 1) for f, lp in zip(fused, log_prior)]
        total = sum(fused)
        fused = [f / total for f in fused]
        best = max(range(n_out), key=lambda j: fused[j])
        target = n_out - 1 if truth[g[0]] == -1 else truth[g[0]]
        tops.append(fused[best])
        news.append(best == n_out - 1)
        rights.append(best == target)
    return np.array(tops), np.array(news), np.array(rights, float)


@pytest.mark.parametrize("fusion", list(FUSIONS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_encounter_p_correct_equals_a_direct_computation(fusion, seed):
    scores, truth, threshold = _hand_made(seed, per=(7, 6, 5, 1), new=9)
    cal = Calibration.fit(scores, truth, threshold)
    ec = fit_encounter_calibration(scores, truth, threshold, cal, fusion, folds=3, seed=seed)
    groups = validation_encounters(truth, seed)
    tops, news, rights = _direct(scores, truth, threshold, cal.temperature, groups,
                                 FUSIONS[fusion](cal, scores.shape[1]))
    if fusion == "flat":  # the flat decision does not move with the temperature, so the folds' is the same
        np.testing.assert_array_equal(ec.oof_right, rights.astype(bool))
    assert ec.n_photos.tolist() == [len(g) for g in groups]
    # the steps of each kind of decision are the brute-force isotonic fit of that kind's encounters
    for kind, steps in ((~news, ec.steps), (news, ec.steps_new)):
        if not kind.any():
            continue
        ux, expect = _brute_force_steps(tops[kind], rights[kind])
        np.testing.assert_allclose(steps(ux), expect, atol=1e-9)
    # and an encounter's p_correct is its kind's step at its fused top probability
    logp = cal.logprobs(scores, threshold)
    for g, top, new in zip(groups, tops, news):
        from whaleflow.identify.encounters import fuse

        p = ec.p_correct_from_logprobs(fuse(logp[g], FUSIONS[fusion](cal, scores.shape[1]))[None])[0]
        assert p == pytest.approx(float((ec.steps_new if new else ec.steps)(top)), abs=1e-9)


def test_outer_fold_p_correct_does_not_see_its_own_encounters_truth():
    """Each held-out encounter's p_correct comes from the other folds: changing whether the
    encounters of one fold are right (moving their truth) leaves their own p_correct unchanged."""
    scores, truth, threshold = _hand_made(4, per=(8, 8, 6, 1), new=10)
    cal = Calibration.fit(scores, truth, threshold)
    groups = validation_encounters(truth, 0)
    base = fit_encounter_calibration(scores, truth, threshold, cal, "flat", folds=2, seed=0, groups=groups)
    np.testing.assert_allclose(base.oof_p, fit_encounter_calibration(scores, truth, threshold, cal, "flat",
                                                                     folds=2, seed=0).oof_p)
    part = np.random.default_rng([0, 29]).permutation(len(groups)) % 2
    moved = truth.copy()
    for g, f in zip(groups, part):
        if f == 0 and truth[g[0]] >= 0:
            moved[g] = (truth[g[0]] + 1) % 3  # another individual, the same encounters
    again = fit_encounter_calibration(scores, moved, threshold, cal, "flat", folds=2, seed=0, groups=groups)
    np.testing.assert_allclose(again.oof_p[part == 0], base.oof_p[part == 0])
    assert not np.allclose(again.oof_p[part == 1], base.oof_p[part == 1])


def test_no_validation_encounter_gives_none():
    scores = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert fit_encounter_calibration(scores, np.array([0, 1]), 0.5, Calibration.fit(scores, np.array([0, 1]), 0.5),
                                     "flat") is None


def _run_calibration(scores, truth, threshold):
    from whaleflow.identify.encounter_calibration import fit_encounter_calibrations

    cal = Calibration.fit(scores, truth, threshold)
    return RunCalibration(cal, threshold, np.full(len(truth), 0.5), top_right(scores, truth, threshold), 5,
                          fit_encounter_calibrations(scores, truth, threshold, cal))


def test_format_2_round_trips_and_format_1_still_loads_with_a_clear_note(tmp_path):
    rc = _run_calibration(*_hand_made(0))
    d = json.loads(json.dumps(rc.to_dict()))
    assert d["format"] == "whaleflow.calibration/2" and set(d["encounters"]) == set(FUSIONS)
    back = RunCalibration.from_dict(d)
    for fusion in FUSIONS:
        a, b = rc.encounters[fusion], back.encounters[fusion]
        np.testing.assert_allclose(a.steps.values, b.steps.values)
        np.testing.assert_allclose(a.oof_p, b.oof_p, atol=1e-6)
        assert back.for_encounters(fusion) == (b, None)
    # a file written before encounter calibration: format 1, no "encounters"
    old = {k: v for k, v in d.items() if k != "encounters"} | {"format": "whaleflow.calibration/1"}
    (tmp_path / CALIBRATION).parent.mkdir(parents=True)
    (tmp_path / CALIBRATION).write_text(json.dumps(old))
    loaded = load_calibration(tmp_path)
    assert loaded.encounters is None
    np.testing.assert_allclose(loaded.calibration.steps.values, rc.calibration.steps.values)
    enc, why = loaded.for_encounters("flat")
    assert enc is None and "format 1" in why and "delete" in why and "\n" not in why
    (tmp_path / CALIBRATION).write_text(json.dumps(old | {"format": "whaleflow.calibration/9"}))
    with pytest.raises(DataError, match="unknown format"):
        load_calibration(tmp_path)
