"""Losses and triplet samplers; importing this package registers "margin" and "pair" in LOSSES.

* :class:`MarginLoss` with :class:`DistanceWeightedSampler` — approach 2 (metric learning).
* :class:`PairLoss` — BCE for the siamese pair head (approach 1).

Base classes check inputs and outputs so each loss file holds only its math.
"""
from .base_loss import BaseEmbeddingLoss, BasePairLoss, check_embeddings_and_labels
from .base_sampler import BaseTupleSampler, check_triplets
from .distance_weighted_sampler import DistanceWeightedSampler
from .margin_loss import MarginLoss, build_margin_loss
from .pair_loss import PairLoss, build_pair_loss

__all__ = [
    "BaseEmbeddingLoss",
    "BasePairLoss",
    "BaseTupleSampler",
    "DistanceWeightedSampler",
    "MarginLoss",
    "PairLoss",
    "build_margin_loss",
    "build_pair_loss",
    "check_embeddings_and_labels",
    "check_triplets",
]
