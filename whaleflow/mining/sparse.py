"""Sparse LAP mining: hard negatives at N ≈ 16,000 in seconds instead of minutes.

The dense optimum almost only uses pairs that are near neighbours, so candidates
are restricted to each image's ``k`` nearest neighbours of *other* individuals
(blocked top-k, :mod:`.knn`), the candidate graph is made symmetric (if j is a
candidate of i, i becomes one of j; this gives every column ≥ k incoming edges —
without it columns that are nobody's neighbour, "anti-hubs", make a full matching
impossible), and the max-score assignment on those edges is solved with scipy's
LAPJVsp (``min_weight_full_bipartite_matching``) on costs ``max − score + 1``
(strictly positive, as it requires; a constant per row does not move the optimum).

Fallback when the sparse graph has no full matching: the graph is rebuilt with one
dummy column per row at a cost above any real matching, which yields a maximum
matching of least cost; the unmatched rows and unused columns then get a *dense*
assignment among themselves (:func:`.dense.assign_max`, with its own fallback when
one individual dominates) if there are at most ``max_residual`` of them. If those
alone cannot be assigned (say all of one individual) while the whole problem can,
matched rows of least score are released into the residual (doubling) until it
can, so partners stay a permutation whenever the dense problem has one. Rows still
without a partner take their best candidate (which may repeat). The benchmark
(``benchmarks/lap_mining.py``) reports how often each step is needed.

Noise is added to candidate scores only; the candidates themselves come from the
noiseless features. With large noise the dense solver picks nearly random negatives
while k-NN candidates would stay hard, so ``random_candidates`` random other-
individual columns per row can be added (the miner does so while noise > 0).

:func:`sparse_hard_negatives_from_scores` runs the same solver on a dense score
matrix (top-k per row) so that dense and sparse can be compared on one matrix.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from .dense import (NO_PARTNER, assignable, as_rng, assign_max, check_square, class_groups, label_codes,
                    positives_by_class)
from .knn import features_tensor, knn_other, pair_dots, topk_other

ScoresFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def candidate_edges(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetrised, de-duplicated edges from an (N, k) neighbour table.

    Returns ``rows, cols`` sorted by (row, col) and ``src``: each edge's position in
    ``concatenate([forward, reverse])`` of the table's flattened entries, so forward
    values can be carried over (``np.concatenate([v, v])[src]``).
    """
    n, kk = idx.shape
    fr, fc = np.repeat(np.arange(n, dtype=np.int64), kk), idx.ravel()
    rows, cols = np.concatenate([fr, fc]), np.concatenate([fc, fr])
    keep = np.flatnonzero((rows >= 0) & (cols >= 0))
    key, first = np.unique(rows[keep] * n + cols[keep], return_index=True)
    return key // n, key % n, keep[first]


def _match(rows, cols, vals, n: int, info: dict) -> np.ndarray:
    """Max-score matching on the edges; rows left unmatched get ``NO_PARTNER``."""
    partner = np.full(n, NO_PARTNER, dtype=np.int64)
    info["dummy_solve"] = False
    if len(vals) == 0:
        return partner
    cost = (vals.max() - vals) + 1.0
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    try:
        r, c = min_weight_full_bipartite_matching(csr_matrix((cost, cols, indptr), shape=(n, n)))
    except ValueError:  # no full matching: dummies priced above any real matching
        info["dummy_solve"] = True
        dummy = float(cost.max()) * n + 1.0
        ar = np.arange(n)
        g = csr_matrix(
            (np.concatenate([cost, np.full(n, dummy)]), (np.concatenate([rows, ar]), np.concatenate([cols, n + ar]))),
            shape=(n, 2 * n),
        )
        r, c = min_weight_full_bipartite_matching(g)
        c = np.where(c >= n, NO_PARTNER, c)
    partner[r] = c
    return partner


