"""MAP@5 exactly as Kaggle scored "Humpback Whale Identification".

Each image has one true label. Only the first ``k`` predicted labels count, at the
positions given (repeats included); an image scores ``1/position`` of its first
correct label and 0 if none, so a correct label repeated later adds nothing. The
score is the mean over images.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def average_precision_at_k(predicted: Sequence[str], actual: str, k: int = 5) -> float:
    """Precision at the first hit among the first ``k`` predictions (1/position)."""
    for position, label in enumerate(list(predicted)[:k], start=1):
        if label == actual:
            return 1.0 / position
    return 0.0


def map_at_k(predicted: Sequence[Sequence[str]], actual: Sequence[str], k: int = 5) -> float:
    """Mean of :func:`average_precision_at_k` over images."""
    if len(predicted) != len(actual):
        raise ValueError(f"{len(predicted)} predictions for {len(actual)} labels")
    if len(actual) == 0:
        return 0.0
    return float(np.mean([average_precision_at_k(p, a, k) for p, a in zip(predicted, actual)]))


def map_at_k_indices(top: np.ndarray, truth: np.ndarray) -> float:
    """Vectorised MAP@k for integer predictions ``top`` (n, k) and labels ``truth`` (n,).

    Used on hot paths (threshold and blend tuning). ``top`` holds distinct classes per
    row, as produced by a top-k over scores, so the first hit is the only hit.
    """
    if len(truth) == 0:
        return 0.0
    hits = top == np.asarray(truth)[:, None]
    k = top.shape[1]
    weights = 1.0 / np.arange(1, k + 1)
    return float((hits * weights).max(axis=1).mean())
