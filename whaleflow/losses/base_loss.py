"""Base classes for losses: they check inputs and outputs, subclasses write only the math.

Following pytorch-metric-learning, a loss subclass implements ``compute_loss`` and
never re-validates its arguments: shape, dtype and length errors are caught here, once,
with a message that says which argument is wrong, instead of surfacing as an opaque
broadcasting error (or a device-side assert on the GPU) deep inside the math.
"""
from __future__ import annotations

import abc

import torch
from torch import nn


def check_embeddings_and_labels(embeddings: torch.Tensor, labels: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``embeddings`` is (B, D) floating and ``labels`` is (B,) integer."""
    if not isinstance(embeddings, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("embeddings and labels must be torch tensors")
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (batch, dim), got shape {tuple(embeddings.shape)}")
    if not embeddings.is_floating_point():
        raise ValueError(f"embeddings must be floating point, got {embeddings.dtype}")
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D (batch,), got shape {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class ids, got {labels.dtype}")
    if labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"embeddings and labels disagree on batch size: {embeddings.shape[0]} vs {labels.shape[0]}"
        )


def check_scalar_loss(loss: torch.Tensor, owner: str) -> torch.Tensor:
    """Return ``loss`` if it is a 0-dim floating tensor; otherwise the subclass has a bug."""
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0 or not loss.is_floating_point():
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise RuntimeError(f"{owner}.compute_loss must return a 0-dim float tensor, got {shape}")
    return loss


class BaseEmbeddingLoss(nn.Module, abc.ABC):
    """A loss on a batch of embeddings with integer class labels.

    ``forward(embeddings, labels, **kwargs)`` validates the batch, calls
    ``compute_loss`` and validates that a scalar came back.
    """

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, **kwargs) -> torch.Tensor:
        check_embeddings_and_labels(embeddings, labels)
        return check_scalar_loss(self.compute_loss(embeddings, labels, **kwargs), type(self).__name__)

    @abc.abstractmethod
    def compute_loss(self, embeddings: torch.Tensor, labels: torch.Tensor, **kwargs) -> torch.Tensor:
        """The loss itself, on checked inputs: a 0-dim float tensor."""


class BasePairLoss(nn.Module, abc.ABC):
    """A loss on pair logits (one per pair) and binary targets (1 = same individual).

    Accepts logits of shape (B,) or (B, 1) and targets of the same number of elements
    as bool, integer or float; ``compute_loss`` receives both flattened, targets as float.
    """

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
            raise TypeError("logits and targets must be torch tensors")
        if not logits.is_floating_point():
            raise ValueError(f"logits must be floating point, got {logits.dtype}")
        if logits.ndim == 2 and logits.shape[1] == 1:
            logits = logits[:, 0]
        if logits.ndim != 1:
            raise ValueError(f"logits must have shape (B,) or (B, 1), got {tuple(logits.shape)}")
        targets = targets.reshape(-1)
        if targets.shape[0] != logits.shape[0]:
            raise ValueError(f"logits and targets disagree on batch size: {logits.shape[0]} vs {targets.shape[0]}")
        targets = targets.to(dtype=logits.dtype)
        return check_scalar_loss(self.compute_loss(logits, targets), type(self).__name__)

    @abc.abstractmethod
    def compute_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss on flattened logits and float targets: a 0-dim float tensor."""
