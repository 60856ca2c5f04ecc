"""Top-k candidate partners per image, scored on the device: what the sparse solver needs.

The sparse LAP (:mod:`.sparse`) only ever looks at each image's best few partners of
other individuals, so shipping the whole N×N logit matrix to a MiningActor (1 GB at
N = 15,697 in float32, 4 GB for the 31k virtual images of HWI with flips) is waste.
:func:`score_candidates` scores all pairs with the pair head where the features live
(the trial's GPU) and keeps, per row, only:

* the ``k − r`` highest logits among other individuals (``neg_labels`` codes), found
  with a running ``torch.topk`` merge per tile, so nothing N×N is ever held;
* ``r = round(random_share · k)`` random other-individual columns with their logits
  (as the feature path adds random candidates: under large mining noise the dense
  optimum picks near-random negatives, which a pure top-k graph could not offer);
* the logits of every pair inside each individual (``labels``), for hard positives.

**Each unordered pair is scored once** when the head is symmetric by construction
(``PairHead(symmetric=True)``, the siamese family's head: ``f(x, y)`` and ``f(y, x)``
are bit-identical in eval mode): only tiles on and above the diagonal are scored (the
diagonal tiles down to sub-tiles), and each tile updates the top-k of its rows *and*,
transposed, of its columns. A head that is not symmetric has every ordered pair scored
(row i's top-k are then exactly its own ``f(i, ·)``); the solver's only use of symmetry
is then the reverse edge ``(j, i)`` of a candidate ``(i, j)``, which carries ``f(i, j)``
in place of ``f(j, i)`` — exact for a symmetric head, an approximation otherwise.

On CUDA the head runs under bf16 autocast with TF32 (:func:`.scoring.fast_math`).
What crosses to the actor is ``idx`` (int32) and ``val`` (float16: logits need ~3
digits; the actor already holds big matrices in float16), ``N·k·6`` bytes, plus the
within-individual logits (Σ n_c² float16, small).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .dense import class_groups, label_codes
from .scoring import _eval_head, _pair_fn, _setup, fast_math, is_symmetric, score_pairs, tile_scores

NO_CANDIDATE = -1


@dataclass(frozen=True)
class PairCandidates:
    """Candidate partners per image (the solver input of a sparse mining round).

    ``idx[i]``: columns of row i's candidates (``-1`` = none), the best-scored first,
    then the random ones; ``val[i]``: their logits. ``pos``: logits inside each
    individual of ≥ 2 images (code order of ``labels``), each its n×n block row-major,
    concatenated. ``symmetric``: the head was symmetric (reverse edges exact).
    """

    idx: np.ndarray
    val: np.ndarray
    pos: np.ndarray
    symmetric: bool = True

    @property
    def n(self) -> int:
        return int(self.idx.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.idx.nbytes + self.val.nbytes + self.pos.nbytes)

    def to_dict(self) -> dict:
        return {"idx": self.idx, "val": self.val, "pos": self.pos, "symmetric": self.symmetric}

    @classmethod
    def from_dict(cls, d: dict) -> "PairCandidates":
        return cls(np.asarray(d["idx"]), np.asarray(d["val"]), np.asarray(d["pos"]), bool(d["symmetric"]))


def positive_groups(labels, n: int) -> list[np.ndarray]:
    """The individuals of ≥ 2 images, in code order: the layout of ``PairCandidates.pos``."""
    return [g for g in class_groups(label_codes(labels, n)) if len(g) >= 2]


def _merge(best_v: torch.Tensor, best_i: torch.Tensor, r0: int, t: torch.Tensor, c0: int) -> None:
    """Fold tile ``t`` (rows ``r0…``, columns ``c0…``) into the running top-k of its rows."""
    rows = slice(r0, r0 + t.shape[0])
    cols = torch.arange(c0, c0 + t.shape[1], device=t.device).expand(t.shape[0], -1)
    v, j = torch.topk(torch.cat([best_v[rows], t], dim=1), best_v.shape[1], dim=1)
    best_i[rows] = torch.gather(torch.cat([best_i[rows], cols], dim=1), 1, j)
    best_v[rows] = v


@torch.inference_mode()
def score_candidates(
    features,
    head: nn.Module,
    *,
    k: int,
    neg_labels,
    labels,
    random_share: float = 0.2,
    block_size: int = 1024,
    seed=0,
    device=None,
    fast: bool = True,
) -> PairCandidates:
    """Each row's top ``k − r`` other-individual logits + ``r`` random ones + within-individual logits.

    ``neg_labels``: codes that may not be negatives of each other; ``labels``: the
    individuals (positives). See the module docstring for what is scored and sent.
    """
    if k < 1 or block_size < 1:
        raise ValueError(f"k and block_size must be ≥ 1, got {k}, {block_size}")
    if not 0.0 <= random_share < 1.0:
        raise ValueError(f"random_share must be in [0, 1), got {random_share}")
    f = _setup(features, device, torch.float32)
    n = f.shape[0]
    neg = label_codes(neg_labels, n)
    r = int(round(random_share * k)) if n > k else 0
    top = max(1, min(k - r, n))
    codes = torch.as_tensor(neg, device=f.device)
    best_v = torch.full((n, top), float("-inf"), device=f.device)
    best_i = torch.full((n, top), NO_CANDIDATE, dtype=torch.int64, device=f.device)
    with _eval_head(head, f.device, torch.float32) as h, fast_math(f.device, fast):
        pair, sym = _pair_fn(h), is_symmetric(h)
        for a in range(0, n, block_size):
            fa = f[a : a + block_size]
            for b in range(a if sym else 0, n, block_size):
                t = tile_scores(pair, fa, f[b : b + block_size], upper=sym and a == b)
                t.masked_fill_(codes[a : a + block_size, None] == codes[None, b : b + block_size], float("-inf"))
                _merge(best_v, best_i, a, t, b)
                if sym and b != a:
                    _merge(best_v, best_i, b, t.T, a)
    val = best_v.cpu().numpy()
    idx = best_i.cpu().numpy()
    idx[~np.isfinite(val)] = NO_CANDIDATE
    if r:
        rng = np.random.default_rng(seed)
        rand = rng.integers(0, n, size=(n, r))
        rand[neg[rand] == neg[:, None]] = NO_CANDIDATE
        rv = np.full(rand.shape, -np.inf, np.float32)
        ok = rand >= 0
        rows = np.broadcast_to(np.arange(n)[:, None], rand.shape)
        rv[ok] = score_pairs(f, head, rows[ok], rand[ok], fast=fast)
        idx, val = np.concatenate([idx, rand], axis=1), np.concatenate([val, rv], axis=1)
    groups = positive_groups(labels, n)
    pos = np.zeros(0, np.float32)
    if groups:
        rr = np.concatenate([np.repeat(g, len(g)) for g in groups])
        cc = np.concatenate([np.tile(g, len(g)) for g in groups])
        pos = score_pairs(f, head, rr, cc, fast=fast)
    return PairCandidates(idx.astype(np.int32), val.astype(np.float16), pos.astype(np.float16), sym)
