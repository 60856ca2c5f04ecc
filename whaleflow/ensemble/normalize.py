"""Per-model score normalisation, so that blending different families means something.

The families speak different scales: metric models give cosine similarities in
[-1, 1], siamese models sigmoid probabilities that pile up next to 0 and 1, the
classifier softmax probabilities whose bulk sits near 0. Summing them raw lets
whichever model has the widest spread win regardless of its weight, and makes the
blend's ``new_whale`` threshold meaningless.

The transform chosen here, :class:`ScoreNormalizer`, has two steps, both fitted on
the model's *validation* matrix only and then applied unchanged to its test matrix
(the test gallery is larger, so test statistics would differ and, worse, would leak
test information into the blend):

1. **Logit for probability-like matrices** (every value in [0, 1]). ``log(p/(1-p))``
   turns sigmoid outputs back into the pair head's logits and softmax outputs into
   log-odds, so "0.999 vs 0.99" becomes as distinct as "0.5 vs 0.1" — the region that
   separates the right individual from near misses is no longer squashed. Values are
   clipped to [1e-7, 1 − 1e-7] first.
2. **Z-score on the top of each row**: subtract the mean and divide by the standard
   deviation of every validation row's ``top_k`` (5) largest values. Those are the
   scores MAP@5 and the new_whale threshold act on; statistics of the whole matrix
   would be dominated by thousands of irrelevant classes and would change with the
   number of classes. After it, "one standard deviation above a typical top-5 score"
   means the same for every model, so blend weights in [0, 1] are comparable.

Both steps are strictly monotone (apart from the clipping), so a model's own ranking
and its best achievable MAP@5 are unchanged: only blends are affected.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["ScoreNormalizer"]

_EPS = 1e-7


@dataclass
class ScoreNormalizer:
    """A fitted, serialisable monotone transform of one model's class scores."""

    logit: bool = False
    mean: float = 0.0
    std: float = 1.0
    top_k: int = 5

    @classmethod
    def fit(cls, val_scores: np.ndarray, top_k: int = 5, logit: bool | None = None) -> "ScoreNormalizer":
        """Fit on a validation score matrix (n, C).

        ``logit=None`` decides from the values: logit when all lie in [0, 1].
        """
        x = np.asarray(val_scores, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"need a non-empty (n, C) validation score matrix, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("validation scores contain NaN or infinite values")
        if logit is None:
            logit = bool(x.min() >= 0.0 and x.max() <= 1.0)
        norm = cls(logit=bool(logit), top_k=int(top_k))
        if logit:
            x = _logit(x)
        k = min(norm.top_k, x.shape[1])
        top = np.partition(x, x.shape[1] - k, axis=1)[:, x.shape[1] - k:]
        std = float(top.std())
        if not std > 1e-12:  # every top score equal: fall back to the whole matrix, then to 1
            std = float(x.std())
        norm.mean = float(top.mean())
        norm.std = std if std > 1e-12 else 1.0
        return norm

    def transform(self, scores: np.ndarray) -> np.ndarray:
        """Apply the fitted transform (the same one for validation and test), float32."""
        x = np.asarray(scores, dtype=np.float64)
        if self.logit:
            x = _logit(x)
        return ((x - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ScoreNormalizer":
        return cls(logit=bool(d["logit"]), mean=float(d["mean"]), std=float(d["std"]), top_k=int(d.get("top_k", 5)))


def _logit(x: np.ndarray) -> np.ndarray:
    p = np.clip(x, _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)
