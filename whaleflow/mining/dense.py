"""Dense LAP mining on an N×N score matrix (higher = more similar).

Hard negatives: one linear assignment over the whole matrix that *maximises* the
total score with same-individual cells (the diagonal included) forbidden, so every
image gets one distinct, most confusable image of another individual — distinct
because an assignment is a permutation, which spreads the hard examples over the
data instead of sending every image to the same few look-alikes.

Hard positives: the same inside each individual, *minimising* the score (least
similar partner), the diagonal forbidden; an individual with a single image is
paired with itself (with augmentation that is still a useful positive).

Noise: Gaussian noise of std ``noise`` is added to the scores before solving
(large early in training, annealed: :class:`whaleflow.mining.NoiseSchedule`).

Infeasible problems: a full assignment avoiding same-individual cells exists iff no
individual has more than half the images (Hall's theorem on the complete
multipartite graph). When one does, the forbidden cells get a finite penalty larger
than any gain in total score, so the solver uses as few of them as possible; the
rows that still land on a forbidden cell take their single best allowed column
instead (those partners may repeat). A row with no allowed column at all (the data
hold one individual) gets ``-1``. ``info["fallback_rows"]`` counts such rows.

Solver: ``scipy.optimize.linear_sum_assignment`` (O(N³), about 1.5 min and several
GB at N = 15,697; :mod:`whaleflow.mining.sparse` is the scalable path).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.optimize import linear_sum_assignment

NO_PARTNER = -1
_ROW_BLOCK = 1024


def as_rng(rng) -> np.random.Generator:
    """A Generator from a Generator, a seed or None (fresh entropy)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def label_codes(labels, n: int) -> np.ndarray:
    """Labels (any hashable dtype) → int64 codes; checks the length."""
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    return np.unique(labels, return_inverse=True)[1].astype(np.int64).reshape(n)


def check_square(scores) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"scores must be a square N×N matrix, got shape {scores.shape}")
    return scores


def noisy_scores(scores: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """A float64 copy of ``scores`` plus N(0, noise²), drawn row block by row block.

    Drawing in C order row blocks gives the same numbers as one (N, N) draw, so the
    sparse path on a score matrix reproduces the dense path's noise exactly. The
    normals are drawn in float32: a third faster (N² of them: seconds at HWI scale)
    and precise enough for noise.
    """
    if noise < 0:
        raise ValueError(f"noise must be ≥ 0, got {noise}")
    out = np.array(scores, dtype=np.float64, copy=True)
    if not np.isfinite(out).all():
        raise ValueError("scores contain NaN or inf (forbidden cells come from labels, not from inf scores)")
    if noise > 0:
        for s in range(0, out.shape[0], _ROW_BLOCK):
            blk = out[s : s + _ROW_BLOCK]
            blk += noise * rng.standard_normal(blk.shape, dtype=np.float32)
    return out


def assignable(row_codes: np.ndarray, col_codes: np.ndarray) -> bool:
    """Does an assignment of every row to a distinct column of another label exist?"""
    R, C = len(row_codes), len(col_codes)
    if R > C:
        return False
    m = int(max(row_codes.max(initial=0), col_codes.max(initial=0))) + 1
    both = np.bincount(row_codes, minlength=m) + np.bincount(col_codes, minlength=m)
    return bool((both <= C).all())


def assign_max(
    scores: np.ndarray, row_codes: np.ndarray, col_codes: np.ndarray, *, info: dict | None = None
) -> np.ndarray:
    """Column per row maximising the total score, equal codes forbidden.

    ``scores`` (R×C float64) is overwritten. Returns an int64 array of length R
    (``NO_PARTNER`` where a row has no allowed column); see the module docstring
    for the fallback when no full assignment exists.
    """
    R, C = scores.shape
    out = np.full(R, NO_PARTNER, dtype=np.int64)
    if R == 0 or C == 0:
        return out
    lo, hi = float(scores.min()), float(scores.max())
    cost = np.negative(scores, out=scores)
    feasible = assignable(row_codes, col_codes)
    # Forbidden cells: +inf when a full assignment exists, else a penalty larger than
    # any total-score gain, so the solver uses as few forbidden cells as it can.
    bad = np.inf if feasible else -lo + R * (hi - lo + 1.0) + 1.0
    for s in range(0, R, _ROW_BLOCK):
        blk = cost[s : s + _ROW_BLOCK]
        blk[row_codes[s : s + _ROW_BLOCK, None] == col_codes[None, :]] = bad
    rows, cols = linear_sum_assignment(cost)
    out[rows] = cols
    if feasible:
        return out
    # Rows left on a forbidden cell (or unassigned): their best allowed column.
    redo = np.ones(R, dtype=bool)
    redo[rows] = row_codes[rows] == col_codes[cols]
    for i in np.flatnonzero(redo):
        allowed = col_codes != row_codes[i]
        out[i] = int(np.flatnonzero(allowed)[np.argmin(cost[i, allowed])]) if allowed.any() else NO_PARTNER
    if info is not None:
        info["fallback_rows"] = info.get("fallback_rows", 0) + int(redo.sum())
    return out


def hard_negatives(scores, labels, *, noise: float = 0.0, rng=None, info: dict | None = None) -> np.ndarray:
    """For each row i the column j of another individual from the max-score assignment.

    ``scores``: N×N, higher = more similar (not modified). ``labels``: N individual
    ids. Returns ``partner`` (int64, N): ``partner[i]`` is i's hard negative; it is a
    permutation whenever no individual holds more than half the images.
    """
    scores = check_square(scores)
    codes = label_codes(labels, scores.shape[0])
    work = noisy_scores(scores, noise, as_rng(rng))
    if info is not None:
        info.setdefault("fallback_rows", 0)
    return assign_max(work, codes, codes, info=info)


def class_groups(codes: np.ndarray) -> list[np.ndarray]:
    """Index arrays of the individuals, in code order."""
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return np.split(order, bounds)


def positives_by_class(
    codes: np.ndarray,
    block_fn: Callable[[np.ndarray], np.ndarray],
    noise: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Least-similar distinct partner inside each individual (shared by both paths).

    ``block_fn(idx)`` returns the (n, n) scores among the images ``idx`` of one
    individual. Noise is drawn per individual of ≥ 3 images, in code order (two
    images can only swap), so every path consumes the generator identically.
    """
    if noise < 0:
        raise ValueError(f"noise must be ≥ 0, got {noise}")
    partner = np.arange(len(codes), dtype=np.int64)
    for idx in class_groups(codes):
        n = len(idx)
        if n == 2:
            partner[idx] = idx[::-1]
        elif n > 2:
            cost = np.array(block_fn(idx), dtype=np.float64, copy=True)
            if noise > 0:
                cost += noise * rng.standard_normal((n, n))
            np.fill_diagonal(cost, np.inf)
            r, c = linear_sum_assignment(cost)
            partner[idx[r]] = idx[c]
    return partner


def hard_positives(scores, labels, *, noise: float = 0.0, rng=None) -> np.ndarray:
    """For each row i the least similar other image of the same individual.

    Inside every individual: an assignment minimising the total score with the
    diagonal forbidden (so partners are distinct); singletons get themselves.
    Only the within-individual blocks are read, so the cost is Σ n_c³, not N³.
    """
    scores = check_square(scores)
    codes = label_codes(labels, scores.shape[0])
    return positives_by_class(codes, lambda idx: scores[np.ix_(idx, idx)], noise, as_rng(rng))
