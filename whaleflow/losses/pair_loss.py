"""Binary cross-entropy on the siamese pair head's logit (target 1 = same individual).

The pair head ends in one logit per pair; the sigmoid of it is the probability that
both images show the same individual. Working on logits (``binary_cross_entropy_with_logits``)
rather than probabilities is the numerically stable form. ``pos_weight`` scales the
loss of same-individual pairs, for batches that are not balanced 50/50.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..registry import LOSSES
from .base_loss import BasePairLoss

__all__ = ["PairLoss", "build_pair_loss"]


class PairLoss(BasePairLoss):
    """Mean BCE-with-logits over pairs: ``forward(logits (B,) or (B, 1), targets (B,)) -> loss``."""

    def __init__(self, pos_weight: float = 1.0):
        super().__init__()
        if not pos_weight > 0:
            raise ValueError(f"pos_weight must be > 0, got {pos_weight}")
        self.pos_weight = float(pos_weight)

    def extra_repr(self) -> str:
        return f"pos_weight={self.pos_weight}"

    def compute_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        pos_weight = None
        if self.pos_weight != 1.0:
            pos_weight = torch.tensor(self.pos_weight, dtype=logits.dtype, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)


@LOSSES.register("pair")
def build_pair_loss(num_classes: int | None = None, cfg=None, pos_weight: float = 1.0) -> PairLoss:
    """Build a :class:`PairLoss`.

    ``num_classes`` and ``cfg`` are accepted (and unused) so every loss builds with the
    same call, ``LOSSES.build(name, num_classes=..., cfg=...)``.
    """
    return PairLoss(pos_weight=pos_weight)
