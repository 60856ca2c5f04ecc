"""Sub-center ArcFace with per-class (dynamic) margins.

ArcFace (Deng et al. 2019) scores an embedding x against class weights W_c by the
cosine of their angle θ_c and, for the true class y only, adds an angular margin:

    logit_c = s · cos θ_c          (c ≠ y)
    logit_y = s · cos(θ_y + m_y)   (or s · (cos θ_y − m_y · sin m_y) once θ_y + m_y > π,
                                     where cos(θ + m) would start to rise again)
    loss    = cross-entropy(logits, y)

Sub-center ArcFace (Deng et al. 2020) gives each class K centres and uses the closest
(max cosine): noisy or very varied photos of one individual can sit near a secondary
centre instead of dragging the main one. The Happywhale 2022 winner's dynamic margin
gives individuals with few photos larger margins: m_c = a · n_c^(−λ) + b, where n_c is
the number of training photos of c (:func:`dynamic_margins`).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base_loss import BaseEmbeddingLoss

__all__ = ["SubCenterArcFaceLoss", "dynamic_margins"]

_EPS = 1e-6  # keeps sin θ = sqrt(1 − cos²) differentiable at cos = ±1


def dynamic_margins(counts, a: float = 0.45, lam: float = 0.25, b: float = 0.05) -> np.ndarray:
    """Per-class margins ``a · n^(−λ) + b`` from per-class photo counts ``n`` (≥ 1)."""
    n = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    return (a * n ** (-lam) + b).astype(np.float32)


class SubCenterArcFaceLoss(BaseEmbeddingLoss):
    """The cosine head and its loss. ``margins``: one float or one per class."""

    def __init__(self, num_classes: int, embedding_dim: int, *, subcenters: int = 3, scale: float = 30.0,
                 margins=0.3):
        super().__init__()
        if num_classes < 1 or subcenters < 1:
            raise ValueError("num_classes and subcenters must be ≥ 1")
        self.num_classes, self.subcenters, self.scale = int(num_classes), int(subcenters), float(scale)
        self.weight = nn.Parameter(torch.empty(num_classes * subcenters, embedding_dim))
        nn.init.xavier_uniform_(self.weight)
        m = torch.as_tensor(margins, dtype=torch.float32).reshape(-1)
        if m.numel() == 1:
            m = m.expand(num_classes).clone()
        if m.numel() != num_classes:
            raise ValueError(f"{m.numel()} margins for {num_classes} classes")
        self.register_buffer("margins", m)

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, C) cosine of each embedding with its closest centre of each class."""
        cos = F.linear(F.normalize(embeddings.float(), dim=1), F.normalize(self.weight.float(), dim=1))
        return cos.view(len(embeddings), self.num_classes, self.subcenters).amax(dim=2)

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scaled logits with the margin applied to each row's true class."""
        cos = self.cosine(embeddings).clamp(-1 + _EPS, 1 - _EPS)
        target = cos.gather(1, labels[:, None])
        m = self.margins[labels][:, None]
        sin = torch.sqrt(1.0 - target * target)
        with_margin = target * torch.cos(m) - sin * torch.sin(m)
        # past θ + m = π, cos(θ + m) would grow again: fall back to a linear penalty
        fallback = target - m * torch.sin(math.pi - m)
        target_logit = torch.where(target > torch.cos(math.pi - m), with_margin, fallback)
        return cos.scatter(1, labels[:, None], target_logit) * self.scale

    def compute_loss(self, embeddings: torch.Tensor, labels: torch.Tensor, **kwargs) -> torch.Tensor:
        if int(labels.max()) >= self.num_classes or int(labels.min()) < 0:
            raise ValueError(f"labels must be in [0, {self.num_classes}), got {int(labels.min())}..{int(labels.max())}")
        return F.cross_entropy(self.logits(embeddings, labels), labels)
