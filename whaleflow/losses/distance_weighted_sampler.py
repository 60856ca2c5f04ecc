"""Distance-weighted negative sampling (Wu et al. 2017, "Sampling Matters in Deep Embedding Learning").

On the unit sphere in n dimensions, the distance d between two random points has
density q(d) ∝ d^(n−2) (1 − d²/4)^((n−3)/2). In high dimensions that density is
sharply peaked near √2, so negatives drawn uniformly are almost all at the same,
uninformative distance. Sampling each negative with probability ∝ 1/q(d) spreads
the chosen negatives evenly over distances instead, which gives both hard and easy
examples and keeps the gradient variance low.

Two cut-offs from the paper shape the weights:

* ``cutoff``: distances below it are clipped to it, so the very nearest (often
  noisy, label-error) negatives do not get an unbounded weight;
* ``nonzero_loss_cutoff``: negatives at distance ≥ it would contribute no margin
  loss, so their weight is zero.

The weights are computed in log space (the powers overflow float32 for n ≈ 512).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base_sampler import BaseTupleSampler, Triplets

__all__ = ["DistanceWeightedSampler"]


class DistanceWeightedSampler(BaseTupleSampler):
    """For every (anchor, positive) pair of a batch, draw one negative ∝ 1/q(d).

    Args:
        cutoff: lower clip of the anchor–negative distance before weighting.
        nonzero_loss_cutoff: negatives at this distance or farther get weight zero.
        embedding_dim: the n of the sphere density; ``None`` uses the embeddings' width.

    Call it as ``sampler(embeddings, labels, generator=None)``; it returns int64
    index tensors ``(anchors, positives, negatives)`` into the batch, one triplet per
    ordered same-label pair (a, p) with a ≠ p. Embeddings are L2-normalised here
    before distances are taken, since the density assumes the unit sphere. A row
    whose every other-label item is at ≥ ``nonzero_loss_cutoff`` falls back to a
    uniform choice among the other-label items; an anchor whose batch holds no
    other label at all yields no triplets. Pass a seeded ``torch.Generator`` for
    reproducible draws.
    """

    def __init__(self, cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4, embedding_dim: int | None = None):
        if not cutoff > 0:
            raise ValueError(f"cutoff must be > 0 (it is a lower clip before a log), got {cutoff}")
        if not nonzero_loss_cutoff > 0:
            raise ValueError(f"nonzero_loss_cutoff must be > 0, got {nonzero_loss_cutoff}")
        if embedding_dim is not None and int(embedding_dim) < 2:
            raise ValueError(f"embedding_dim must be at least 2, got {embedding_dim}")
        self.cutoff = float(cutoff)
        self.nonzero_loss_cutoff = float(nonzero_loss_cutoff)
        self.embedding_dim = None if embedding_dim is None else int(embedding_dim)

    def __repr__(self) -> str:
        return (
            f"DistanceWeightedSampler(cutoff={self.cutoff}, nonzero_loss_cutoff={self.nonzero_loss_cutoff}, "
            f"embedding_dim={self.embedding_dim})"
        )

    @torch.no_grad()
    def negative_weights(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Row-stochastic (B, B) float64 matrix: entry (i, j) = P(j is drawn as i's negative).

        Rows of anchors whose batch holds no other label are all zero.
        """
        x = F.normalize(embeddings.detach().to(torch.float64), dim=1)
        n = float(self.embedding_dim or x.shape[1])
        # 2 − 2 cos is the squared chord distance on the unit sphere; clamp rounding below 0.
        dist = (2.0 - 2.0 * (x @ x.T)).clamp_min(0.0).sqrt()
        clipped = dist.clamp_min(self.cutoff)
        # log(1/q(d)) = −(n−2) log d − ((n−3)/2) log(1 − d²/4); the floor keeps d → 2 finite.
        log_w = -(n - 2.0) * clipped.log() - ((n - 3.0) / 2.0) * (1.0 - 0.25 * clipped.pow(2)).clamp_min(1e-12).log()

        other = labels[:, None] != labels[None, :]
        valid = other & (dist < self.nonzero_loss_cutoff)
        log_w = log_w.masked_fill(~valid, float("-inf"))
        has_valid = valid.any(dim=1, keepdim=True)
        # Subtract each row's max so the largest weight is exp(0) = 1: no overflow.
        row_max = log_w.max(dim=1, keepdim=True).values.masked_fill(~has_valid, 0.0)
        weights = (log_w - row_max).exp()
        # Fallback: nothing inside the non-zero-loss cutoff → uniform over other labels.
        weights = torch.where(has_valid, weights, other.to(weights.dtype))
        total = weights.sum(dim=1, keepdim=True)
        return weights / total.clamp_min(torch.finfo(weights.dtype).tiny)

    def sample(self, embeddings: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None) -> Triplets:
        device = embeddings.device
        labels = labels.to(device)
        probs = self.negative_weights(embeddings, labels)
        batch = labels.shape[0]
        eye = torch.eye(batch, dtype=torch.bool, device=device)
        positive = (labels[:, None] == labels[None, :]) & ~eye
        anchors, positives = positive.nonzero(as_tuple=True)
        has_negative = (probs.sum(dim=1) > 0)[anchors]
        anchors, positives = anchors[has_negative], positives[has_negative]
        if anchors.numel() == 0:
            empty = torch.empty(0, dtype=torch.long, device=device)
            return empty, empty.clone(), empty.clone()
        rows = probs[anchors]
        if generator is not None:
            rows = rows.to(generator.device)
        negatives = torch.multinomial(rows, 1, replacement=True, generator=generator)[:, 0].to(device)
        return anchors, positives, negatives
