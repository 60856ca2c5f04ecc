"""Margin loss with a learned boundary β (Wu et al. 2017, "Sampling Matters in Deep Embedding Learning").

For a triplet (anchor a, positive p, negative n) with distances D_ap and D_an:

    ℓ = relu(D_ap − β + α) + relu(β − D_an + α)

Positives are pulled inside the boundary β − α and negatives pushed beyond β + α.
Unlike a triplet loss it scores each pair against an absolute boundary, and β is
learned: one global value, or one per class (indexed by the anchor's label), since
individuals differ in how tight their clusters can be. ν·β is an optional
regulariser (the paper's ν) that pulls β down, i.e. asks for tighter clusters.

Normalisation, as in the authors' reference implementation:

    loss = (Σ_triplets [relu(D_ap − β + α) + relu(β − D_an + α)] + ν Σ_triplets β_a) / N_active

where N_active counts the non-zero terms (positive and negative terms counted
separately, so up to two per triplet) and is treated as a constant in the gradient.
Averaging over active terms only keeps the gradient scale steady as training makes
most terms zero. When no term is active N_active is taken as 1. A batch that yields
no triplets gives a zero loss that still backpropagates (zero gradients).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import LOSSES, MODEL_SECTIONS
from .base_loss import BaseEmbeddingLoss, check_embeddings_and_labels, check_scalar_loss
from .base_sampler import BaseTupleSampler, check_triplets
from .distance_weighted_sampler import DistanceWeightedSampler

__all__ = ["MarginConfig", "MarginLoss", "build_margin_loss"]


@MODEL_SECTIONS.register("margin")
@dataclass(frozen=True)
class MarginConfig:
    """The ``margin:`` section of a metric model: :class:`MarginLoss` and its distance-weighted sampler
    (registered as the model config section ``margin``, :data:`whaleflow.registry.MODEL_SECTIONS`)."""

    margin: float = 0.2
    beta_init: float = 1.2
    beta_lr: float = 0.01
    nu: float = 0.0
    per_class_beta: bool = True
    cutoff: float = 0.5
    nonzero_loss_cutoff: float = 1.4


# Added under the square root so the distance has a finite gradient when a == p.
_DIST_EPS = 1e-8


class MarginLoss(BaseEmbeddingLoss):
    """Margin loss over sampled triplets with a learned β.

    Args:
        num_classes: number of training classes (the size of the per-class β).
        margin: α, half the width of the band around β.
        beta_init: initial value of β.
        nu: ν, weight of the β regulariser.
        per_class_beta: one β per class (indexed by the anchor's label) or one global β.
        sampler: triplet sampler; default a :class:`DistanceWeightedSampler` with the
            paper's cut-offs.

    ``forward(embeddings, labels, generator=None)`` samples triplets with the sampler
    (using ``generator``) and returns the loss; ``forward_triplets`` takes the triplets
    directly. Embeddings are expected L2-normalised (the network's last step).
    Give ``beta_parameters()`` their own learning rate (``MarginConfig.beta_lr``).
    """

    def __init__(
        self,
        num_classes: int,
        margin: float = 0.2,
        beta_init: float = 1.2,
        nu: float = 0.0,
        per_class_beta: bool = True,
        sampler: BaseTupleSampler | None = None,
    ):
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if nu < 0:
            raise ValueError(f"nu must be >= 0, got {nu}")
        self.num_classes = int(num_classes)
        self.margin = float(margin)
        self.nu = float(nu)
        self.per_class_beta = bool(per_class_beta)
        size = self.num_classes if self.per_class_beta else 1
        self.beta = nn.Parameter(torch.full((size,), float(beta_init)))
        self.sampler = sampler if sampler is not None else DistanceWeightedSampler()

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, margin={self.margin}, nu={self.nu}, "
            f"per_class_beta={self.per_class_beta}, sampler={self.sampler!r}"
        )

    def beta_parameters(self) -> list[nn.Parameter]:
        """The learned boundary β, for an optimiser parameter group with its own LR."""
        return [self.beta]

    def compute_loss(
        self, embeddings: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        labels = labels.to(embeddings.device)
        a, p, n = self.sampler(embeddings, labels, generator)
        return self._triplet_loss(embeddings, labels, a, p, n)

    def forward_triplets(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        anchors: torch.Tensor,
        positives: torch.Tensor,
        negatives: torch.Tensor,
    ) -> torch.Tensor:
        """The loss of given triplets (index tensors into the batch)."""
        check_embeddings_and_labels(embeddings, labels)
        a, p, n = check_triplets((anchors, positives, negatives), embeddings, "MarginLoss.forward_triplets")
        loss = self._triplet_loss(embeddings, labels.to(embeddings.device), a, p, n)
        return check_scalar_loss(loss, type(self).__name__)

    def _triplet_loss(
        self, embeddings: torch.Tensor, labels: torch.Tensor, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor
    ) -> torch.Tensor:
        if a.numel() == 0:
            # Keep the graph connected so backward() and optimiser steps still work.
            return embeddings.sum() * 0.0 + self.beta.sum() * 0.0
        if self.per_class_beta:
            anchor_labels = labels[a]
            if bool(((anchor_labels < 0) | (anchor_labels >= self.num_classes)).any()):
                raise ValueError(
                    f"anchor labels must lie in [0, {self.num_classes}) for a per-class beta; "
                    f"got range [{int(anchor_labels.min())}, {int(anchor_labels.max())}]"
                )
            beta = self.beta[anchor_labels]
        else:
            beta = self.beta.expand(a.shape[0])
        if embeddings.dtype not in (torch.float32, torch.float64):
            embeddings = embeddings.float()  # bf16/fp16 distances are too coarse for a 0.2 margin
        d_ap = ((embeddings[a] - embeddings[p]).pow(2).sum(dim=1) + _DIST_EPS).sqrt()
        d_an = ((embeddings[a] - embeddings[n]).pow(2).sum(dim=1) + _DIST_EPS).sqrt()
        pos_loss = F.relu(d_ap - beta + self.margin)
        neg_loss = F.relu(beta - d_an + self.margin)
        active = ((pos_loss > 0).sum() + (neg_loss > 0).sum()).clamp_min(1).to(pos_loss.dtype)
        total = pos_loss.sum() + neg_loss.sum()
        if self.nu:
            total = total + self.nu * beta.sum()
        return total / active


@LOSSES.register("margin")
def build_margin_loss(num_classes: int, cfg: MarginConfig | None = None) -> MarginLoss:
    """Build a :class:`MarginLoss` (with its distance-weighted sampler) from a ``MarginConfig``."""
    cfg = cfg if cfg is not None else MarginConfig()
    sampler = DistanceWeightedSampler(cutoff=cfg.cutoff, nonzero_loss_cutoff=cfg.nonzero_loss_cutoff)
    return MarginLoss(
        num_classes=num_classes,
        margin=cfg.margin,
        beta_init=cfg.beta_init,
        nu=cfg.nu,
        per_class_beta=cfg.per_class_beta,
        sampler=sampler,
    )
