"""Top-k candidate partners per image, scored on the device: what the sparse solver needs.

The sparse LAP (:mod:`.sparse`) only ever looks at each image's best few partners of
other individuals, so shipping the whole N×N logit matrix to a MiningActor (1 GB at
N = 15,697 in float32, 4 GB for the 31k virtual images of HWI with flips) is waste.
:func:`score_candidates` scores all pairs with the pair head where the features live
(the trial's GPU) and keeps per row only the top ``w`` other-individual columns
(``neg_labels`` codes) by *noisy* logit — a running ``torch.topk`` merge per tile, so
nothing N×N is ever held — with their noisy and noiseless logits, plus the logits of
every pair inside each individual (``labels``) for hard positives.

**Noise as before.** The mining noise σ of the round (:class:`.noise.NoiseSchedule`,
read by the caller) is drawn on the device for every cell, independently per ordered
pair, and the top ``w`` are taken on the noisy rows — what
:func:`.sparse.sparse_hard_negatives_from_scores` did on the full matrix, so under
large σ the candidates are as near-random as the dense optimum's picks (the draws
come from a torch generator seeded by ``seed``, not numpy's).

**Each unordered pair is scored once** when the head is symmetric by construction
(``PairHead(symmetric=True)``, the siamese family's head: ``f(x, y)`` and ``f(y, x)``
are bit-identical in eval mode): only tiles on and above the diagonal are scored (the
diagonal tiles down to sub-tiles), and each tile updates the top-k of its rows *and*,
transposed (with its own noise), of its columns. A head that is not symmetric has every
ordered pair scored (row i's candidates are then exactly its own ``f(i, ·)``); the
solver's only use of symmetry is the reverse edge ``(j, i)`` of a candidate ``(i, j)``,
which carries ``f(i, j)`` in place of ``f(j, i)`` — exact for a symmetric head, an
approximation otherwise (as the old matrix path did with its noise).

On CUDA the head runs under bf16 autocast with TF32 (:func:`.pair_scoring.fast_math`).
What crosses to the actor: ``idx`` (int32) and the noisy and noiseless logits (float16:
logits need ~3 digits; the actor already held big matrices in float16), 8 bytes per
entry, plus the within-individual logits (float16). The table is ``w = k − ⌈P/8N⌉``
wide, P the bytes of the within-individual logits (~10 per image at HWI: w = 47 for
k = 50), so that everything sent stays within ``N·k·8`` bytes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .cosine_prefilter import prefiltered_topk
from .dense import class_groups, label_codes
from .pair_scoring import _eval_head, _pair_fn, _setup, fast_math, is_symmetric, score_pairs, tile_scores

NO_CANDIDATE = -1


@dataclass(frozen=True)
class PairCandidates:
    """Candidate partners per image (the solver input of a sparse mining round).

    ``idx[i]``: columns of row i's candidates (``-1`` = none), best noisy logit first;
    ``val[i]``: their noisy logits (what the solver assigns on), ``clean[i]`` the
    noiseless ones (the round's statistics); ``noise``: the σ already in ``val``.
    ``pos``: noiseless logits inside each individual of ≥ 2 images (code order of
    ``labels``), each its n×n block row-major, concatenated. ``symmetric``: the head was
    symmetric (reverse edges exact).
    """

    idx: np.ndarray
    val: np.ndarray
    clean: np.ndarray
    pos: np.ndarray
    noise: float = 0.0
    symmetric: bool = True

    @property
    def n(self) -> int:
        return int(self.idx.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.idx.nbytes + self.val.nbytes + self.clean.nbytes + self.pos.nbytes)

    def to_dict(self) -> dict:
        return {"idx": self.idx, "val": self.val, "clean": self.clean, "pos": self.pos, "noise": self.noise,
                "symmetric": self.symmetric}

    @classmethod
    def from_dict(cls, d: dict) -> "PairCandidates":
        return cls(np.asarray(d["idx"]), np.asarray(d["val"]), np.asarray(d["clean"]), np.asarray(d["pos"]),
                   float(d["noise"]), bool(d["symmetric"]))


def positive_groups(labels, n: int) -> list[np.ndarray]:
    """The individuals of ≥ 2 images, in code order: the layout of ``PairCandidates.pos``."""
    return [g for g in class_groups(label_codes(labels, n)) if len(g) >= 2]


class _RunningTopK:
    """Each row's best ``w`` columns by noisy score, with their noiseless scores, on the device."""

    def __init__(self, n: int, w: int, device):
        self.noisy = torch.full((n, w), float("-inf"), device=device)
        self.clean = torch.full((n, w), float("-inf"), device=device)
        self.idx = torch.full((n, w), NO_CANDIDATE, dtype=torch.int64, device=device)

    def merge(self, r0: int, clean: torch.Tensor, noisy: torch.Tensor, c0: int) -> None:
        """Fold a tile (rows ``r0…``, columns ``c0…``) into the running top-k of its rows."""
        rows = slice(r0, r0 + clean.shape[0])
        cols = torch.arange(c0, c0 + clean.shape[1], device=clean.device).expand(clean.shape[0], -1)
        v, j = torch.topk(torch.cat([self.noisy[rows], noisy], dim=1), self.noisy.shape[1], dim=1)
        self.idx[rows] = torch.gather(torch.cat([self.idx[rows], cols], dim=1), 1, j)
        self.clean[rows] = torch.gather(torch.cat([self.clean[rows], clean], dim=1), 1, j)
        self.noisy[rows] = v


def _generator(device: torch.device, seed) -> torch.Generator:
    s = int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(s)


def _all_pairs_topk(pair, sym: bool, f: torch.Tensor, codes: torch.Tensor, best: _RunningTopK, noisy,
                    block_size: int) -> None:
    """Every pair scored (each unordered pair once for a symmetric head), folded into ``best``."""
    n = f.shape[0]
    for a in range(0, n, block_size):
        fa = f[a : a + block_size]
        for b in range(a if sym else 0, n, block_size):
            t = tile_scores(pair, fa, f[b : b + block_size], upper=sym and a == b)
            t.masked_fill_(codes[a : a + block_size, None] == codes[None, b : b + block_size], float("-inf"))
            best.merge(a, t, noisy(t), b)
            if sym and b != a:
                best.merge(b, t.T, noisy(t.T), a)


@torch.inference_mode()
def score_candidates(
    features,
    head: nn.Module,
    *,
    k: int,
    neg_labels,
    labels,
    noise: float = 0.0,
    block_size: int = 1024,
    seed=0,
    device=None,
    fast: bool = True,
    prefilter: int = 0,
) -> PairCandidates:
    """Each row's top other-individual columns by noisy logit + the within-individual logits.

    ``neg_labels``: codes that may not be negatives of each other; ``labels``: the
    individuals (positives); ``noise``: the round's σ in logits; ``prefilter`` (> 0 and below
    N): the head scores only each row's that many nearest images by feature cosine
    (:mod:`.cosine_prefilter`, N·prefilter evaluations instead of N²/2). See the module
    docstring for what is scored and sent.
    """
    if k < 1 or block_size < 1:
        raise ValueError(f"k and block_size must be ≥ 1, got {k}, {block_size}")
    if noise < 0:
        raise ValueError(f"noise must be ≥ 0, got {noise}")
    f = _setup(features, device, torch.float32)
    n = f.shape[0]
    neg = label_codes(neg_labels, n)
    groups = positive_groups(labels, n)
    pos_bytes = 2 * sum(len(g) ** 2 for g in groups)
    w = max(1, min(k - -(-pos_bytes // (8 * n)), n))
    codes = torch.as_tensor(neg, device=f.device)
    gen = _generator(f.device, seed) if noise > 0 else None
    best = _RunningTopK(n, w, f.device)

    def noisy(t: torch.Tensor) -> torch.Tensor:
        return t if gen is None else t + noise * torch.randn(t.shape, generator=gen, device=t.device)

    with _eval_head(head, f.device, torch.float32) as h, fast_math(f.device, fast):
        pair, sym = _pair_fn(h), is_symmetric(h)
        if 0 < prefilter < n:
            best.noisy, best.clean, best.idx = prefiltered_topk(h, f, codes, m=prefilter, w=w, noisy=noisy)
        else:
            _all_pairs_topk(pair, sym, f, codes, best, noisy, block_size)
    val, clean, idx = best.noisy.cpu().numpy(), best.clean.cpu().numpy(), best.idx.cpu().numpy()
    idx[~np.isfinite(clean)] = NO_CANDIDATE
    pos = np.zeros(0, np.float32)
    if groups:
        rr = np.concatenate([np.repeat(g, len(g)) for g in groups])
        cc = np.concatenate([np.tile(g, len(g)) for g in groups])
        pos = score_pairs(f, head, rr, cc, fast=fast)
    return PairCandidates(idx.astype(np.int32), val.astype(np.float16), clean.astype(np.float16),
                          pos.astype(np.float16), float(noise), sym)
