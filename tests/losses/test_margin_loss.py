"""MarginLoss against a slow per-triplet loop: values and gradients, β handling, builder."""
import pytest
import torch

from whaleflow.losses.margin_loss import MarginConfig
from whaleflow.losses import DistanceWeightedSampler, MarginLoss
from whaleflow.registry import LOSSES

def _reference(emb, labels, beta, a, p, n, margin, nu, per_class):
    """Per-triplet Python loop: Σ(pos + neg + ν β) / #non-zero terms (≥ 1)."""
    total = emb.new_zeros(())
    active = 0
    for i in range(len(a)):
        b = beta[int(labels[a[i]])] if per_class else beta[0]
        d_ap = torch.sqrt(((emb[a[i]] - emb[p[i]]) ** 2).sum() + 1e-8)
        d_an = torch.sqrt(((emb[a[i]] - emb[n[i]]) ** 2).sum() + 1e-8)
        pos = torch.clamp(d_ap - b + margin, min=0)
        neg = torch.clamp(b - d_an + margin, min=0)
        active += int(pos.item() > 0) + int(neg.item() > 0)
        total = total + pos + neg + nu * b
    return total / max(active, 1)


def _batch(seed, num_classes=5, per_class=3, dim=8):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    emb = torch.nn.functional.normalize(torch.randn(len(labels), dim, generator=g, dtype=torch.float64), dim=1)
    return emb, labels, g


