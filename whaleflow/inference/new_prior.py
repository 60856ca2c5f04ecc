"""The new-individual threshold from an expected share of new individuals among queries.

The Happywhale 2022 winner did not tune the threshold on validation: with a prior ``p``
for the share of test photos that show individuals absent from the catalogue, the
threshold is set on the test queries themselves so that the ``p`` least confident
(by their best known-individual score) get "new" first. The rule needs no labels,
so it cannot overfit validation, and it follows the test set's own score scale (a
larger test gallery raises every top score, which shifts a tuned threshold but not
this one).

:func:`prior_threshold` returns a threshold in the semantics of
:func:`whaleflow.inference.topk.insert_new_whale` (new first exactly when the top
score is ``< threshold``, compared in float32).
"""
from __future__ import annotations

import numpy as np

__all__ = ["prior_threshold", "new_first_share"]


def prior_threshold(top_scores: np.ndarray, prior: float) -> float:
    """A threshold under which ``round(prior · n)`` of the ``n`` top scores fall.

    ``top_scores`` is each query's best known-individual score (a matrix is reduced
    with its row maximum). The cut lies halfway between the ``m``-th and the
    ``m+1``-th lowest score; where they tie, it is the tied value itself, so ties stay
    on the known side and fewer than ``m`` queries get "new" first (never more).
    """
    x = np.asarray(top_scores, dtype=np.float32)
    if x.ndim == 2:
        x = x.max(axis=1) if x.shape[1] else np.zeros(len(x), np.float32)
    if not 0.0 <= float(prior) <= 1.0:
        raise ValueError(f"the new-individual prior must be in [0, 1], got {prior}")
    n = len(x)
    if n == 0:
        return 0.0
    s = np.sort(x)
    m = int(round(float(prior) * n))
    if m == 0:
        return float(s[0])                     # nothing is strictly below the lowest score
    if m >= n:
        span = float(s[-1] - s[0]) or 1.0
        return float(np.float32(s[-1] + 0.05 * span))  # every query below
    lo, hi = s[m - 1], s[m]
    t = np.float32(0.5 * (float(lo) + float(hi)))
    if not (lo < t <= hi):                     # a tie (or no float32 room between): keep ties known
        t = hi
    return float(t)


def new_first_share(top_scores: np.ndarray, threshold: float) -> float:
    """The share of queries that get "new" first at ``threshold``."""
    x = np.asarray(top_scores, dtype=np.float32)
    if x.ndim == 2:
        x = x.max(axis=1)
    return float((x < np.float32(threshold)).mean()) if len(x) else 0.0
