"""Sampler invariants: P×K shape and coverage, balanced pairs, flip = new individual, singletons."""
from collections import Counter

import numpy as np
import pytest

from whaleflow.data.samplers import PairSampler, PKSampler
from whaleflow.errors import DataError
from whaleflow.registry import SAMPLERS

# 6 individuals: 1, 1, 2, 3, 5, 8 images (two singletons)
LABELS = np.array(sum(([f"w_{c}"] * n for c, n in enumerate([1, 1, 2, 3, 5, 8])), []))


def vlabel(s, pos_rows, flips):
    return s.codes[pos_rows] + np.where(flips, s.n_classes, 0)


def test_pk_batches():
    s = PKSampler(LABELS, p=4, k=3, seed=0)
    assert s.num_classes == 12 and len(s) == -(-2 * len(LABELS) // 12)
    seen = Counter()
    for rows, flips, vl in s:
        assert len(rows) == 12 and rows.dtype == np.int64 and flips.dtype == bool
        assert (vl == vlabel(s, rows, flips)).all()  # labels are virtual labels
        assert len(set(vl.tolist())) == 4 and all(c == 3 for c in Counter(vl.tolist()).values())
        seen.update(vl.tolist())
    assert set(seen) == set(range(12))  # every virtual class (singletons and flips too) per epoch


def test_pk_classes_distinct_across_refills():
    s = PKSampler(LABELS, p=5, k=2, seed=3)  # 12 virtual classes: refills fall inside batches
    for epoch in range(10):
        s.set_epoch(epoch)
        for _, _, vl in s:
            assert len(set(vl.tolist())) == 5


def test_pk_singletons_sampled_with_replacement_and_rows_mapped():
    rows = np.arange(len(LABELS)) * 10 + 7
    s = PKSampler(LABELS, p=12, k=4, seed=1, rows=rows)
    rws, flips, vl = next(iter(s))
    for v in range(12):
        picked = rws[vl == v]
        c = v % 6
        assert set(((picked - 7) // 10).tolist()) <= set(np.flatnonzero(LABELS == f"w_{c}").tolist())
        if c >= 2:  # ≥2 images with k=4: every image at least once before repeats
            assert len(set(picked.tolist())) == min(4, (LABELS == f"w_{c}").sum())


def test_pk_without_flip_classes_and_determinism():
    s = PKSampler(LABELS, p=3, k=2, flip_new_class=False, seed=5)
    batches = list(s)
    assert all(not f.any() for _, f, _ in batches) and s.num_classes == 6
    s.set_epoch(0)
    again = list(s)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(batches, again))
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(again, list(s)))  # next epoch differs


def test_pairs_random_balanced_and_flip_pairs_are_different():
    s = PairSampler(LABELS, batch_size=16, seed=0)
    flipped_same_id_negatives = 0
    for _ in range(20):
        for b in s:
            assert len(b.a) == 16 and b.target.sum() == 8
            va, vb = vlabel(s, b.a, b.flip_a), vlabel(s, b.b, b.flip_b)
            assert ((va == vb) == (b.target == 1)).all()
            same_id = s.codes[b.a] == s.codes[b.b]
            flipped_same_id_negatives += int((same_id & (b.flip_a != b.flip_b)).sum())
            assert not (same_id & (b.flip_a != b.flip_b) & (b.target == 1)).any()
            # a singleton's same pair is the image with itself
            single = (b.target == 1) & np.isin(b.a, [0, 1])
            assert (b.a[single] == b.b[single]).all()
            multi = (b.target == 1) & ~np.isin(b.a, [0, 1])
            assert (b.a[multi] != b.b[multi]).all()
    assert flipped_same_id_negatives > 0


def test_pairs_from_mined():
    s = PairSampler(LABELS, batch_size=8, seed=0)
    n = len(LABELS)
    neg_a, neg_b = np.array([2, 5, 10 + n]), np.array([2 + n, 9, 11])  # (2, 2 flipped) is a negative
    pos_a, pos_b = np.array([5, 9 + n]), np.array([6, 10 + n])
    s.set_mined(neg_a, neg_b, pos_a, pos_b)
    assert len(s) == 1
    pairs = set()
    for _ in range(5):
        for b in s:
            assert b.target.sum() == 4
            for x in zip(b.a, b.b, b.flip_a, b.flip_b, b.target):
                pairs.add((int(x[0]), int(x[1]), bool(x[2]), bool(x[3]), float(x[4])))
    assert (2, 2, False, True, 0.0) in pairs and (9, 10, True, True, 1.0) in pairs
    assert {(p[0], p[1]) for p in pairs if p[4] == 0} == {(2, 2), (5, 9), (10, 11)}
    with pytest.raises(ValueError, match="negative"):
        s.set_mined([4], [5], pos_a, pos_b)  # images 4 and 5 are both w_3
    with pytest.raises(ValueError, match="positive"):
        s.set_mined(neg_a, neg_b, [3], [3 + n])
    with pytest.raises(ValueError, match="virtual"):
        s.set_mined([0], [2 * n], pos_a, pos_b)
    s.clear_mined()
    assert len(s) == -(-4 * n // 8)


def test_bad_inputs_and_registry():
    assert SAMPLERS.get("pk") is PKSampler and SAMPLERS.get("pairs") is PairSampler
    with pytest.raises(DataError, match="new_whale"):
        PKSampler(["a", "new_whale"], p=2, k=2)
    with pytest.raises(DataError, match="even"):
        PairSampler(LABELS, batch_size=7)
    with pytest.raises(DataError):
        PKSampler([], p=2, k=2)
    with pytest.raises(DataError, match="two virtual"):
        next(iter(PairSampler(["a", "a"], batch_size=2, flip_new_class=False)))
    only = PairSampler(["a"], batch_size=4)  # one image, flip makes a second individual
    b = next(iter(only))
    assert (b.flip_a[b.target == 0] != b.flip_b[b.target == 0]).all()


def test_epoch_state_dict_and_unpacking_order():
    s = PairSampler(LABELS, batch_size=8, seed=4)
    n = len(LABELS)
    s.set_mined([5, 10 + n], [9, 11], [5, 9 + n], [6, 10 + n])
    first = [tuple(map(np.copy, b)) for b in s.epoch(3)]
    state = s.state_dict()
    t = PairSampler(LABELS, batch_size=8, seed=0)
    t.load_state_dict(state)
    t.set_epoch(3)
    again = list(t)
    assert all(all(np.array_equal(x, y) for x, y in zip(p, q)) for p, q in zip(first, again))
    a, fa, b, fb, target = again[0]  # the order the siamese family unpacks
    assert fa.dtype == bool and fb.dtype == bool and target.dtype == np.float32
    pk = PKSampler(LABELS, p=3, k=2, seed=2)
    one = [r.copy() for r, _, _ in pk.epoch(5)]
    pk2 = PKSampler(LABELS, p=3, k=2, seed=9)
    pk2.load_state_dict({"seed": 2, "epoch": 5})
    assert all(np.array_equal(x, y) for x, (y, _, _) in zip(one, pk2))


def test_empty_mined_kind_falls_back_to_random():
    s = PairSampler(LABELS, batch_size=8, seed=0)
    s.set_mined([], [], [5], [6])
    for b in s:
        assert b.target.sum() == 4
        va, vb = vlabel(s, b.a, b.flip_a), vlabel(s, b.b, b.flip_b)
        assert ((va == vb) == (b.target == 1)).all()
        assert set(b.a[b.target == 1].tolist()) == {5}


def _mined(s):
    """One mined negative and one mined positive per virtual image (a derangement / self)."""
    nv = 2 * s.n
    labels = np.concatenate([s.codes, s.codes + s.n_classes])
    order = np.argsort(labels, kind="stable")
    neg_b = np.roll(order, len(order) // 2)  # pairs far apart in label order: always different
    neg_a = order
    keep = labels[neg_a] != labels[neg_b]
    return neg_a[keep], neg_b[keep], np.arange(nv), np.arange(nv)


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5])
def test_random_share_of_mined_batches(share):
    s = PairSampler(LABELS, batch_size=16, seed=0, random_share=share)
    na, nb, pa, pb = _mined(s)
    s.set_mined(na, nb, pa, pb)
    mined_neg = set(zip(na.tolist(), nb.tolist()))
    r = int(round(8 * share))
    for batch in s.epoch(0):
        va = batch.a + np.where(batch.flip_a, s.n, 0)
        vb = batch.b + np.where(batch.flip_b, s.n, 0)
        diff = batch.target == 0
        from_mined = sum((int(x), int(y)) in mined_neg for x, y in zip(va[diff], vb[diff]))
        assert from_mined >= 8 - r  # random pairs may hit a mined one by chance, never fewer
        same_self = int((va[~diff] == vb[~diff]).sum())  # mined positives are self pairs here
        assert same_self >= 8 - r
    with pytest.raises(DataError):
        PairSampler(LABELS, batch_size=16, random_share=1.0)


def test_random_negatives_respect_negative_codes():
    # w_4 and w_5 share a near-duplicate group: merged for negatives
    codes = np.where(LABELS == "w_5", "w_4", LABELS)
    s = PairSampler(LABELS, batch_size=32, seed=2, neg_codes=codes)
    c45 = {int(np.flatnonzero(s.classes_ == "w_4")[0]), int(np.flatnonzero(s.classes_ == "w_5")[0])}
    for epoch in range(5):
        for batch in s.epoch(epoch):
            d = batch.target == 0
            ca, cb = s.codes[batch.a[d]], s.codes[batch.b[d]]
            same_flip = batch.flip_a[d] == batch.flip_b[d]
            assert not any(x in c45 and y in c45 and f for x, y, f in zip(ca, cb, same_flip))
    i4, i5 = np.flatnonzero(LABELS == "w_4")[0], np.flatnonzero(LABELS == "w_5")[0]
    with pytest.raises(ValueError, match="near-duplicates"):
        s.set_mined([i4], [i5], [0], [0])
