"""The arcface family's embedding net: backbone feature map → GeM → BN neck → unit vector."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class GeM(nn.Module):
    """Generalised mean pooling, ``(mean x^p)^(1/p)`` with a learned p: p = 1 is average
    pooling, p → ∞ max pooling; p ≈ 3 weights the strongest local responses (a notch, a
    scar) more than average pooling does, which retrieval needs."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.clamp(min=1.0)
        return x.float().clamp(min=self.eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


class ArcFaceNet(nn.Module):
    """Images → unit-norm embeddings, for a cosine (ArcFace) head."""

    def __init__(self, backbone: nn.Module, embedding_dim: int = 128, dropout: float = 0.0, gem_p: float = 3.0):
        super().__init__()
        self.backbone = backbone
        self.pool = GeM(gem_p)
        self.dropout = nn.Dropout(dropout)
        self.neck = nn.Linear(backbone.num_features, embedding_dim)
        self.bn = nn.BatchNorm1d(embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.pool(self.backbone.forward_features(images))
        emb = self.bn(self.neck(self.dropout(feats)))
        return F.normalize(emb.float(), dim=1)
