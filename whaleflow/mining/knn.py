"""Blocked k-nearest neighbours among *other* individuals, in torch.

Used by the sparse miner (candidates for hard negatives) and by
:func:`whaleflow.mining.score_knn`. Rows are processed ``block_size`` at a time,
so memory is ``block_size × N`` scores, never N×N; the work runs on the device the
features live on (a GPU when the trainer's features are there), and ``torch.topk``
uses every CPU thread otherwise. Also the small feature helpers the miners share:
conversion to a float32 tensor (optionally L2-normalised) and per-edge dot products.
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


def pair_dots(f: torch.Tensor, rows: np.ndarray, cols: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """Dot products ``f[rows[e]] · f[cols[e]]`` per edge, in chunks (float64).

    On a CPU numpy's einsum does this several times faster than torch gathers."""
    out = np.empty(len(rows), dtype=np.float64)
    if f.device.type == "cpu":
        x = f.detach().numpy()
        for s in range(0, len(rows), chunk):
            out[s : s + chunk] = np.einsum("ij,ij->i", x[rows[s : s + chunk]], x[cols[s : s + chunk]])
        return out
    with torch.inference_mode():
        for s in range(0, len(rows), chunk):
            r = torch.as_tensor(rows[s : s + chunk], device=f.device)
            c = torch.as_tensor(cols[s : s + chunk], device=f.device)
            out[s : s + chunk] = (f[r] * f[c]).sum(1).double().cpu().numpy()
    return out


def features_tensor(features, normalize: bool = False) -> torch.Tensor:
    """Features as a float32 tensor on their device, L2-normalised if asked."""
    f = as_feature_tensor(features)
    return f / f.norm(dim=1, keepdim=True).clamp_min(1e-12) if normalize else f


def _same_cells(codes: np.ndarray, max_per_row: int = 64) -> tuple[np.ndarray, np.ndarray] | None:
    """(rows, cols) of all same-code cells, diagonal included, sorted by row — or
    None when there are more than ``max_per_row`` per row on average (one huge
    individual), where comparing codes over each block is cheaper."""
    counts = np.bincount(codes)
    if int((counts.astype(np.int64) ** 2).sum()) > max_per_row * len(codes):
        return None
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])[codes[order]]
    size = counts[codes[order]]
    rows = np.repeat(order, size)
    # for the j-th row of a class: all members of that class, in sorted order
    offs = np.arange(len(rows)) - np.repeat(np.cumsum(size) - size, size)
    cols = order[np.repeat(starts, size) + offs]
    keep = np.argsort(rows, kind="stable")
    return rows[keep], cols[keep]


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
    with ``k' = min(k, N)``, best first (``val`` in float64, exact for float64
    blocks); where a row has fewer than ``k'`` allowed
    columns the rest are ``idx = NO_NEIGHBOUR`` and ``val = -inf``.
    """
    n = len(codes)
    if k < 1:
        raise ValueError(f"k must be ≥ 1, got {k}")
    if block_size < 1:
        raise ValueError(f"block_size must be ≥ 1, got {block_size}")
    kk = min(int(k), n)
    codes = np.asarray(codes, dtype=np.int64)
    same = _same_cells(codes)
    if same is None:
        codes_t = torch.as_tensor(codes, device=device)
    else:
        bounds = np.searchsorted(same[0], np.arange(0, n + block_size, block_size))
        same_t = torch.as_tensor(np.stack(same), device=device)
    idx_out = np.empty((n, kk), dtype=np.int64)
    val_out = np.empty((n, kk), dtype=np.float64)
    for s in range(0, n, block_size):
        e = min(s + block_size, n)
        blk = block_fn(s, e)
        if same is None:
            blk.masked_fill_(codes_t[s:e, None] == codes_t[None, :], float("-inf"))
        else:
            b = s // block_size
            r, c = same_t[:, bounds[b] : bounds[b + 1]]
            blk[r - s, c] = float("-inf")
        val, idx = torch.topk(blk, kk, dim=1)
        val = val.double().cpu().numpy()
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
