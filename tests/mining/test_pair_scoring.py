"""All-pairs scoring in blocks against a per-pair Python loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from whaleflow.mining import score_all_pairs, score_blocks, score_knn, score_pairs
from whaleflow.mining import pair_scoring
from whaleflow.models.pair_head import PairHead


def loop_scores(head, f):
    n = len(f)
    with torch.no_grad():
        return np.array([[head(f[i : i + 1], f[j : j + 1]).item() for j in range(n)] for i in range(n)])


class BilinearHead(nn.Module):
    """A head without ``score_matrix``: the generic broadcasting path."""

    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.randn(d, d))

    def forward(self, x, y):
        return ((x @ self.w) * y).sum(-1)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("block_size", [8, 1024])
def test_blocked_equals_loop(symmetric, block_size):
    torch.manual_seed(0)
    f = torch.randn(37, 6)
    head = PairHead(6, hidden=(16, 8), symmetric=symmetric).eval()
    got = score_all_pairs(f, head, block_size=block_size)
    assert got.shape == (37, 37) and got.dtype == np.float32
    np.testing.assert_allclose(got, loop_scores(head, f), atol=1e-5)
    if symmetric:
        assert (got == got.T).all()


def test_generic_head_and_numpy_features():
    torch.manual_seed(1)
    f = torch.randn(20, 5)
    head = BilinearHead(5)
    got = score_all_pairs(f.numpy(), head, block_size=6)
    np.testing.assert_allclose(got, loop_scores(head, f), atol=1e-4)


def test_tiles_split_to_bound_memory(monkeypatch):
    monkeypatch.setattr(pair_scoring, "MAX_TILE_ELEMENTS", {"cpu": 50, "default": 50})
    torch.manual_seed(2)
    f = torch.randn(19, 4)
    head = PairHead(4, hidden=(8,), symmetric=False).eval()
    np.testing.assert_allclose(score_all_pairs(f, head, block_size=7), loop_scores(head, f), atol=1e-5)


def test_eval_mode_used_and_restored():
    torch.manual_seed(3)
    f = torch.randn(10, 4)
    head = PairHead(4, dropout=0.5)
    head.train()
    a, b = score_all_pairs(f, head), score_all_pairs(f, head)
    assert (a == b).all() and head.training
    head.eval()
    np.testing.assert_allclose(a, loop_scores(head, f), atol=1e-5)


def test_float64_request_copies_head():
    torch.manual_seed(4)
    f = torch.randn(9, 4)
    head = PairHead(4).eval()
    got = score_all_pairs(f, head, dtype=torch.float64)
    assert next(head.parameters()).dtype == torch.float32
    np.testing.assert_allclose(got, loop_scores(head, f), atol=1e-5)


def test_score_pairs_and_knn():
    torch.manual_seed(5)
    f = torch.randn(30, 6)
    head = PairHead(6, hidden=(8,)).eval()
    full = loop_scores(head, f)
    rows, cols = np.array([0, 3, 29, 7]), np.array([1, 3, 0, 7])
    np.testing.assert_allclose(score_pairs(f, head, rows, cols, batch_size=3), full[rows, cols], atol=1e-5)

    labels = np.arange(30) // 3
    idx, s = score_knn(f, head, k=4, labels=labels)
    dots = (f @ f.T).numpy()
    for i in range(30):
        allowed = np.flatnonzero(labels != labels[i])
        expect = allowed[np.argsort(-dots[i, allowed])[:4]]
        assert list(idx[i]) == list(expect)
        np.testing.assert_allclose(s[i], full[i, idx[i]], atol=1e-5)
    idx, s = score_knn(f[:3], head, k=5)  # only 2 others per row: padded
    assert idx.shape == (3, 3) and (idx[:, 2] == -1).all() and np.isneginf(s[:, 2]).all()
    assert all(i not in idx[i] for i in range(3))


@pytest.mark.parametrize("block_size", [5, 64])
def test_row_blocks_of_queries_against_a_gallery_equal_the_loop(block_size):
    torch.manual_seed(1)
    q, g = torch.randn(13, 6), torch.randn(21, 6)
    head = PairHead(6, hidden=(16, 8), symmetric=False).eval()
    blocks = list(score_blocks(q, g, head, block_size=block_size, transform=torch.sigmoid))
    assert [s for s, _ in blocks] == list(range(0, 13, block_size))
    got = np.concatenate([b for _, b in blocks])
    with torch.no_grad():
        ref = np.array([[torch.sigmoid(head(q[i : i + 1], g[j : j + 1])).item() for j in range(21)] for i in range(13)])
    np.testing.assert_allclose(got, ref, atol=1e-6)