def _residual_rows(partner, codes, rows, cols, vals, max_residual: int) -> np.ndarray:
    """Rows to re-assign densely: the unmatched ones, plus — when those and the free
    columns alone cannot be assigned (e.g. all of one individual) — matched rows of
    least score, doubling in number until the residual is feasible or too large."""
    n = len(partner)
    todo = np.flatnonzero(partner < 0)
    used = np.zeros(n, dtype=bool)
    used[partner[partner >= 0]] = True
    free = np.flatnonzero(~used)
    if assignable(codes[todo], codes[free]) or not assignable(codes, codes):
        return todo
    matched = np.flatnonzero(partner >= 0)
    at = np.searchsorted(rows * n + cols, matched * n + partner[matched])
    release = matched[np.argsort(vals[at], kind="stable")]
    m = len(todo)
    while len(todo) + m <= max_residual:
        extra = release[:m]
        if assignable(codes[np.concatenate([todo, extra])], codes[np.concatenate([free, partner[extra]])]):
            return np.concatenate([todo, extra])
        if m >= len(release):
            break
        m *= 2
    return todo  # no small feasible residual: assign_max's own fallback takes over


def _complete(partner, codes, rows, cols, vals, residual_fn, max_residual: int, info: dict) -> None:
    """Fill unmatched rows: dense residual assignment, then best candidate."""
    info["unmatched"] = int((partner < 0).sum())
    info["residual"] = 0
    if info["unmatched"] == 0:
        return
    todo = _residual_rows(partner, codes, rows, cols, vals, max_residual)
    if len(todo) <= max_residual:
        partner[todo] = NO_PARTNER
        used = np.zeros(len(partner), dtype=bool)
        used[partner[partner >= 0]] = True
        free = np.flatnonzero(~used)
        sub_info = {"fallback_rows": 0}  # counts its own rows left without a partner too
        sub = assign_max(residual_fn(todo, free), codes[todo], codes[free], info=sub_info)
        ok = sub >= 0
        partner[todo[ok]] = free[sub[ok]]
        info["residual"] = len(todo)
        info["fallback_rows"] += sub_info["fallback_rows"]
    left = np.flatnonzero(partner < 0)
    if info["residual"] == 0:
        info["fallback_rows"] += len(left)
    if len(left):
        sel = np.isin(rows, left)
        r, c, v = rows[sel], cols[sel], vals[sel]
        order = np.lexsort((-v, r))
        rr, first = np.unique(r[order], return_index=True)
        partner[rr] = c[order][first]


