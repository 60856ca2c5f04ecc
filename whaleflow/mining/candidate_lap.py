"""The sparse LAP on :class:`.candidates.PairCandidates`: what a MiningActor solves at scale.

The same solver as :func:`.sparse.sparse_hard_negatives` (symmetrised candidate
graph, LAPJVsp, dense residual fallback, best-candidate last resort), fed from the
candidate table a trial computed on its device instead of from features or an N×N
matrix. The noise of the round is already in the candidates' values (drawn on the
device for every cell before the top-k, as the matrix path drew it); candidates made
without noise get it here, per edge, like the feature path.

Residual cells that are not candidate edges (the fallback only: unmatched rows
against unused columns) are unknown here; they get a score one below the lowest
candidate logit, plus fresh noise, so the fallback prefers any known hard pair and
otherwise assigns at random among the rest. ``info["residual_unknown"]`` counts them.

Hard positives: :func:`.dense.positives_by_class` on the within-individual blocks the
trial sent, so with the same logits and seed they equal the dense path's.
"""
from __future__ import annotations

import time

import numpy as np

from .candidates import PairCandidates, positive_groups
from .dense import NO_PARTNER, as_rng, label_codes, positives_by_class
from .sparse import _complete, _match, candidate_edges


class CandidateLookup:
    """Noiseless logit of any pair the candidates know (edges and within-individual pairs)."""

    def __init__(self, cand: PairCandidates, labels=None):
        n = cand.n
        rows, cols, src = candidate_edges(cand.idx.astype(np.int64))
        v, c = cand.val.astype(np.float64).ravel(), cand.clean.astype(np.float64).ravel()
        keys, vals = [rows * n + cols], [np.concatenate([c, c])[src]]
        groups = [] if labels is None else positive_groups(labels, n)
        need = sum(len(g) ** 2 for g in groups)
        if labels is not None and need != len(cand.pos):
            raise ValueError(f"candidates carry {len(cand.pos)} within-individual scores, the labels need {need}")
        if groups:
            keys.append(np.concatenate([np.repeat(g, len(g)) * n + np.tile(g, len(g)) for g in groups]))
            vals.append(cand.pos.astype(np.float64))
        key, val = np.concatenate(keys), np.concatenate(vals)
        order = np.argsort(key, kind="stable")
        self.n, self.key, self.val = n, key[order], val[order]
        self.edges = (rows, cols, np.concatenate([v, v])[src])  # noisy: what the solver assigns on
        self.floor = float(vals[0].min()) - 1.0 if len(rows) else 0.0

    def __call__(self, i, j, default: float | None = None) -> np.ndarray:
        q = np.asarray(i, dtype=np.int64) * self.n + np.asarray(j, dtype=np.int64)
        at = np.clip(np.searchsorted(self.key, q), 0, max(len(self.key) - 1, 0))
        found = (self.key[at] == q) if len(self.key) else np.zeros(q.shape, bool)
        fill = np.nan if default is None else default
        return np.where(found, self.val[at] if len(self.key) else fill, fill)


def hard_negatives_from_candidates(
    cand: PairCandidates,
    neg_labels,
    *,
    noise: float = 0.0,
    rng=None,
    max_residual: int = 2048,
    info: dict | None = None,
    lookup: CandidateLookup | None = None,
) -> np.ndarray:
    """Hard negative per image (``partner``, int64, ``-1`` = none) from candidate edges."""
    info = {} if info is None else info
    info["fallback_rows"] = 0
    if noise < 0:
        raise ValueError(f"noise must be ≥ 0, got {noise}")
    rng = as_rng(rng)
    t0 = time.perf_counter()
    codes = label_codes(neg_labels, cand.n)
    lookup = lookup or CandidateLookup(cand)
    rows, cols, vals = lookup.edges
    vals = vals + noise * rng.standard_normal(len(vals)) if noise > 0 and cand.noise == 0 else vals.copy()
    partner = _match(rows, cols, vals, cand.n, info)
    unknown = [0]

    def residual(a, b):
        s = lookup(np.repeat(a, len(b)), np.tile(b, len(a)), default=np.nan).reshape(len(a), len(b))
        miss = np.isnan(s)
        unknown[0] += int(miss.sum())
        s[miss] = lookup.floor
        return s + noise * rng.standard_normal(s.shape) if noise > 0 else s

    t1 = time.perf_counter()
    _complete(partner, codes, rows, cols, vals, residual, max_residual, info)
    info.update(edges=len(rows), residual_unknown=unknown[0], candidate_seconds=t1 - t0,
                solve_seconds=time.perf_counter() - t1)
    return partner


def hard_positives_from_candidates(cand: PairCandidates, labels, *, noise: float = 0.0, rng=None) -> np.ndarray:
    """Least-similar partner inside each individual, from the within-individual logits sent."""
    n = cand.n
    codes = label_codes(labels, n)
    blocks: dict[int, np.ndarray] = {}
    offset = 0
    for g in positive_groups(labels, n):
        blocks[int(g[0])] = cand.pos[offset : offset + len(g) ** 2].astype(np.float64).reshape(len(g), len(g))
        offset += len(g) ** 2
    if offset != len(cand.pos):
        raise ValueError(f"candidates carry {len(cand.pos)} within-individual scores, the labels need {offset}")
    return positives_by_class(codes, lambda idx: blocks[int(idx[0])], noise, as_rng(rng))


__all__ = ["CandidateLookup", "NO_PARTNER", "hard_negatives_from_candidates", "hard_positives_from_candidates"]
