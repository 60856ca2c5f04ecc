"""Embedding network for metric learning: backbone → neck → L2-normalised vector."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class EmbeddingNet(nn.Module):
    """Maps images to unit-norm embeddings; dot products are cosine similarities.

    The neck (dropout, linear, batch norm) lets the embedding size be chosen freely
    and keeps the backbone's pooled features untouched for the other families.
    """

    def __init__(self, backbone: nn.Module, embedding_dim: int = 128, dropout: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.neck = nn.Linear(backbone.num_features, embedding_dim)
        self.bn = nn.BatchNorm1d(embedding_dim)
        self.embedding_dim = embedding_dim

    def set_dropout(self, p: float) -> None:
        self.dropout.p = p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(images)
        emb = self.bn(self.neck(self.dropout(feats)))
        return F.normalize(emb.float(), dim=1)