@pytest.mark.parametrize("per_class", [True, False])
@pytest.mark.parametrize("nu", [0.0, 0.1])
def test_matches_per_triplet_loop_values_and_gradients(per_class, nu):
    for seed in range(4):
        emb, labels, g = _batch(seed)
        # float64 throughout so values and gradients can be compared tightly.
        loss_fn = MarginLoss(5, margin=0.2, beta_init=1.0, nu=nu, per_class_beta=per_class).double()
        with torch.no_grad():  # distinct β values so per-class indexing is exercised
            loss_fn.beta.add_(0.05 * torch.randn(loss_fn.beta.shape, generator=g, dtype=torch.float64))
        a, p, n = DistanceWeightedSampler()(emb, labels, generator=g)

        e1 = emb.clone().requires_grad_()
        got = loss_fn.forward_triplets(e1, labels, a, p, n)
        got.backward()

        e2 = emb.clone().requires_grad_()
        b2 = loss_fn.beta.detach().clone().requires_grad_()
        want = _reference(e2, labels, b2, a, p, n, 0.2, nu, per_class)
        want.backward()

        assert got.item() == pytest.approx(want.item(), rel=1e-10, abs=1e-12)
        torch.testing.assert_close(e1.grad, e2.grad, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(loss_fn.beta.grad, b2.grad, rtol=1e-9, atol=1e-12)


def test_forward_samples_with_the_generator():
    emb, labels, _ = _batch(0)
    loss_fn = MarginLoss(5)
    got = loss_fn(emb, labels, generator=torch.Generator().manual_seed(3))
    a, p, n = loss_fn.sampler(emb, labels, generator=torch.Generator().manual_seed(3))
    assert got.item() == loss_fn.forward_triplets(emb, labels, a, p, n).item()


def test_hand_computed_single_triplet():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    loss_fn = MarginLoss(2, margin=0.2, beta_init=1.2)
    idx = lambda v: torch.tensor([v])  # noqa: E731
    # d_ap = √2 ≈ 1.414 → pos = 0.414; d_an = 2 → neg = relu(1.2 − 2 + 0.2) = 0; one active term.
    loss = loss_fn.forward_triplets(emb, labels, idx(0), idx(1), idx(2))
    assert loss.item() == pytest.approx(2 ** 0.5 - 1.0, abs=1e-6)


def test_per_class_beta_only_moves_anchor_classes():
    emb, labels, g = _batch(1, num_classes=4)
    loss_fn = MarginLoss(6, beta_init=1.0, per_class_beta=True)
    keep = labels < 2  # classes 2, 3 (and 4, 5 entirely) never anchor
    emb, labels = emb[keep], labels[keep]
    loss_fn(emb, labels, generator=g).backward()
    assert loss_fn.beta.shape == (6,)
    assert torch.all(loss_fn.beta.grad[2:] == 0)
    assert torch.any(loss_fn.beta.grad[:2] != 0)


def test_global_beta_is_one_parameter():
    loss_fn = MarginLoss(10, per_class_beta=False, beta_init=0.9)
    assert loss_fn.beta.shape == (1,)
    assert loss_fn.beta.item() == pytest.approx(0.9)
    # Labels beyond num_classes are fine with a global β (nothing is indexed by them).
    emb, _, g = _batch(2)
    loss_fn(emb, torch.arange(5).repeat_interleave(3) + 20, generator=g)


def test_half_precision_embeddings_give_float32_loss():
    emb, labels, _ = _batch(3)
    loss_fn = MarginLoss(5)
    half = emb.to(torch.bfloat16).requires_grad_()
    loss = loss_fn(half, labels, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.dtype == torch.float32 and half.grad.dtype == torch.bfloat16
    want = loss_fn(emb.float(), labels, generator=torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(want.item(), abs=2e-2)


def test_beta_parameters_are_the_only_parameters():
    loss_fn = MarginLoss(4)
    assert [id(x) for x in loss_fn.beta_parameters()] == [id(x) for x in loss_fn.parameters()]


def test_no_triplets_gives_zero_loss_that_backpropagates():
    emb = torch.randn(4, 3, requires_grad=True)
    loss_fn = MarginLoss(4)
    loss = loss_fn(emb, torch.arange(4))  # all singletons: no positives
    loss.backward()
    assert loss.item() == 0.0
    assert torch.all(emb.grad == 0) and torch.all(loss_fn.beta.grad == 0)


def test_rejects_bad_inputs():
    loss_fn = MarginLoss(3)
    emb = torch.randn(6, 4)
    with pytest.raises(ValueError):
        loss_fn(emb, torch.tensor([0, 0, 1, 1, 5, 5]))  # label outside per-class β
    with pytest.raises(ValueError):
        loss_fn(emb, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError):
        loss_fn.forward_triplets(emb, torch.zeros(6, dtype=torch.long), torch.tensor([0]), torch.tensor([1]), torch.tensor([9]))


def test_registry_builder_reads_config():
    cfg = MarginConfig(margin=0.3, beta_init=1.1, nu=0.01, per_class_beta=False, cutoff=0.4, nonzero_loss_cutoff=1.3)
    loss_fn = LOSSES.build("margin", num_classes=7, cfg=cfg)
    assert isinstance(loss_fn, MarginLoss)
    assert (loss_fn.margin, loss_fn.nu, loss_fn.per_class_beta) == (0.3, 0.01, False)
    assert loss_fn.beta.item() == pytest.approx(1.1)
    assert (loss_fn.sampler.cutoff, loss_fn.sampler.nonzero_loss_cutoff) == (0.4, 1.3)
    assert LOSSES.build("margin", num_classes=7).beta.shape == (7,)


def test_training_free_embeddings_separates_classes():
    """A few hundred steps on free, normalised embeddings make nearest-centroid exact."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(6).repeat_interleave(4)
    raw = torch.randn(len(labels), 16, generator=g).requires_grad_()
    loss_fn = MarginLoss(6)
    opt = torch.optim.Adam([{"params": [raw], "lr": 0.05}, {"params": loss_fn.beta_parameters(), "lr": 0.01}])

    def accuracy():
        e = torch.nn.functional.normalize(raw.detach(), dim=1)
        cent = torch.nn.functional.normalize(torch.stack([e[labels == c].mean(0) for c in range(6)]), dim=1)
        return ((e @ cent.T).argmax(1) == labels).double().mean().item()

    first = None
    for _ in range(200):
        loss = loss_fn(torch.nn.functional.normalize(raw, dim=1), labels, generator=g)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
    assert accuracy() == 1.0
