"""Mining candidates that grow linearly in N: the pair head on each image's cosine shortlist.

A sparse mining round keeps each image's ``w`` best other-individual partners by the pair
head's (noisy) logit. Scoring every pair with the head is N²/2 small-MLP evaluations: at
HWI size with flips (about 50,000 virtual images) 1.2 billion, and it made the rehearsal's
training phase grow as N^1.5. The head's best partners of an image are, nearly always, among
its nearest neighbours by the cosine of the same backbone features the head reads (the
shortlist idea of :mod:`whaleflow.families.pair_shortlist`, there per class, here per photo).

So each image first ranks every other image by that cosine (one matrix product per row
block: a few multiply-adds per feature, where the head costs an MLP per pair), drops those
that may not be its negatives, keeps its ``m`` best, and the head scores only those: N·m
evaluations. The round's noise σ is drawn for each scored pair, and the top ``w`` by noisy
logit are kept, as the full path does; under large σ the picks are near-random among the m
nearest instead of among all N (the early rounds' noise still varies them). Benchmark and
ablation: ``benchmarks/mining_ablation.py`` with ``mining.prefilter`` (see the README).
"""
from __future__ import annotations

import torch
from torch import nn

#: float32 cells of one block's cosine rows (rows × N): 64 MB on a CPU, more on a GPU
COS_BLOCK_ELEMS = {"cpu": 1 << 24, "default": 1 << 27}
#: float32 cells of one head batch's pair features (pairs × 2·width): cache-sized on a CPU
#: (``pair_shortlist.PAIR_BATCH_ELEMS`` measured 3× faster per pair at 2 MB than 64 MB)
PAIR_BATCH_ELEMS = {"cpu": 1 << 19, "default": 1 << 24}


def _budget(table: dict, device: torch.device) -> int:
    return table.get(device.type, table["default"])


def cosine_shortlist(f: torch.Tensor, codes: torch.Tensor, r0: int, rows: int, m: int) -> torch.Tensor:
    """Rows ``r0 … r0+rows``' ``m`` nearest images by cosine among those of another code,
    as column indices ``(rows, m')``, ``m' = min(m, N)``; ``-1`` where a row has fewer."""
    fn = nn.functional.normalize(f, dim=1)
    c = fn[r0 : r0 + rows] @ fn.T
    c.masked_fill_(codes[r0 : r0 + rows, None] == codes[None, :], float("-inf"))
    v, j = torch.topk(c, min(m, c.shape[1]), dim=1)
    j[~torch.isfinite(v)] = -1
    return j


def head_logits(h, f: torch.Tensor, r0: int, cols: torch.Tensor) -> torch.Tensor:
    """Head logits of pairs (row ``r0 + i``, ``cols[i, s]``), ``-inf`` where ``cols`` is -1."""
    rows, m = cols.shape
    valid = cols >= 0
    a = torch.arange(r0, r0 + rows, device=f.device).repeat_interleave(m)
    b = cols.clamp(min=0).reshape(-1)
    out = torch.empty(rows * m, device=f.device)
    batch = max(1, _budget(PAIR_BATCH_ELEMS, f.device) // (2 * f.shape[1]))
    for s in range(0, rows * m, batch):
        out[s : s + batch] = h(f[a[s : s + batch]], f[b[s : s + batch]]).float().reshape(-1)
    return out.view(rows, m).masked_fill_(~valid, float("-inf"))


def prefiltered_topk(h, f: torch.Tensor, codes: torch.Tensor, *, m: int, w: int, noisy) -> tuple:
    """Each row's best ``w`` of its ``m`` cosine neighbours by noisy head logit:
    ``(noisy, clean, idx)`` tensors ``(N, w)``, missing entries ``-inf`` / ``-1``.
    ``noisy(t)`` adds the round's noise to a block of logits."""
    n = f.shape[0]
    block = max(1, _budget(COS_BLOCK_ELEMS, f.device) // max(n, 1))
    w = min(w, n)
    out_noisy = torch.full((n, w), float("-inf"), device=f.device)
    out_clean = torch.full((n, w), float("-inf"), device=f.device)
    out_idx = torch.full((n, w), -1, dtype=torch.int64, device=f.device)
    for r0 in range(0, n, block):
        cols = cosine_shortlist(f, codes, r0, min(block, n - r0), m)
        clean = head_logits(h, f, r0, cols)
        v, j = torch.topk(noisy(clean), min(w, cols.shape[1]), dim=1)
        rows = slice(r0, r0 + cols.shape[0])
        out_noisy[rows, : v.shape[1]] = v
        out_clean[rows, : v.shape[1]] = torch.gather(clean, 1, j)
        out_idx[rows, : v.shape[1]] = torch.gather(cols, 1, j)
    return out_noisy, out_clean, out_idx
