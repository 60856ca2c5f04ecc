"""Scores for classes that one part of a model cannot score, on the scale of those it can.

Two places score some classes with every part and others with only some: a blend whose
classifier on embeddings was trained on a fixed set of individuals, and the arcface
family whose head knows only its training individuals (both meet individuals enrolled
after training). Using the remaining parts' score as it is puts those classes on another
scale: the arcface head's cosine to a non-matching individual is near 0 while the best
gallery cosine is 0.3–0.6, so an enrolled individual scored by its gallery cosine alone
outranks every trained one. Measured on a small trained run with four enrolled
individuals: they took the first place for 83 % of the run's own test photos and MAP@5
fell from 0.40 to 0.19.

A line fitted through the known classes (full ~ partial) is no cure: it predicts the
typical full score at that partial score, which is a non-matching individual's, and on the
same run it sank every enrolled individual out of the five, even for photos of them.

So, per query, the partial score is mapped onto the full score by rank among the classes
that have both (quantile mapping: the known classes' partial scores sorted against their
full scores sorted, interpolated): an enrolled individual whose partial score would rank
r-th among the trained ones gets the r-th full score, so it is ranked by its own
evidence as a trained one with that evidence would be, neither lifted nor sunk. Above the
best known partial score the map goes on with the slope of its top ``top`` classes (the
ratio of the spreads of the two sorted scores there), so an enrolled individual can still
come first, by the margin its evidence gives.
"""
from __future__ import annotations

import numpy as np

TOP = 32  # known classes per query whose spread sets the slope beyond the known range


def impute_columns(full: np.ndarray, partial: np.ndarray, known: np.ndarray, top: int = TOP) -> np.ndarray:
    """``full`` (n, C) with its columns outside ``known`` replaced by their ``partial`` scores
    mapped per row onto ``full``'s scale by rank among the ``known`` columns (see the module).

    With no known column, the partial scores are all there is and are returned as they are.
    """
    known = np.asarray(known, bool)
    out = np.array(full, dtype=np.float32, copy=True)
    unknown = ~known
    if not unknown.any():
        return out
    partial = np.asarray(partial, np.float32)
    if not known.any():
        out[:, unknown] = partial[:, unknown]
        return out
    xs = np.sort(partial[:, known].astype(np.float64), axis=1)
    fs = np.sort(out[:, known].astype(np.float64), axis=1)
    k = min(int(top), xs.shape[1])
    sx, sf = xs[:, -k:].std(axis=1), fs[:, -k:].std(axis=1)
    slope = np.where(sx > 1e-12, sf / np.where(sx > 1e-12, sx, 1.0), 1.0)
    x = partial[:, unknown].astype(np.float64)
    y = np.empty_like(x)
    for r in range(len(x)):  # np.interp is one-dimensional; rows are a chunk of photos
        y[r] = np.interp(x[r], xs[r], fs[r])
        hi, lo = x[r] > xs[r, -1], x[r] < xs[r, 0]
        y[r, hi] = fs[r, -1] + slope[r] * (x[r, hi] - xs[r, -1])
        y[r, lo] = fs[r, 0] + slope[r] * (x[r, lo] - xs[r, 0])
    out[:, unknown] = y.astype(np.float32)
    return out
