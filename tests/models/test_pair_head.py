"""PairHead: shapes, exact symmetry, the block form, and the registry."""
from __future__ import annotations

import pytest
import torch

from whaleflow.models.pair_head import PairHead
from whaleflow.registry import HEADS


def make(seed=0, **kw):
    torch.manual_seed(seed)
    return PairHead(12, **kw).eval()


def test_shape_and_registry():
    head = make()
    x, y = torch.randn(5, 12), torch.randn(5, 12)
    assert head(x, y).shape == (5,)
    assert HEADS.get("pair") is PairHead
    assert isinstance(HEADS.build("pair", in_features=4, hidden=[8]), PairHead)


@pytest.mark.parametrize("hidden", [(64, 32), (16,), ()])
def test_exactly_symmetric(hidden):
    head = make(hidden=hidden, dropout=0.2)
    x, y = torch.randn(257, 12), torch.randn(257, 12)
    with torch.no_grad():
        assert torch.equal(head(x, y), head(y, x))


def test_asymmetric_head_depends_on_order():
    head = make(symmetric=False)
    x, y = torch.randn(32, 12), torch.randn(32, 12)
    with torch.no_grad():
        assert not torch.allclose(head(x, y), head(y, x))
        # and the symmetric logit is the average of both orders
        sym = make(symmetric=True)
        sym.load_state_dict(head.state_dict())
        assert torch.allclose(sym(x, y), 0.5 * (head(x, y) + head(y, x)), atol=1e-6)


def test_split_first_layer_equals_one_linear_on_the_four_features():
    head = make(hidden=(8,))
    x, y = torch.randn(6, 12), torch.randn(6, 12)
    lin = torch.nn.Linear(48, 8)
    with torch.no_grad():
        lin.weight.copy_(torch.cat([head.diff.weight, head.sym.weight], dim=1))
        lin.bias.copy_(head.sym.bias)
        feats = torch.cat([x - y, x + y, x * y, (x - y).abs()], dim=1)
        pre = lin(feats)
        expect = head.tail(pre).squeeze(-1)
        head.symmetric = False
        assert torch.allclose(head(x, y), expect, atol=1e-6)


@pytest.mark.parametrize("symmetric", [True, False])
def test_score_matrix_matches_forward(symmetric):
    head = make(symmetric=symmetric)
    xa, xb = torch.randn(7, 12), torch.randn(5, 12)
    with torch.no_grad():
        m = head.score_matrix(xa, xb)
        loop = torch.stack([torch.stack([head(xa[i : i + 1], xb[j : j + 1])[0] for j in range(5)]) for i in range(7)])
    assert m.shape == (7, 5)
    assert torch.allclose(m, loop, atol=1e-5)


def test_dropout_only_in_training_and_gradients_flow():
    head = make(dropout=0.5)
    x, y = torch.randn(64, 12), torch.randn(64, 12)
    with torch.no_grad():
        assert torch.equal(head(x, y), head(x, y))
    head.train()
    out = head(x, y)
    out.sum().backward()
    assert all(p.grad is not None for p in head.parameters())


def test_bad_arguments():
    with pytest.raises(ValueError):
        PairHead(0)
    with pytest.raises(ValueError):
        PairHead(4, dropout=1.0)
    with pytest.raises(ValueError):
        make()(torch.randn(2, 12), torch.randn(3, 12))
