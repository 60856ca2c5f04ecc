"""Class scores: what every model hands to the ensemble, in one shared form.

A model's output for a split is a matrix of scores (queries × known individuals,
higher = more likely) plus the image names, the class names in column order, and
for validation the true labels. Saving them as ``.npz`` per model and split lets
the ensemble driver read any number of models without loading one network.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import save_npz


@dataclass
class ClassScores:
    scores: np.ndarray          # (n_images, n_classes) float32
    images: np.ndarray          # (n_images,) str
    classes: np.ndarray         # (n_classes,) str, known individuals only (no new_whale)
    truth: np.ndarray | None = None  # (n_images,) str labels, validation only

    def save(self, path: str | Path) -> Path:
        arrays = dict(scores=self.scores.astype(np.float32), images=self.images.astype(str), classes=self.classes.astype(str))
        if self.truth is not None:
            arrays["truth"] = np.asarray(self.truth).astype(str)
        return save_npz(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "ClassScores":
        with np.load(path, allow_pickle=False) as data:
            truth = data["truth"] if "truth" in data.files else None
            return cls(scores=data["scores"], images=data["images"], classes=data["classes"], truth=truth)

    def aligned(self, classes: np.ndarray, images: np.ndarray) -> "ClassScores":
        """The same scores with columns and rows put in the given order.

        Missing classes get the row minimum so they never outrank a class the model
        actually scored.
        """
        col = {c: i for i, c in enumerate(self.classes)}
        row = {im: i for i, im in enumerate(self.images)}
        missing_rows = [im for im in images if im not in row]
        if missing_rows:
            raise ValueError(f"scores lack {len(missing_rows)} images, e.g. {missing_rows[:3]}")
        rows = self.scores[[row[im] for im in images]]
        out = np.repeat(rows.min(axis=1, keepdims=True), len(classes), axis=1).astype(np.float32)
        idx = [(j, col[c]) for j, c in enumerate(classes) if c in col]
        if idx:
            dst, src = zip(*idx)
            out[:, list(dst)] = rows[:, list(src)]
        truth = None
        if self.truth is not None:
            truth = self.truth[[row[im] for im in images]]
        return ClassScores(out, np.asarray(images), np.asarray(classes), truth)


def aggregate_by_class(image_scores: np.ndarray, gallery_labels: np.ndarray, num_classes: int, how: str = "max") -> np.ndarray:
    """Turn query × gallery-image scores into query × class scores (max or mean).

    Vectorised over classes: the gallery columns are sorted by class once and each
    class's contiguous run is reduced with ``np.maximum.reduceat`` / ``np.add.reduceat``
    (one pass over the matrix, not one masked copy per class: at 15,587 classes the
    loop was the slowest part of scoring). Classes without a gallery image get the
    smallest score of the matrix.
    """
    if how not in ("max", "mean"):
        raise ValueError(f"unknown class aggregation {how!r}; use max or mean")
    image_scores = np.asarray(image_scores, dtype=np.float32)
    gallery_labels = np.asarray(gallery_labels, dtype=np.int64)
    n = image_scores.shape[0]
    if gallery_labels.shape != (image_scores.shape[1],):
        raise ValueError(f"{image_scores.shape[1]} gallery columns but {gallery_labels.shape} labels")
    out = np.full((n, num_classes), -np.inf, dtype=np.float32)
    if gallery_labels.size and n:
        order = np.argsort(gallery_labels, kind="stable")
        sorted_labels = gallery_labels[order]
        starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
        present = sorted_labels[starts]
        cols = image_scores[:, order]
        if how == "max":
            out[:, present] = np.maximum.reduceat(cols, starts, axis=1)
        else:
            counts = np.diff(np.r_[starts, len(order)]).astype(np.float32)
            out[:, present] = np.add.reduceat(cols, starts, axis=1, dtype=np.float64).astype(np.float32) / counts
    finite = np.isfinite(out)
    if not finite.all():
        out[~finite] = out[finite].min() if finite.any() else 0.0
    return out
