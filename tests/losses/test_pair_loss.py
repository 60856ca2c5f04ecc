"""PairLoss against a hand-written binary cross-entropy."""
import pytest
import torch

from whaleflow.losses import PairLoss
from whaleflow.registry import LOSSES


def _manual_bce(logits, targets, pos_weight):
    p = torch.sigmoid(logits)
    per_pair = -(pos_weight * targets * torch.log(p) + (1 - targets) * torch.log(1 - p))
    return per_pair.mean()


@pytest.mark.parametrize("pos_weight", [1.0, 2.5])
def test_matches_manual_bce_values_and_gradients(pos_weight):
    g = torch.Generator().manual_seed(0)
    logits = (2 * torch.randn(16, 1, generator=g, dtype=torch.float64)).requires_grad_()
    targets = torch.randint(0, 2, (16,), generator=g)
    got = PairLoss(pos_weight)(logits, targets)
    got.backward()
    ref_logits = logits.detach().clone().requires_grad_()
    want = _manual_bce(ref_logits[:, 0], targets.double(), pos_weight)
    want.backward()
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    torch.testing.assert_close(logits.grad, ref_logits.grad)


def test_accepts_flat_logits_and_bool_targets():
    logits = torch.tensor([3.0, -3.0])
    same = PairLoss()(logits, torch.tensor([True, False]))
    assert same.item() == pytest.approx(_manual_bce(logits, torch.tensor([1.0, 0.0]), 1.0).item(), rel=1e-6)


def test_extreme_logits_stay_finite():
    loss = PairLoss()(torch.tensor([100.0, -100.0]), torch.tensor([0, 1]))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(100.0)


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        PairLoss()(torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(ValueError):
        PairLoss()(torch.zeros(4), torch.zeros(3))


def test_registry_builds_pair_loss():
    loss = LOSSES.build("pair", num_classes=3, cfg=None)
    assert isinstance(loss, PairLoss) and loss.pos_weight == 1.0
