"""Mining noise, duplicates and per-round numbers: harder pairs as σ shrinks, never
deterministic at the floor, no duplicate ever a negative, statistics against brute force."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from whaleflow.mining import MiningConfig
from whaleflow.mining import LapMiner, NoiseSchedule, build_miner, hard_negatives, negative_codes


def logit_problem(seed=0, n_ids=30, per=3):
    """Pair-head-like logits: same individual high, a few look-alike individuals, the rest low."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_ids), per)
    emb = rng.standard_normal((n_ids, 6))[labels] + 0.5 * rng.standard_normal((len(labels), 6))
    s = emb @ emb.T
    s = 4.0 * (s - s.mean()) / s.std()
    return ((s + s.T) / 2).astype(np.float32), labels


def test_mined_negatives_get_harder_as_sigma_shrinks():
    scores, labels = logit_problem()
    sigmas = [8.0, 4.0, 2.0, 1.0, 0.5]
    hardness = []
    for sigma in sigmas:
        m = LapMiner("dense", noise=sigma, logits=True)
        hardness.append(np.mean([m.mine(scores, labels, 0, rng=r).hardness for r in range(6)]))
    assert all(a < b for a, b in zip(hardness, hardness[1:])), hardness
    best = LapMiner("dense", noise=0.0).mine(scores, labels, 0, rng=0).hardness  # the argmax optimum
    assert hardness[-1] <= best + 1e-9


def test_positives_get_harder_as_sigma_shrinks():
    scores, labels = logit_problem(1, n_ids=12, per=6)
    mean_pos = []
    for sigma in [8.0, 2.0, 0.5]:
        m = LapMiner("dense", noise=sigma, logits=True)
        mean_pos.append(np.mean([m.mine(scores, labels, 0, rng=r).pos_score for r in range(6)]))
    assert mean_pos[0] > mean_pos[1] > mean_pos[2], mean_pos  # least similar partners at small σ


def test_never_deterministic_at_the_floor():
    scores, labels = logit_problem(2)
    cfg = MiningConfig(solver="dense", start=0, noise_start=0.5, noise_end=0.5, noise_floor=0.5, noise_epochs=1)
    miner = build_miner(cfg)
    assert miner.noise(1000) == pytest.approx(0.5)
    runs = [miner.mine(scores, labels, 1000, rng=r) for r in range(5)]
    for a, b in itertools.combinations(runs, 2):
        assert not np.array_equal(a.neg_b, b.neg_b)
    # and across rounds, many rows see more than one partner
    partners = np.stack([r.neg_b for r in runs])
    assert np.mean([len(set(col)) > 1 for col in partners.T]) > 0.2


def brute_force_negatives(scores, codes):
    """The max-total-score permutation avoiding equal codes, by exhaustive search."""
    n = len(codes)
    best, arg = -np.inf, None
    for perm in itertools.permutations(range(n)):
        if any(codes[i] == codes[j] for i, j in enumerate(perm)):
            continue
        total = sum(scores[i, j] for i, j in enumerate(perm))
        if total > best:
            best, arg = total, perm
    return best, np.array(arg)


@pytest.mark.parametrize("seed", range(4))
def test_negatives_with_duplicate_groups_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    labels = np.array([0, 0, 1, 1, 2, 3, 4, 4])
    groups = np.array([0, 1, 2, 3, 2, 4, 5, 6])  # image 2 (id 1) and image 4 (id 2) are duplicates
    codes = negative_codes(labels, groups)
    scores = rng.standard_normal((8, 8))
    scores[2, 4] = scores[4, 2] = 10.0  # the duplicate looks like the hardest negative
    partner = hard_negatives(scores, codes)
    best, _ = brute_force_negatives(scores, codes)
    assert scores[np.arange(8), partner].sum() == pytest.approx(best)
    assert (codes[partner] != codes).all()


def test_a_duplicate_is_never_mined_as_a_negative():
    scores, labels = logit_problem(3, n_ids=20, per=3)
    groups = np.arange(len(labels))
    dup_pairs = [(0, 5), (10, 31), (40, 44)]  # conflicting labels: near-duplicate photos under two ids
    for i, j in dup_pairs:
        groups[j] = groups[i]
        scores[i, j] = scores[j, i] = scores.max() + 5.0
    codes = negative_codes(labels, groups)
    for solver in ("dense", "sparse"):
        miner = LapMiner(solver, k=10, noise=NoiseSchedule(3.0, 0.5, 4, floor=0.5), logits=True)
        for epoch in range(6):
            p = miner.mine(scores, labels, epoch, rng=epoch, neg_labels=codes)
            mined = set(zip(p.neg_a.tolist(), p.neg_b.tolist()))
            assert not any((i, j) in mined or (j, i) in mined for i, j in dup_pairs)
            assert (codes[p.neg_a] != codes[p.neg_b]).all()
            assert (labels[p.pos_a] == labels[p.pos_b]).all()  # positives still by label
    # without the codes the duplicates are the very first choice
    p = LapMiner("dense", noise=0.0).mine(scores, labels, 0, rng=0)
    assert all(p.neg_b[i] == j for i, j in dup_pairs)


def test_round_statistics_against_brute_force():
    scores, labels = logit_problem(4, n_ids=10, per=4)
    p = LapMiner("dense", noise=1.0, logits=True).mine(scores, labels, 0, rng=0)
    sig = lambda x: 1 / (1 + np.exp(-x))
    negs = [scores[a, b] for a, b in zip(p.neg_a, p.neg_b)]
    poss = [scores[a, b] for a, b in zip(p.pos_a, p.pos_b) if a != b]
    assert p.neg_score == pytest.approx(np.mean([sig(v) for v in negs]))
    assert p.pos_score == pytest.approx(np.mean([sig(v) for v in poss]))
    assert p.neg_easy == pytest.approx(np.mean([v < 0 for v in negs]))  # logit 0 = probability 0.5
    assert p.hardness == pytest.approx(np.mean(negs))
    assert set(p.stats()) == {"mining_neg_score", "mining_pos_score", "mining_neg_easy", "mining_noise"}
    probs = LapMiner("dense", noise=0.0).mine(sig(scores), labels, 0, rng=0)  # probabilities: threshold 0.5
    assert probs.neg_easy == pytest.approx(np.mean(sig(scores)[probs.neg_a, probs.neg_b] < 0.5))


def test_random_positives_option():
    scores, labels = logit_problem(5)
    p = LapMiner("dense", noise=1.0, hard_positives=False).mine(scores, labels, 0, rng=0)
    assert len(p.pos_a) == 0 and len(p.neg_a) == len(labels) and np.isnan(p.pos_score)
