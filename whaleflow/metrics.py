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


#: gallery-size bins for per-bin MAP@5: (lowest, highest, label). Most real individuals
#: have one or two photos, and a query's chance of a hit depends on that count more than
#: on anything else, so one overall figure hides the regime that matters.
GALLERY_BINS = ((1, 1, "1"), (2, 2, "2"), (3, 4, "3-4"), (5, 8, "5-8"), (9, None, "9+"))
NEW_BIN = "new"


def gallery_bin_label(size: int) -> str:
    """The bin of a query whose individual has ``size`` gallery photos (0: a new individual)."""
    if size <= 0:
        return NEW_BIN
    for lo, hi, label in GALLERY_BINS:
        if size >= lo and (hi is None or size <= hi):
            return label
    raise AssertionError(size)


def ap_by_bin(ap: Sequence[float], gallery_size: Sequence[int]) -> dict[str, dict[str, float]]:
    """Mean of per-query average precisions per gallery-size bin: ``{label: {"map5": …, "n":
    queries}}`` for each bin that has queries (``new`` for individuals absent from the
    gallery, size 0), plus ``all``."""
    ap = np.asarray(ap, dtype=np.float64)
    labels = np.array([gallery_bin_label(int(s)) for s in gallery_size], dtype=object)
    out = {}
    for label in [b[2] for b in GALLERY_BINS] + [NEW_BIN]:
        sel = labels == label
        if sel.any():
            out[label] = {"map5": float(ap[sel].mean()), "n": int(sel.sum())}
    out["all"] = {"map5": float(ap.mean()) if len(ap) else 0.0, "n": int(len(ap))}
    return out


def map_at_k_by_bin(predicted: Sequence[Sequence[str]], actual: Sequence[str], gallery_size: Sequence[int],
                    k: int = 5) -> dict[str, dict[str, float]]:
    """MAP@k per gallery-size bin of ranked label lists (see :func:`ap_by_bin`)."""
    if not len(predicted) == len(actual) == len(gallery_size):
        raise ValueError(f"{len(predicted)} predictions, {len(actual)} labels, {len(gallery_size)} gallery sizes")
    return ap_by_bin([average_precision_at_k(p, a, k) for p, a in zip(predicted, actual)], gallery_size)
