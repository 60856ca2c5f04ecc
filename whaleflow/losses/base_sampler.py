"""Base class for triplet samplers: it checks the batch and the returned indices.

A sampler turns a labelled batch into index tensors ``(anchors, positives, negatives)``
that a triplet loss consumes. Subclasses implement ``sample``; the base class makes
sure every sampler returns three 1-D ``int64`` tensors of equal length on the
embeddings' device, with every index inside the batch, so a loss never has to
second-guess its sampler.
"""
from __future__ import annotations

import abc

import torch

from .base_loss import check_embeddings_and_labels

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class BaseTupleSampler(abc.ABC):
    """Callable ``sampler(embeddings, labels, generator=None) -> (a, p, n)``."""

    def __call__(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> Triplets:
        check_embeddings_and_labels(embeddings, labels)
        out = self.sample(embeddings, labels, generator)
        return check_triplets(out, embeddings, f"{type(self).__name__}.sample")

    @abc.abstractmethod
    def sample(
        self, embeddings: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None
    ) -> Triplets:
        """Index tensors (anchors, positives, negatives) drawn from the batch."""


def check_triplets(out, embeddings: torch.Tensor, owner: str) -> Triplets:
    """Return ``out`` as three 1-D int64 index tensors on the embeddings' device, or raise.

    ``owner`` names who produced them (a sampler, or a caller of ``forward_triplets``).
    """
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise ValueError(f"{owner}: triplets must be a tuple (anchors, positives, negatives)")
    batch = embeddings.shape[0]
    fixed = []
    for part in out:
        if not isinstance(part, torch.Tensor) or part.ndim != 1 or part.dtype != torch.long:
            what = f"{part.dtype} {tuple(part.shape)}" if isinstance(part, torch.Tensor) else type(part).__name__
            raise ValueError(f"{owner}: triplet indices must be 1-D int64 tensors, got {what}")
        if part.shape[0] != out[0].shape[0]:
            raise ValueError(f"{owner}: anchor, positive and negative indices differ in length")
        fixed.append(part.to(embeddings.device))
    every = torch.cat(fixed)
    if every.numel() and bool(((every < 0) | (every >= batch)).any()):
        raise ValueError(f"{owner}: a triplet index is outside the batch of {batch}")
    return fixed[0], fixed[1], fixed[2]
