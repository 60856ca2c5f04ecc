"""DistanceWeightedSampler: label rules, cut-offs, the 1/q(d) weights, determinism."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from whaleflow.losses import DistanceWeightedSampler


def _unit(x):
    return torch.nn.functional.normalize(x, dim=1)


def _reference_weights(emb, labels, cutoff, nonzero_loss_cutoff, n_dim=None):
    """Slow per-pair numpy version of the paper's weights (float64)."""
    x = emb.double().numpy()
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    lab = labels.numpy()
    b = len(lab)
    n = n_dim or x.shape[1]
    w = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            if lab[i] == lab[j]:
                continue
            d = np.linalg.norm(x[i] - x[j])
            if d >= nonzero_loss_cutoff:
                continue
            dc = max(d, cutoff)
            q = dc ** (n - 2) * (1 - dc * dc / 4) ** ((n - 3) / 2)
            w[i, j] = 1.0 / q
        if w[i].sum() == 0:  # fallback: uniform over other labels
            w[i] = (lab != lab[i]).astype(float)
        if w[i].sum() > 0:
            w[i] /= w[i].sum()
    return w


def _point_at_distance(d, dim, axis):
    """A unit vector at chord distance d from e_0, rotated towards e_axis."""
    theta = 2 * math.asin(d / 2)
    v = torch.zeros(dim)
    v[0], v[axis] = math.cos(theta), math.sin(theta)
    return v


def _constructed_batch(dim=4):
    """Class 0: e_0 and 11 points close to it; six negatives at chosen distances from e_0."""
    g = torch.Generator().manual_seed(0)
    e0 = torch.tensor([1.0] + [0.0] * (dim - 1))
    anchors = _unit(e0 + 0.03 * torch.randn(12, dim, generator=g))
    anchors[0] = e0
    dists = [0.2, 0.4, 0.7, 1.0, 1.3, 1.6]  # below cutoff ×2, inside, beyond nonzero_loss_cutoff
    negs = torch.stack([_point_at_distance(d, dim, 1 + k % (dim - 1)) for k, d in enumerate(dists)])
    emb = torch.cat([anchors, negs])
    labels = torch.tensor([0] * 12 + [1, 2, 3, 4, 5, 6])
    return emb, labels


def test_weights_match_formula_on_random_batches():
    sampler = DistanceWeightedSampler(cutoff=0.5, nonzero_loss_cutoff=1.4)
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        emb = torch.randn(20, 6, generator=g)
        labels = torch.randint(0, 5, (20,), generator=g)
        got = sampler.negative_weights(emb, labels).numpy()
        np.testing.assert_allclose(got, _reference_weights(emb, labels, 0.5, 1.4), rtol=1e-9, atol=1e-12)


def test_embedding_dim_overrides_density_dimension():
    emb, labels = _constructed_batch(dim=4)
    got = DistanceWeightedSampler(embedding_dim=16).negative_weights(emb, labels).numpy()
    np.testing.assert_allclose(got, _reference_weights(emb, labels, 0.5, 1.4, n_dim=16), rtol=1e-9)


def test_cutoffs_clip_near_and_zero_far_negatives():
    emb, labels = _constructed_batch()
    w = DistanceWeightedSampler(cutoff=0.5, nonzero_loss_cutoff=1.4).negative_weights(emb, labels)
    row = w[0]                                           # anchor 0 is exactly e_0
    assert torch.all(row[:12] == 0)                     # never the same label
    # d = 0.2 and 0.4 are both clipped to the cut-off 0.5: equal weights (unclipped
    # 1/q would differ by more than 4×), and the largest in the row.
    assert row[12] > 0
    assert row[12].item() == pytest.approx(row[13].item(), rel=1e-9)
    assert torch.all(row[12] >= row[14:17])
    assert torch.all(row[14:17] > 0)
    assert row[17] == 0                                  # d = 1.6 ≥ nonzero_loss_cutoff
    assert row.sum().item() == pytest.approx(1.0)


def test_empirical_frequencies_match_weights():
    """Chi-square goodness of fit of the drawn negatives, pooled over all anchors."""
    emb, labels = _constructed_batch()
    sampler = DistanceWeightedSampler(cutoff=0.5, nonzero_loss_cutoff=1.4)
    probs = sampler.negative_weights(emb, labels).numpy()
    counts = np.zeros_like(probs)
    g = torch.Generator().manual_seed(123)
    for _ in range(300):
        a, _, n = sampler(emb, labels, generator=g)
        np.add.at(counts, (a.numpy(), n.numpy()), 1)
    draws = counts.sum(axis=1, keepdims=True)
    expected = draws * probs
    assert counts[expected == 0].sum() == 0              # zero-weight cells never drawn
    cells = expected >= 5
    chi2 = (((counts - expected) ** 2)[cells] / expected[cells]).sum()
    df = cells.sum() - int((cells.any(axis=1)).sum())
    assert chi2 < stats.chi2.ppf(0.999, df), (chi2, df)


def test_never_draws_same_label_negatives():
    sampler = DistanceWeightedSampler()
    for seed in range(200):
        g = torch.Generator().manual_seed(seed)
        b = int(torch.randint(2, 40, (1,), generator=g))
        emb = torch.randn(b, 8, generator=g) * 3.0       # unnormalised on purpose
        labels = torch.randint(0, 6, (b,), generator=g)
        a, p, n = sampler(emb, labels, generator=g)
        assert torch.all(labels[a] == labels[p]) and torch.all(a != p)
        assert torch.all(labels[a] != labels[n])
        # one triplet per ordered same-label pair whose anchor has some other label
        same = labels[:, None] == labels[None, :]
        pairs = (same.sum(1) - 1)[(~same).any(1)].sum()
        assert a.numel() == int(pairs)


def test_fallback_uniform_when_all_negatives_are_far():
    dim = 5
    e0 = torch.zeros(dim)
    e0[0] = 1.0
    emb = torch.stack([e0, e0, -e0, _point_at_distance(1.9, dim, 2)])
    labels = torch.tensor([0, 0, 1, 2])
    w = DistanceWeightedSampler(nonzero_loss_cutoff=1.4).negative_weights(emb, labels)
    assert torch.allclose(w[0], torch.tensor([0.0, 0.0, 0.5, 0.5], dtype=w.dtype))


def test_single_label_batch_yields_no_triplets():
    emb = torch.randn(6, 4)
    a, p, n = DistanceWeightedSampler()(emb, torch.zeros(6, dtype=torch.long))
    assert a.numel() == p.numel() == n.numel() == 0
    assert a.dtype == torch.long


def test_deterministic_with_seeded_generator():
    emb = torch.randn(32, 16)
    labels = torch.arange(8).repeat_interleave(4)
    sampler = DistanceWeightedSampler()
    first = sampler(emb, labels, generator=torch.Generator().manual_seed(7))
    again = sampler(emb, labels, generator=torch.Generator().manual_seed(7))
    other = sampler(emb, labels, generator=torch.Generator().manual_seed(8))
    for x, y in zip(first, again):
        assert torch.equal(x, y)
    assert not torch.equal(first[2], other[2])


def test_rejects_bad_inputs():
    sampler = DistanceWeightedSampler()
    with pytest.raises(ValueError):
        sampler(torch.randn(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError):
        sampler(torch.randn(4, 3), torch.zeros(4))
    with pytest.raises(ValueError):
        DistanceWeightedSampler(cutoff=0.0)
