"""Weighted blends of several models' class scores on one class list and image order.

Models are trained on the same split, but nothing forces their score files to list
images or classes in the same order (and the classifier or a model that skipped a
class may list fewer classes). :func:`align_all` puts every model on a common
class list (the sorted union) and a common image order; a class a model never scored
gets that row's minimum (:meth:`ClassScores.aligned`), so it can never outrank a
class the model did score. :func:`blend_matrices` is then a plain weighted sum.

Scores are expected to be normalised first (:mod:`.normalize`): weights only mean
something when the models share a scale. Weights are non-negative — a negative
weight would reward a model for being wrong — and are normalised to sum to 1 so the
blend stays on the normalised scale and a tuned threshold keeps its meaning.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..inference import ClassScores

__all__ = ["align_all", "blend", "blend_matrices", "common_classes", "normalize_weights"]


def common_classes(scores: Sequence[ClassScores]) -> np.ndarray:
    """The sorted union of every model's classes."""
    if not scores:
        raise ValueError("no class scores given")
    return np.array(sorted(set().union(*(map(str, s.classes) for s in scores))))


def align_all(scores: Sequence[ClassScores], classes: np.ndarray, images: np.ndarray) -> list[np.ndarray]:
    """Each model's score matrix with rows in ``images`` order and columns in ``classes`` order."""
    return [s.aligned(np.asarray(classes), np.asarray(images)).scores for s in scores]


def normalize_weights(weights: Sequence[float]) -> np.ndarray:
    """Check weights are finite and ≥ 0 with a positive sum, and scale them to sum to 1."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size == 0:
        raise ValueError("no weights given")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"blend weights must be finite and >= 0, got {w.tolist()}")
    total = w.sum()
    if not total > 0:
        raise ValueError("blend weights are all zero")
    return w / total


def blend_matrices(matrices: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """``Σ w_m · S_m`` over aligned (n, C) matrices, with weights normalised to sum to 1.

    Models with weight 0 are skipped, so a one-hot weight vector returns exactly that
    model's matrix.
    """
    if len(matrices) != len(np.asarray(weights).reshape(-1)):
        raise ValueError(f"{len(matrices)} matrices but {len(np.asarray(weights).reshape(-1))} weights")
    w = normalize_weights(weights)
    shape = np.shape(matrices[0])
    out: np.ndarray | None = None
    for m, wm in zip(matrices, w):
        if np.shape(m) != shape:
            raise ValueError(f"matrices are not aligned: {np.shape(m)} vs {shape}")
        if wm == 0.0:
            continue
        term = np.asarray(m, dtype=np.float32) * np.float32(wm)
        out = term if out is None else out + term
    assert out is not None  # normalize_weights guarantees one positive weight
    return out.astype(np.float32, copy=False)


def blend(
    scores: Sequence[ClassScores],
    weights: Sequence[float],
    classes: np.ndarray | None = None,
    images: np.ndarray | None = None,
) -> ClassScores:
    """Blend already-normalised :class:`ClassScores` into one.

    ``classes`` defaults to the union of the models' classes, ``images`` to the first
    model's order; the truth (validation) comes from the first model that has one.
    """
    if not scores:
        raise ValueError("no class scores given")
    classes = common_classes(scores) if classes is None else np.asarray(classes)
    images = np.asarray(scores[0].images) if images is None else np.asarray(images)
    mats = align_all(scores, classes, images)
    truth = None
    for s in scores:
        if s.truth is not None:
            truth = s.aligned(classes, images).truth
            break
    return ClassScores(blend_matrices(mats, weights), images, classes, truth)
