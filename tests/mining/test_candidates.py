"""Top-k candidates scored on the device, and the sparse LAP on them, against brute force."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from whaleflow.mining import (LapMiner, hard_positives_from_candidates, NoiseSchedule, PairCandidates, hard_negatives, hard_positives,
                              score_all_pairs, score_candidates)
from whaleflow.mining import pair_scoring
from whaleflow.models.pair_head import PairHead


def _setup(n=53, d=6, seed=0, symmetric=True):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n // 3, size=n)
    f = torch.randn(n, d)
    head = PairHead(d, hidden=(16, 8), symmetric=symmetric).eval()
    return f, labels, head


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("block_size", [7, 1024])
def test_topk_equals_brute_force(symmetric, block_size, monkeypatch):
    monkeypatch.setitem(pair_scoring.MAX_TILE_ELEMENTS, "cpu", 4 * 6 * 4)  # tiny sub-tiles: the triangle logic runs
    f, labels, head = _setup(symmetric=symmetric)
    full = score_all_pairs(f, head)
    neg = labels // 2  # negative codes coarser than individuals (merged groups)
    cand = score_candidates(f, head, k=9, neg_labels=neg, labels=labels, block_size=block_size)
    w = cand.idx.shape[1]  # k less what the within-individual logits take of the N·k·8 bytes
    assert cand.symmetric == symmetric and 1 <= w <= 9 and cand.idx.dtype == np.int32
    np.testing.assert_array_equal(cand.val, cand.clean)  # no noise
    allowed = neg[:, None] != neg[None, :]
    for i in range(len(f)):
        want = np.sort(full[i][allowed[i]])[::-1][:w]
        ok = cand.idx[i] >= 0
        np.testing.assert_allclose(cand.val[i][ok].astype(np.float32), want[: ok.sum()], atol=2e-3)
        assert allowed[i, cand.idx[i][ok]].all()
        np.testing.assert_allclose(full[i, cand.idx[i][ok]], cand.val[i][ok].astype(np.float32), atol=2e-3)
    assert cand.nbytes <= len(f) * 9 * 8


def test_noisy_candidates_and_positive_blocks():
    f, labels, head = _setup()
    full = score_all_pairs(f, head)
    n = len(f)
    quiet = score_candidates(f, head, k=10, neg_labels=labels, labels=labels)
    cand = score_candidates(f, head, k=10, neg_labels=labels, labels=labels, noise=3.0, seed=1)
    again = score_candidates(f, head, k=10, neg_labels=labels, labels=labels, noise=3.0, seed=1)
    np.testing.assert_array_equal(cand.idx, again.idx)  # seeded
    ok = cand.idx >= 0
    rows = np.broadcast_to(np.arange(n)[:, None], cand.idx.shape)
    np.testing.assert_allclose(cand.clean[ok].astype(np.float32), full[rows[ok], cand.idx[ok]], atol=2e-3)
    assert (labels[cand.idx[ok]] != labels[rows[ok]]).all()
    assert np.all(np.diff(cand.val.astype(np.float32), axis=1) <= 0)  # best noisy first
    assert cand.noise == 3.0 and (cand.idx != quiet.idx).any() and np.abs(cand.val - cand.clean).max() > 0.5
    # the positives equal the dense path's on the same scores and seed
    got = hard_positives_from_candidates(cand, labels, noise=0.3, rng=5)
    want = hard_positives(full.astype(np.float16).astype(np.float64), labels, noise=0.3, rng=5)
    assert (got == want).all()
    assert cand.nbytes <= n * 10 * 8


def test_noiseless_solve_matches_dense_optimum():
    f, labels, head = _setup(n=60)
    full = score_all_pairs(f, head)
    n = len(f)
    cand = score_candidates(f, head, k=2 * n, neg_labels=labels, labels=labels)
    assert cand.idx.shape[1] == n
    quiet = NoiseSchedule(0.0, 0.0, 0, floor=0.0)
    pairs = LapMiner("sparse", k=n, noise=quiet).mine(cand, labels, 0, rng=0)
    dense = hard_negatives(full.astype(np.float64), labels)
    ok = dense >= 0
    assert np.isclose(full[pairs.neg_a, pairs.neg_b].sum(), full[np.flatnonzero(ok), dense[ok]].sum(), atol=0.05)
    assert (labels[pairs.neg_a] != labels[pairs.neg_b]).all()
    assert len(np.unique(pairs.neg_b)) == len(pairs.neg_b)  # a permutation
    pos = hard_positives(full.astype(np.float16).astype(np.float64), labels)
    assert (pairs.pos_b == pos).all()
    assert pairs.info["kind"] == "candidates" and np.isfinite(pairs.neg_score)


def test_candidates_need_sparse_and_matching_labels():
    f, labels, head = _setup()
    cand = score_candidates(f, head, k=5, neg_labels=labels, labels=labels)
    with pytest.raises(ValueError, match="sparse"):
        LapMiner("dense").mine(cand, labels, 0, rng=0)
    other = (labels + 1) % 3
    with pytest.raises(ValueError, match="within-individual"):
        LapMiner("sparse").mine(PairCandidates.from_dict(cand.to_dict()), other, 0, rng=0)


class _CountingHead(torch.nn.Module):
    """A pair head that counts the pairs it scores (the prefilter must score N·m, not N²)."""

    def __init__(self, head):
        super().__init__()
        self.head, self.pairs = head, 0

    def forward(self, xa, xb):
        self.pairs += len(xa)
        return self.head(xa, xb)


@pytest.mark.parametrize("m", [4, 11])
def test_prefilter_equals_brute_force_on_the_cosine_shortlist(m, monkeypatch):
    from whaleflow.mining import cosine_prefilter

    monkeypatch.setitem(cosine_prefilter.COS_BLOCK_ELEMS, "cpu", 7 * 53)  # several row blocks
    monkeypatch.setitem(cosine_prefilter.PAIR_BATCH_ELEMS, "cpu", 2 * 6 * 5)  # several head batches
    f, labels, head = _setup()
    full = score_all_pairs(f, head)
    neg = labels // 2
    cand = score_candidates(f, head, k=9, neg_labels=neg, labels=labels, prefilter=m)
    fn = torch.nn.functional.normalize(f, dim=1)
    cos = (fn @ fn.T).numpy()
    allowed = neg[:, None] != neg[None, :]
    w = cand.idx.shape[1]
    for i in range(len(f)):
        near = np.flatnonzero(allowed[i])[np.argsort(-cos[i][allowed[i]], kind="stable")[:m]]
        want = np.sort(full[i, near])[::-1][:w]
        ok = cand.idx[i] >= 0
        assert ok.sum() == min(w, len(near))
        assert set(cand.idx[i][ok]) <= set(near)
        np.testing.assert_allclose(cand.val[i][ok].astype(np.float32), want[: ok.sum()], atol=2e-3)


def test_prefilter_scores_linearly_and_is_exact_when_it_holds_everything():
    f, labels, head = _setup(n=60)
    counting = _CountingHead(head)
    n, m = len(f), 5
    pos_pairs = sum(int(c) ** 2 for c in np.bincount(labels) if c >= 2)
    score_candidates(f, counting, k=4, neg_labels=labels, labels=labels, prefilter=m)
    assert counting.pairs <= n * m + pos_pairs  # N·m head evaluations, never N²
    full = score_candidates(f, head, k=4, neg_labels=labels, labels=labels)
    wide = score_candidates(f, head, k=4, neg_labels=labels, labels=labels, prefilter=n)  # ≥ N: the full path
    np.testing.assert_array_equal(full.idx, wide.idx)
    noisy = score_candidates(f, head, k=4, neg_labels=labels, labels=labels, noise=2.0, seed=3, prefilter=m)
    again = score_candidates(f, head, k=4, neg_labels=labels, labels=labels, noise=2.0, seed=3, prefilter=m)
    np.testing.assert_array_equal(noisy.idx, again.idx)
    assert np.abs(noisy.val.astype(np.float32) - noisy.clean.astype(np.float32)).max() > 0.3


def test_prefilter_below_k_is_a_config_error_and_off_by_default():
    from whaleflow.errors import ConfigError
    from whaleflow.mining.mining_config import MiningConfig

    assert MiningConfig().prefilter == 0  # off: it cost validation MAP@5 in the ablation (see MiningConfig)
    MiningConfig(k=50, prefilter=200)
    with pytest.raises(ConfigError, match="prefilter 10 is below mining k 50"):
        MiningConfig(k=50, prefilter=10)
