"""Sparse LAP mining: agreement with the dense solver, forbidden cells, fallbacks."""
from __future__ import annotations

import numpy as np
import pytest

from whaleflow.mining import (hard_negatives, hard_positives, hard_positives_from_features,
                              sparse_hard_negatives, sparse_hard_negatives_from_scores)
from whaleflow.mining.sparse import _complete


def clustered(rng, n_ids=12, per=(1, 6), dim=8, spread=0.3):
    """Unit-norm features clustered by individual, long-ish tailed counts."""
    counts = rng.integers(per[0], per[1] + 1, size=n_ids)
    labels = np.repeat(np.arange(n_ids), counts)
    centres = rng.standard_normal((n_ids, dim))
    f = centres[labels] + spread * rng.standard_normal((len(labels), dim))
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    return f.astype(np.float32), labels


def total(s, partner):
    return float(s[np.arange(len(partner)), partner].sum())


def check_negatives(partner, labels, permutation=True):
    assert (partner >= 0).all()
    assert (labels[partner] != labels).all()
    if permutation:
        assert sorted(partner) == list(range(len(labels)))


@pytest.mark.parametrize("seed", range(6))
def test_from_scores_equals_dense_when_k_covers_everything(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    labels = rng.integers(0, n // 2 + 2, size=n)
    if np.bincount(labels).max() * 2 > n:
        labels = np.arange(n) % 3
    s = rng.standard_normal((n, n))
    for noise in (0.0, 0.7):
        dense = hard_negatives(s, labels, noise=noise, rng=seed)
        for block_size in (7, 1024):  # the noise stream does not depend on blocking
            sparse = sparse_hard_negatives_from_scores(s, labels, k=n, noise=noise, rng=seed, block_size=block_size)
            assert (dense == sparse).all()


@pytest.mark.parametrize("seed", range(4))
def test_features_path_equals_dense_optimum_when_k_covers_everything(seed):
    rng = np.random.default_rng(seed)
    f, labels = clustered(rng)
    s = f.astype(np.float64) @ f.T.astype(np.float64)
    dense = hard_negatives(s, labels)
    info = {}
    sparse = sparse_hard_negatives(f, labels, k=len(labels), info=info)
    check_negatives(sparse, labels)
    # dot products are symmetric, so reversing a cycle ties: compare totals
    assert total(s, sparse) == pytest.approx(total(s, dense), rel=1e-5)
    assert info["unmatched"] == 0 and info["fallback_rows"] == 0


def test_scores_fn_is_used_for_candidates():
    rng = np.random.default_rng(0)
    f, labels = clustered(rng)
    n = len(labels)
    s = rng.standard_normal((n, n))  # any scorer, not the dot product
    got = sparse_hard_negatives(f, labels, k=n, scores_fn=lambda i, j: s[i, j])
    assert (got == hard_negatives(s, labels)).all()


@pytest.mark.parametrize("seed", range(4))
def test_sparse_never_picks_forbidden_cells_under_noise(seed):
    rng = np.random.default_rng(seed)
    f, labels = clustered(rng, n_ids=20)
    s = f @ f.T
    for noise in (0.0, 0.3, 30.0):
        for k in (1, 3, 10):
            info_a, info_b = {}, {}
            a = sparse_hard_negatives(f, labels, k=k, noise=noise, rng=rng, random_candidates=2, info=info_a)
            check_negatives(a, labels)
            b = sparse_hard_negatives_from_scores(s, labels, k=k, noise=noise, rng=rng, info=info_b)
            check_negatives(b, labels)
            assert info_a["fallback_rows"] == info_b["fallback_rows"] == 0


def test_small_k_is_close_to_dense_and_within_it():
    rng = np.random.default_rng(1)
    f, labels = clustered(rng, n_ids=40, dim=16)
    s = f.astype(np.float64) @ f.T.astype(np.float64)
    best = total(s, hard_negatives(s, labels))
    got = total(s, sparse_hard_negatives(f, labels, k=5))
    assert got <= best + 1e-4
    assert got >= 0.9 * best


def test_fallback_when_sparse_graph_has_no_full_matching():
    # k = 1 leaves most columns with one or two edges: no full matching exists, so
    # the dummy-column solve finds a maximum matching and the rest is assigned densely.
    rng = np.random.default_rng(0)
    f, labels = clustered(rng, n_ids=30, dim=16, spread=0.6)
    info = {}
    got = sparse_hard_negatives(f, labels, k=1, info=info)
    assert info["dummy_solve"] and info["unmatched"] > 0
    assert info["residual"] == info["unmatched"] and info["fallback_rows"] == 0
    check_negatives(got, labels)


def test_greedy_completion_when_residual_too_large():
    rng = np.random.default_rng(0)
    f, labels = clustered(rng, n_ids=30, dim=16, spread=0.6)
    info = {}
    got = sparse_hard_negatives(f, labels, k=1, max_residual=0, info=info)
    assert info["residual"] == 0 and info["fallback_rows"] == info["unmatched"] > 0
    check_negatives(got, labels, permutation=False)
    assert len(set(got.tolist())) >= len(labels) - info["unmatched"]


def test_infeasible_residual_releases_matched_rows():
    # Row 0 is unmatched and the only free column (1) is of its own individual:
    # matched rows must be released so the result is still a permutation.
    labels = np.array([0, 0, 1, 1, 2, 2])
    partner = np.array([-1, 4, 0, 5, 2, 3])
    s = np.random.default_rng(0).standard_normal((6, 6))
    rows = np.array([1, 2, 3, 4, 5])
    cols, vals = partner[rows], s[rows, partner[rows]]
    info = {"fallback_rows": 0}
    _complete(partner, labels, rows, cols, vals, lambda a, b: s[np.ix_(a, b)].copy(), 100, info)
    check_negatives(partner, labels)
    assert info["unmatched"] == 1 and info["residual"] > 1 and info["fallback_rows"] == 0


def test_fallback_when_one_individual_dominates():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 12 + [1, 2, 3, 4])
    f = rng.standard_normal((16, 4)).astype(np.float32)
    for fn in (lambda **kw: sparse_hard_negatives(f, labels, **kw),
               lambda **kw: sparse_hard_negatives_from_scores(f @ f.T, labels, **kw)):
        info = {}
        got = fn(k=3, info=info)
        check_negatives(got, labels, permutation=False)
        assert info["fallback_rows"] == 12 - 4  # 4 other images absorb 4 of the 12
    dense_info = {}
    check_negatives(hard_negatives(f @ f.T, labels, info=dense_info), labels, permutation=False)
    assert dense_info["fallback_rows"] == 8


def test_single_individual_has_no_negatives():
    got = sparse_hard_negatives(np.eye(3, dtype=np.float32), [1, 1, 1], k=2)
    assert (got == -1).all()


def test_positives_from_features_equal_dense():
    rng = np.random.default_rng(2)
    f, labels = clustered(rng, n_ids=15)
    n = len(labels)
    s = rng.standard_normal((n, n))
    for noise in (0.0, 1.0):
        dense = hard_positives(s, labels, noise=noise, rng=5)
        sparse = hard_positives_from_features(f, labels, scores_fn=lambda i, j: s[i, j], noise=noise, rng=5)
        assert (dense == sparse).all()
    dots = hard_positives_from_features(f, labels)
    assert (labels[dots] == labels).all() and sorted(dots) == list(range(n))


def test_seeded_and_reproducible():
    rng = np.random.default_rng(0)
    f, labels = clustered(rng, n_ids=20)
    a = sparse_hard_negatives(f, labels, k=4, noise=1.0, rng=3, random_candidates=4)
    b = sparse_hard_negatives(f, labels, k=4, noise=1.0, rng=3, random_candidates=4)
    assert (a == b).all()


def test_normalize_uses_cosine():
    rng = np.random.default_rng(0)
    f, labels = clustered(rng)
    scaled = f * rng.uniform(0.5, 5.0, size=(len(f), 1)).astype(np.float32)
    a = sparse_hard_negatives(scaled, labels, k=len(labels), normalize=True)
    s = f.astype(np.float64) @ f.T
    assert total(s, a) == pytest.approx(total(s, hard_negatives(s, labels)), rel=1e-5)
