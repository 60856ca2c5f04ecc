"""Blocked k-nearest neighbours among *other* individuals, in torch.

Used by the sparse miner (candidates for hard negatives) and by
:func:`whaleflow.mining.score_knn`. Rows are processed ``block_size`` at a time,
so memory is ``block_size × N`` scores, never N×N; the work runs on the device the
features live on (a GPU when the trainer's features are there), and ``torch.topk``
uses every CPU thread otherwise.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

NO_NEIGHBOUR = -1


def as_feature_tensor(features, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, D) numpy array or tensor → a 2-D tensor of ``dtype`` on the same device."""
    t = torch.as_tensor(features)
    if t.ndim != 2:
        raise ValueError(f"features must be an (N, D) matrix, got shape {tuple(t.shape)}")
    return t.to(dtype)


def topk_other(
    block_fn: Callable[[int, int], torch.Tensor],
    codes: np.ndarray,
    k: int,
    *,
    block_size: int = 1024,
    device: torch.device | str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` columns per row among columns whose code differs from the row's.

    ``block_fn(s, e)`` returns a *fresh* ``(e − s, N)`` score tensor for rows
    ``s:e`` (it is masked in place). Returns ``(idx, val)`` of shape ``(N, k')``
    with ``k' = min(k, N)``, best first; where a row has fewer than ``k'`` allowed
    columns the rest are ``idx = NO_NEIGHBOUR`` and ``val = -inf``.
    """
    n = len(codes)
    if k < 1:
        raise ValueError(f"k must be ≥ 1, got {k}")
    if block_size < 1:
        raise ValueError(f"block_size must be ≥ 1, got {block_size}")
    kk = min(int(k), n)
    codes_t = torch.as_tensor(np.asarray(codes, dtype=np.int64), device=device)
    idx_out = np.empty((n, kk), dtype=np.int64)
    val_out = np.empty((n, kk), dtype=np.float32)
    for s in range(0, n, block_size):
        e = min(s + block_size, n)
        blk = block_fn(s, e)
        blk.masked_fill_(codes_t[s:e, None] == codes_t[None, :], float("-inf"))
        val, idx = torch.topk(blk, kk, dim=1)
        val = val.float().cpu().numpy()
        idx = idx.cpu().numpy()
        idx[~np.isfinite(val)] = NO_NEIGHBOUR
        idx_out[s:e], val_out[s:e] = idx, val
    return idx_out, val_out


def knn_other(
    features,
    codes: np.ndarray,
    k: int,
    *,
    block_size: int = 1024,
    normalize: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` largest dot products (cosine if ``normalize``) with other codes.

    ``features``: (N, D) numpy array or tensor (stays on its device). Returns
    ``(idx, val)`` as :func:`topk_other`.
    """
    f = as_feature_tensor(features)
    if f.shape[0] != len(codes):
        raise ValueError(f"features have {f.shape[0]} rows but there are {len(codes)} labels")
    if normalize:
        f = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
    with torch.inference_mode():
        return topk_other(lambda s, e: f[s:e] @ f.T, codes, k, block_size=block_size, device=f.device)
