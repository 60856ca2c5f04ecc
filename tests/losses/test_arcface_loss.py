"""Sub-center ArcFace with dynamic margins against a slow per-sample reference."""
import math

import numpy as np
import pytest
import torch

from whaleflow.losses.arcface_loss import SubCenterArcFaceLoss, dynamic_margins


def reference_loss(emb, weight, labels, margins, k, s):
    """One sample at a time, with acos and the π fallback written out."""
    total = 0.0
    c = weight.shape[0] // k
    for i in range(len(emb)):
        x = emb[i] / emb[i].norm()
        logits = torch.stack([torch.stack([x @ (weight[cls * k + j] / weight[cls * k + j].norm())
                                           for j in range(k)]).max() for cls in range(c)])
        y = int(labels[i])
        m = float(margins[y])
        cos_y = logits[y].clamp(-1 + 1e-6, 1 - 1e-6)
        theta = torch.acos(cos_y)
        if float(theta.detach()) + m < math.pi:
            target = torch.cos(theta + m)
        else:
            target = cos_y - m * math.sin(math.pi - m)
        logits = torch.cat([logits[:y], target.reshape(1), logits[y + 1:]]) * s
        total = total - torch.log_softmax(logits, 0)[y]
    return total / len(emb)


@pytest.mark.parametrize("k", [1, 3])
def test_loss_and_gradients_match_the_per_sample_reference(k):
    torch.manual_seed(0)
    c, d, b = 5, 8, 7
    margins = torch.tensor(dynamic_margins([1, 2, 5, 10, 40]))
    loss_fn = SubCenterArcFaceLoss(c, d, subcenters=k, scale=16.0, margins=margins)
    emb = torch.randn(b, d, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 2])
    loss = loss_fn(emb, labels)
    loss.backward()
    g_emb, g_w = emb.grad.clone(), loss_fn.weight.grad.clone()

    emb2 = emb.detach().clone().requires_grad_(True)
    w2 = loss_fn.weight.detach().clone().requires_grad_(True)
    ref = reference_loss(emb2, w2, labels, margins, k, 16.0)
    ref.backward()
    assert torch.allclose(loss, ref, rtol=1e-4, atol=1e-5)
    assert torch.allclose(g_emb, emb2.grad, rtol=1e-3, atol=1e-5)
    assert torch.allclose(g_w, w2.grad, rtol=1e-3, atol=1e-5)


def test_fallback_past_pi_matches_reference():
    """A sample almost opposite its class centre: θ + m > π takes the linear branch."""
    loss_fn = SubCenterArcFaceLoss(2, 2, subcenters=1, scale=10.0, margins=0.5)
    with torch.no_grad():
        loss_fn.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    emb = torch.tensor([[-1.0, 0.05]], requires_grad=True)
    loss = loss_fn(emb, torch.tensor([0]))
    ref = reference_loss(emb, loss_fn.weight.detach(), torch.tensor([0]), torch.tensor([0.5, 0.5]), 1, 10.0)
    assert torch.allclose(loss, ref, atol=1e-5)
    logits = loss_fn.logits(emb, torch.tensor([0]))
    cos = float(loss_fn.cosine(emb)[0, 0].detach())
    assert math.isclose(float(logits[0, 0].detach()) / 10, cos - 0.5 * math.sin(math.pi - 0.5), rel_tol=1e-5)


def test_dynamic_margin_formula_and_order():
    n = np.array([1, 2, 4, 16, 100])
    m = dynamic_margins(n, a=0.5, lam=0.5, b=0.05)
    assert np.allclose(m, 0.5 * n ** -0.5 + 0.05)
    assert (np.diff(m) < 0).all()  # fewer photos → larger margin
    assert np.isclose(dynamic_margins([0], a=0.5, lam=0.5, b=0.05)[0], 0.55)  # no photos counts as one


def test_subcentre_max_is_the_class_cosine():
    loss_fn = SubCenterArcFaceLoss(2, 3, subcenters=3, margins=0.2)
    with torch.no_grad():
        loss_fn.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0],   # class 0
                                           [-1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]]))  # class 1
    x = torch.tensor([[0.1, 0.2, 0.9]])
    cos = loss_fn.cosine(x)
    unit = x / x.norm()
    assert torch.allclose(cos, torch.stack([unit[0].max(), (-unit[0]).max()])[None], atol=1e-6)


def test_margin_lowers_the_true_class_logit_only():
    torch.manual_seed(1)
    loss_fn = SubCenterArcFaceLoss(4, 6, subcenters=2, scale=1.0, margins=0.3)
    emb, labels = torch.randn(5, 6), torch.tensor([0, 1, 2, 3, 1])
    plain, with_m = loss_fn.cosine(emb), loss_fn.logits(emb, labels)
    mask = torch.zeros_like(plain, dtype=torch.bool).scatter(1, labels[:, None], True)
    assert torch.allclose(plain[~mask], with_m[~mask], atol=1e-6)
    assert (with_m[mask] < plain[mask]).all()


def test_bad_inputs_are_rejected():
    loss_fn = SubCenterArcFaceLoss(3, 4, margins=0.2)
    with pytest.raises(ValueError, match="labels must be in"):
        loss_fn(torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="margins for"):
        SubCenterArcFaceLoss(3, 4, margins=[0.1, 0.2])
