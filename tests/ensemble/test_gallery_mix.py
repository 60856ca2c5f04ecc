"""Validation queries weighted to the test queries' mix of gallery sizes, against brute force."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from whaleflow.data.split import val_chunks
from whaleflow.ensemble import RankedTopK, best_threshold, cv_map5, make_folds
from whaleflow.ensemble.gallery_mix import gallery_bin, mix_weights, mix_from_split
from whaleflow.inference.topk import insert_new_whale


def _problem(seed, n=60, c=9):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n, c)).astype(np.float32)
    truth = rng.integers(-1, c, n)
    s[np.arange(n)[truth >= 0], truth[truth >= 0]] += 1.2
    return s, truth, rng.integers(1, 4, n).astype(float)


def _repeat_rows(s, truth, w):
    """Integer weights are the same as repeating a row that many times."""
    reps = w.astype(int)
    return np.repeat(s, reps, axis=0), np.repeat(truth, reps)


def _ap(s, truth, t):
    pred = insert_new_whale(s, t)
    return np.array([1.0 / (list(p).index(tr) + 1) if tr in list(p) else 0.0 for p, tr in zip(pred, truth)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_threshold_equals_the_repeated_rows(seed):
    s, truth, w = _problem(seed)
    t, value = best_threshold(RankedTopK.from_scores(s, truth, weights=w))
    rs, rt = _repeat_rows(s, truth, w)
    t_rep, v_rep = best_threshold(RankedTopK.from_scores(rs, rt))
    assert value == pytest.approx(v_rep)
    assert value == pytest.approx((_ap(s, truth, t) * w).sum() / w.sum())  # what it claims is what it gets
    top = np.sort(s, axis=1)[:, -5:]
    brute = max((_ap(s, truth, c) * w).sum() / w.sum() for c in np.r_[np.unique(top), top.max() + 1])
    assert value == pytest.approx(brute)


def test_unit_weights_change_nothing():
    s, truth, _ = _problem(3)
    plain, ones = RankedTopK.from_scores(s, truth), RankedTopK.from_scores(s, truth, weights=np.ones(len(truth)))
    assert best_threshold(plain) == best_threshold(ones)
    folds = make_folds(truth, 3, 0)
    assert cv_map5(plain, folds) == pytest.approx(cv_map5(ones, folds))
    for t in (-0.5, 0.3, 1.0):
        assert plain.map_at(t) == pytest.approx(ones.map_at(t))


def test_gallery_bins_are_powers_of_two():
    assert gallery_bin(np.array([1, 2, 3, 4, 5, 8, 9, 16, 17])).tolist() == [0, 1, 2, 2, 3, 3, 4, 4, 5]


def test_mix_weights_give_the_test_shares_and_leave_new_queries_at_one():
    # validation: 1 query with 1 gallery photo, 3 with 2, 4 with 5-8; 2 new queries
    val_gallery = np.array([1, 2, 2, 2, 6, 7, 5, 8, 0, 0])
    known = np.array([True] * 8 + [False] * 2)
    # test gallery: individuals with 1, 1, 1, 2, 6 and 30 photos (photos: 3 + 2 + 6 + 30 = 41)
    counts = np.array([1, 1, 1, 2, 6, 30])
    mix = mix_weights(val_gallery, known, counts, min_queries=1)
    w = mix.weights
    assert w[~known].tolist() == [1.0, 1.0]
    assert w[known].sum() == pytest.approx(known.sum())  # the known share stays validation's
    bins = gallery_bin(val_gallery[known])
    share = {b: w[known][bins == b].sum() / known.sum() for b in np.unique(bins)}
    # 30 photos (bin 5, no validation query) join the last group
    assert share[0] == pytest.approx(3 / 41) and share[1] == pytest.approx(2 / 41)
    assert share[3] == pytest.approx(36 / 41)
    assert mix.test_share == {"1": pytest.approx(3 / 41), "2": pytest.approx(2 / 41),
                              "3+": pytest.approx(36 / 41)}  # the empty 3-4 bin joins 5-8
    assert 0 < mix.effective_queries < len(w)


def test_bins_join_until_each_holds_enough_queries():
    # 3 queries with 1 photo, 1 with 2, 12 with 3-4, 2 with 9-16: with 4 per group at least,
    # {1, 2} and {3-4} stay apart and the short last group (9-16) joins 3-4's
    val_gallery = np.array([1] * 3 + [2] + [3] * 12 + [12] * 2)
    counts = np.array([1] * 10 + [2] * 5 + [4] * 5 + [12] * 5)  # 10 + 10 + 20 + 60 photos
    mix = mix_weights(val_gallery, np.ones(len(val_gallery), bool), counts, min_queries=4)
    assert mix.val_share == {"1-2": pytest.approx(4 / 18), "3+": pytest.approx(14 / 18)}
    assert mix.test_share == {"1-2": pytest.approx(20 / 100), "3+": pytest.approx(80 / 100)}
    w = mix.weights
    assert w[:4] == pytest.approx([(20 / 100) / (4 / 18)] * 4)
    assert w[4:] == pytest.approx([(80 / 100) / (14 / 18)] * 14)
    # too few queries for two groups: one group, every weight 1
    few = mix_weights(val_gallery, np.ones(len(val_gallery), bool), counts, min_queries=100)
    assert few.weights == pytest.approx(np.ones(len(val_gallery)))


def test_gallery_sizes_from_the_split_match_the_test_like_gallery(tmp_path):
    rows = []
    for ind, n in enumerate([1, 2, 3, 5, 8]):
        for j in range(n):
            rows.append({"image": f"i{ind}_{j}.jpg", "id": f"w{ind}", "group": f"g{ind}_{j}"})
    rows += [{"image": f"n{j}.jpg", "id": "new_whale", "group": f"n{j}"} for j in range(3)]
    split = pd.DataFrame(rows)
    split["role"] = "train"
    for ind, n in enumerate([1, 2, 3, 5, 8]):  # every individual with 2+ photos validates some
        if n > 1:
            split.loc[split.index[split["image"].isin([f"i{ind}_{j}.jpg" for j in range(1, max(2, n // 2 + 1))])],
                      "role"] = "val"
    split.loc[split["id"] == "new_whale", "role"] = "val"
    split["held_out"] = False
    split["fold"] = 0
    split.to_csv(tmp_path / "split.csv", index=False)
    val = split[split["role"] == "val"].sample(frac=1.0, random_state=1)  # any order
    truth_known = (val["id"] != "new_whale").to_numpy()
    chunk = dict(zip(split[split["role"] == "val"]["image"],
                     val_chunks(split[split["role"] == "val"]["group"].to_numpy(), 2, 5)))
    for mode in ("test_like", "train"):
        mix = mix_from_split(tmp_path / "split.csv", val["image"].to_numpy(), truth_known,
                             val_gallery=mode, chunks=2, seed=5, min_queries=1)
        # brute force: the gallery each known query was scored against, photo by photo
        expect = []
        for im, ident in zip(val["image"], val["id"]):
            if ident == "new_whale":
                continue
            mine = split[(split["id"] == ident)]
            g = (mine["role"] == "train").sum()
            if mode == "test_like":
                g += sum(chunk[o] != chunk[im] for o in mine[mine["role"] == "val"]["image"])
            expect.append(g)
        direct = mix_weights(np.array(expect), np.ones(len(expect), bool), np.array([1, 2, 3, 5, 8]), min_queries=1)
        assert mix.weights[truth_known] == pytest.approx(direct.weights)
        assert mix.weights[~truth_known].tolist() == [1.0] * 3
    assert mix_from_split(tmp_path / "missing.csv", val["image"].to_numpy(), truth_known,
                               val_gallery="train", chunks=2, seed=5) is None
