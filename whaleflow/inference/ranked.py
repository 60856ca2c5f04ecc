"""Each query's top-k and its AP for every new_whale position: MAP@k at any threshold, exactly.

MAP@k as a function of the new_whale threshold only changes where the threshold
crosses one of the top-k values, so :func:`best_threshold` sweeps those values (not a
grid) and finds the optimum exactly; it is invariant under each model's monotone
normalisation. The semantics are those of :func:`.topk.insert_new_whale`.

Rows may carry weights (:mod:`whaleflow.ensemble.gallery_mix`: validation queries standing for
the test queries' mix of gallery sizes); every mean is then a weighted mean. It lives in
``inference/`` (not ``ensemble/``) because :func:`.topk.tune_threshold` needs it and
inference sits below the ensemble: nothing in ``inference/`` imports ``ensemble/``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RankedTopK", "best_threshold"]


@dataclass
class RankedTopK:
    """Each query's top-k values and the AP it gets for every new_whale position.

    ``ap[r, p]`` is row r's average precision when new_whale is inserted at position
    ``p`` (``p = k``: not inserted), i.e. when exactly ``p`` top-k values reach the
    threshold. ``weights`` (None: all 1) weigh the rows in every mean.
    """

    values: np.ndarray  # (n, k) float32, descending
    ap: np.ndarray      # (n, k + 1) float64
    weights: np.ndarray | None = None

    @classmethod
    def from_scores(cls, scores: np.ndarray, truth_idx: np.ndarray, k: int = 5,
                    weights: np.ndarray | None = None) -> "RankedTopK":
        scores = np.asarray(scores, dtype=np.float32)
        n, c = scores.shape
        k = min(k, c)
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        idx, vals = np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)
        truth = np.asarray(truth_idx, dtype=np.int64)
        hits = idx == truth[:, None]
        h = np.where(hits.any(axis=1), hits.argmax(axis=1), -1)       # hit column, -1 = none
        p = np.arange(k + 1)[None, :]
        pos = np.where(p <= h[:, None], h[:, None] + 1, h[:, None])   # new_whale pushes the hit down
        known = np.where((h[:, None] >= 0) & (pos < k), 1.0 / (np.maximum(pos, 0) + 1.0), 0.0)
        new = np.where(p < k, 1.0 / (p + 1.0), 0.0)
        ap = np.where((truth == -1)[:, None], new, known)
        return cls(vals, ap, None if weights is None else np.asarray(weights, dtype=np.float64))

    def subset(self, rows: np.ndarray) -> "RankedTopK":
        return RankedTopK(self.values[rows], self.ap[rows], None if self.weights is None else self.weights[rows])

    @property
    def w(self) -> np.ndarray:
        return np.ones(len(self.values)) if self.weights is None else self.weights

    @property
    def total_weight(self) -> float:
        return float(self.w.sum())

    def ap_at(self, threshold: float) -> np.ndarray:
        """Each row's average precision at one threshold (compared in float32, as
        ``insert_new_whale`` does)."""
        counts = (self.values >= np.float32(threshold)).sum(axis=1)
        return self.ap[np.arange(len(counts)), counts]

    def map_at(self, threshold: float) -> float:
        """(Weighted) MAP@k at one threshold."""
        if len(self.values) == 0 or not self.total_weight > 0:
            return 0.0
        return float((self.ap_at(threshold) * self.w).sum() / self.total_weight)

    def curve(self, thresholds: np.ndarray) -> np.ndarray:
        return np.array([self.map_at(t) for t in thresholds])


def best_threshold(ranked: RankedTopK) -> tuple[float, float]:
    """The threshold that maximises (weighted) MAP@k over ``ranked``'s rows, and that MAP@k.

    Sweeps every distinct top-k value (MAP only changes there) and returns a float32
    value strictly between the optimal value and the next lower one where possible,
    so the same images fall on each side but the cut is not on a sample.
    """
    vals, ap, w = ranked.values, ranked.ap, ranked.w
    n, k = vals.shape
    if n == 0 or not w.sum() > 0:
        return 0.0, 0.0
    flat = vals.reshape(-1)
    delta = ((ap[:, 1:] - ap[:, :-1]) * w[:, None]).reshape(-1)  # gain when value (r, j) reaches the threshold
    order = np.argsort(-flat, kind="stable")
    sorted_vals, gains = flat[order], np.cumsum(delta[order])
    last = np.r_[sorted_vals[1:] != sorted_vals[:-1], True]  # last event of each distinct value
    uniq, cum = sorted_vals[last], gains[last]
    base = (ap[:, 0] * w).sum()
    maps = np.r_[base, base + cum] / w.sum()  # candidate 0: above every value
    best = int(np.argmax(maps))
    span = float(uniq[0] - uniq[-1]) or 1.0
    if best == 0:
        upper, lower = float(uniq[0]) + 0.05 * span, float(uniq[0])
    elif best == len(uniq):
        upper, lower = float(uniq[-1]), float(uniq[-1]) - 0.05 * span
    else:
        upper, lower = float(uniq[best - 1]), float(uniq[best])
    t = np.float32(0.5 * (upper + lower))
    if not (np.float32(lower) < t <= np.float32(upper)):
        t = np.float32(upper)
    return float(t), float(maps[best])