def _random_edges(codes: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """(N, m) random columns of other individuals (``-1`` where a draw hit the same one)."""
    n = len(codes)
    cols = rng.integers(0, n, size=(n, m))
    cols[codes[cols] == codes[:, None]] = -1
    return cols


def _grid_scores(f: torch.Tensor, scores_fn: ScoresFn | None, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) float64 scores: dot products, or ``scores_fn`` on all pairs."""
    if scores_fn is None:
        with torch.inference_mode():
            ta, tb = (torch.as_tensor(x, device=f.device) for x in (a, b))
            return (f[ta] @ f[tb].T).double().cpu().numpy()
    s = scores_fn(np.repeat(a, len(b)), np.tile(b, len(a)))
    return np.asarray(s, dtype=np.float64).reshape(len(a), len(b))


def sparse_hard_negatives(
    features,
    labels,
    *,
    k: int = 50,
    scores_fn: ScoresFn | None = None,
    noise: float = 0.0,
    rng=None,
    block_size: int = 1024,
    normalize: bool = False,
    random_candidates: int = 0,
    max_residual: int = 2048,
    info: dict | None = None,
) -> np.ndarray:
    """Hard negative per image from features, without an N×N matrix.

    Candidates: the ``k`` largest dot products (cosine if ``normalize``) with other
    individuals, plus ``random_candidates`` random ones, made symmetric. Candidate
    scores: the dot product, or ``scores_fn(i_idx, j_idx)`` (e.g. a pair head,
    :func:`whaleflow.mining.head_scores_fn`), plus N(0, noise²). Returns ``partner``
    (int64, N) like :func:`.dense.hard_negatives`. ``info`` (a dict) receives
    ``edges, unmatched, residual, fallback_rows, candidate_seconds, solve_seconds``.
    """
    info = {} if info is None else info
    info["fallback_rows"] = 0
    rng = as_rng(rng)
    t0 = time.perf_counter()
    f = features_tensor(features, normalize)
    codes = label_codes(labels, f.shape[0])
    idx, val = knn_other(f, codes, k, block_size=block_size)
    if random_candidates > 0:
        idx = np.concatenate([idx, _random_edges(codes, random_candidates, rng)], axis=1)
    rows, cols, src = candidate_edges(idx)
    if scores_fn is None and random_candidates == 0:
        v = val.ravel().astype(np.float64)
        vals = np.concatenate([v, v])[src]
    elif scores_fn is None:
        vals = pair_dots(f, rows, cols)
    else:
        vals = np.asarray(scores_fn(rows, cols), dtype=np.float64)
    t1 = time.perf_counter()

    def residual(a, b):
        s = _grid_scores(f, scores_fn, a, b)
        return s + noise * rng.standard_normal(s.shape) if noise > 0 else s

    if noise > 0:
        vals = vals + noise * rng.standard_normal(len(vals))
    partner = _match(rows, cols, vals, len(codes), info)
    _complete(partner, codes, rows, cols, vals, residual, max_residual, info)
    info.update(edges=len(rows), candidate_seconds=t1 - t0, solve_seconds=time.perf_counter() - t1)
    return partner


def sparse_hard_negatives_from_scores(
    scores,
    labels,
    *,
    k: int = 50,
    noise: float = 0.0,
    rng=None,
    block_size: int = 1024,
    max_residual: int = 2048,
    info: dict | None = None,
) -> np.ndarray:
    """The sparse solver on a dense N×N matrix: top-``k`` allowed columns per row.

    The matrix is read block by block and never copied whole. Noise is drawn as
    :func:`.dense.hard_negatives` draws it (float64, row blocks in order), and the
    top k are taken on the noisy rows, so with ``k ≥ N − 1`` both return the same
    assignment for the same seed. A reverse-only candidate (j, i) gets the noise
    drawn for (i, j); residual cells (fallback only) get fresh noise.
    """
    info = {} if info is None else info
    info["fallback_rows"] = 0
    scores = check_square(scores)
    codes = label_codes(labels, scores.shape[0])
    rng = as_rng(rng)
    if noise < 0:
        raise ValueError(f"noise must be ≥ 0, got {noise}")
    t0 = time.perf_counter()

    def block(s, e):
        b = np.array(scores[s:e], dtype=np.float64 if noise > 0 else np.promote_types(scores.dtype, np.float32))
        if not np.isfinite(b).all():
            raise ValueError("scores contain NaN or inf (forbidden cells come from labels, not from inf scores)")
        if noise > 0:
            b += noise * rng.standard_normal(b.shape, dtype=np.float32)  # as noisy_scores
        return torch.from_numpy(b)

    idx, val = topk_other(block, codes, k, block_size=block_size)
    rows, cols, src = candidate_edges(idx)
    vals = scores[rows, cols].astype(np.float64)
    if noise > 0:
        nk = idx.size
        q = src % nk  # the forward entry each edge came from
        fwd = val.ravel()[q]
        own = scores[q // idx.shape[1], idx.ravel()[q]].astype(np.float64)
        vals = np.where(src < nk, fwd, vals + (fwd - own))
    t1 = time.perf_counter()
    partner = _match(rows, cols, vals, len(codes), info)

    def residual(a, b):
        r = np.array(scores[np.ix_(a, b)], dtype=np.float64)
        return r + noise * rng.standard_normal(r.shape) if noise > 0 else r

    _complete(partner, codes, rows, cols, vals, residual, max_residual, info)
    info.update(edges=len(rows), candidate_seconds=t1 - t0, solve_seconds=time.perf_counter() - t1)
    return partner


def hard_positives_from_features(
    features, labels, *, scores_fn: ScoresFn | None = None, noise: float = 0.0, rng=None, normalize: bool = False
) -> np.ndarray:
    """:func:`.dense.hard_positives` with scores from features (dot) or ``scores_fn``.

    All within-individual pairs (Σ n_c², small) are scored in one batch; with the
    same scores and seed the result equals the dense one.
    """
    f = features_tensor(features, normalize)
    codes = label_codes(labels, f.shape[0])
    groups = [g for g in class_groups(codes) if len(g) > 2]
    blocks: dict[int, np.ndarray] = {}
    if groups:
        rr = np.concatenate([np.repeat(g, len(g)) for g in groups])
        cc = np.concatenate([np.tile(g, len(g)) for g in groups])
        s = pair_dots(f, rr, cc) if scores_fn is None else np.asarray(scores_fn(rr, cc), dtype=np.float64)
        offsets = np.cumsum([0] + [len(g) ** 2 for g in groups])
        for g, o in zip(groups, offsets):
            blocks[int(g[0])] = s[o : o + len(g) ** 2].reshape(len(g), len(g))
    return positives_by_class(codes, lambda idx: blocks[int(idx[0])], noise, as_rng(rng))
