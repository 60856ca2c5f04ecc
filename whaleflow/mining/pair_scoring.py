"""Scoring pairs with a pair head: all pairs in blocks, chosen pairs, or k-NN only.

Features are computed once per image by the backbone; the head is then applied to
tiles of pairs with tensor broadcasting, never a Python loop over pairs. A head with
a ``score_matrix(xa, xb) -> (A, B)`` method (:class:`whaleflow.models.pair_head.PairHead`)
is used through it, which skips materialising the concatenated pair features; any
other head ``head(x, y) -> (B,)`` is fed the expanded pairs of each tile.

Everything runs under ``torch.inference_mode`` on the device of the features (a GPU
when the trainer's features are there) unless ``device`` says otherwise, with the
head in eval mode (dropout off) and put back in its former mode afterwards. A head on
another device or dtype is copied, not moved, so the trainer's model is untouched.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from .dense import label_codes
from .knn import NO_NEIGHBOUR, as_feature_tensor, knn_other

#: Upper bound on ``rows × cols × D`` per head call, by device type. On the 2-core
#: dev machine CPU speed was flat from 1 MB to 256 MB of float32 per intermediate
#: (square sub-tiles), but tiny tiles suffered most when other processes competed
#: for the cores: 16 MB keeps memory low without that; a GPU wants large tiles.
MAX_TILE_ELEMENTS = {"cpu": 1 << 22, "default": 1 << 26}


@contextlib.contextmanager
def _eval_head(head: nn.Module, device: torch.device, dtype: torch.dtype) -> Iterator[nn.Module]:
    p = next(head.parameters(), None)
    h = copy.deepcopy(head).to(device, dtype) if p is not None and (p.device != device or p.dtype != dtype) else head
    was_training = h.training
    h.eval()
    try:
        yield h
    finally:
        h.train(was_training)


def _pair_fn(head: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    fn = getattr(head, "score_matrix", None)
    if fn is not None:
        return fn

    def broadcast(xa: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
        a, b = len(xa), len(xb)
        return head(xa.repeat_interleave(b, dim=0), xb.repeat(a, 1)).reshape(a, b)

    return broadcast


def _setup(features, device, dtype) -> torch.Tensor:
    f = as_feature_tensor(features)
    device = torch.device(device) if device is not None else f.device
    return f.to(device=device, dtype=dtype)


@contextlib.contextmanager
def fast_math(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """bf16 autocast and TF32 matmuls on CUDA (the pair head's tiles are GEMMs: several
    times faster, logits within ~1e-2, plenty for mining); nothing changes on a CPU."""
    if not enabled or device.type != "cuda":
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def _side(xa: torch.Tensor) -> int:
    budget = MAX_TILE_ELEMENTS.get(xa.device.type, MAX_TILE_ELEMENTS["default"])
    return max(1, int((budget / xa.shape[1]) ** 0.5))


def tile_scores(pair, xa: torch.Tensor, xb: torch.Tensor, *, upper: bool = False) -> torch.Tensor:
    """``xa × xb`` logits as a float32 tensor on the features' device, in square sub-tiles
    of at most the device's budget. ``upper=True`` (``xa is xb`` and a symmetric head):
    only sub-tiles on and above the diagonal are scored and mirrored, so a diagonal tile
    costs half of a full one too."""
    side = _side(xa)
    out = torch.empty(len(xa), len(xb), device=xa.device)
    for r in range(0, len(xa), side):
        for c in range(r if upper else 0, len(xb), side):
            t = pair(xa[r : r + side], xb[c : c + side]).float()
            out[r : r + side, c : c + side] = t
            if upper and c != r:
                out[c : c + side, r : r + side] = t.T
    return out


def _tile(pair, xa: torch.Tensor, xb: torch.Tensor, transform=None, upper: bool = False) -> np.ndarray:
    """:func:`tile_scores` copied back as numpy (``transform``, e.g. ``torch.sigmoid``, applied on the device)."""
    out = tile_scores(pair, xa, xb, upper=upper)
    if transform is not None:
        out = transform(out)
    return out.float().cpu().numpy()


def is_symmetric(head: nn.Module) -> bool:
    """Whether ``head(x, y) == head(y, x)`` by construction (``PairHead(symmetric=True)``)."""
    return bool(getattr(head, "symmetric", False))


@torch.inference_mode()
def score_all_pairs(
    features, head: nn.Module, *, block_size: int = 1024, device=None, dtype: torch.dtype = torch.float32,
    fast: bool = False,
) -> np.ndarray:
    """(N, N) float32 matrix of head logits for every ordered pair of ``features`` rows.

    Tiles of ``block_size × block_size`` pairs (each split into square sub-tiles
    so no intermediate exceeds :data:`MAX_TILE_ELEMENTS` for the device). A head with ``symmetric=True`` is evaluated
    on the upper triangle only (down to sub-tiles of the diagonal tiles) and mirrored,
    halving the work; the matrix is then exactly symmetric. The diagonal is scored too
    (callers forbid it by label). ``fast``: :func:`fast_math` on CUDA (mining).
    """
    if block_size < 1:
        raise ValueError(f"block_size must be ≥ 1, got {block_size}")
    f = _setup(features, device, dtype)
    n = f.shape[0]
    out = np.empty((n, n), dtype=np.float32)
    with _eval_head(head, f.device, dtype) as h, fast_math(f.device, fast):
        pair, sym = _pair_fn(h), is_symmetric(h)
        for a in range(0, n, block_size):
            for b in range(a if sym else 0, n, block_size):
                t = _tile(pair, f[a : a + block_size], f[b : b + block_size], upper=sym and a == b)
                out[a : a + block_size, b : b + block_size] = t
                if sym and b != a:
                    out[b : b + block_size, a : a + block_size] = t.T
    return out


@torch.inference_mode()
def score_blocks(
    queries, gallery, head: nn.Module, *, block_size: int = 1024, device=None,
    dtype: torch.dtype = torch.float32, transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, rows)``: the queries × gallery score matrix, ``block_size`` rows at a time.

    For consumers that must not hold the whole matrix at once (a MiningActor takes
    row blocks as they come; query scoring aggregates per class). Same tiling and
    device handling as :func:`score_all_pairs`; ``transform`` (e.g. ``torch.sigmoid``)
    is applied on the device before the copy back.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be ≥ 1, got {block_size}")
    q = _setup(queries, device, dtype)
    g = _setup(gallery, q.device, dtype)
    with _eval_head(head, q.device, dtype) as h:
        pair = _pair_fn(h)
        for a in range(0, len(q), block_size):
            yield a, _tile(pair, q[a : a + block_size], g, transform)


@torch.inference_mode()
def score_pairs(
    features, head: nn.Module, rows, cols, *, batch_size: int = 65536, device=None, dtype: torch.dtype = torch.float32,
    fast: bool = False,
) -> np.ndarray:
    """Head logits of the pairs ``(rows[e], cols[e])`` as a float32 array (``fast``: :func:`fast_math`)."""
    f = _setup(features, device, dtype)
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    if rows.shape != cols.shape:
        raise ValueError(f"rows and cols differ in shape: {rows.shape} vs {cols.shape}")
    out = np.empty(rows.shape, dtype=np.float32)
    with _eval_head(head, f.device, dtype) as h, fast_math(f.device, fast):
        for s in range(0, rows.size, batch_size):
            r = torch.as_tensor(rows.ravel()[s : s + batch_size], device=f.device)
            c = torch.as_tensor(cols.ravel()[s : s + batch_size], device=f.device)
            out.ravel()[s : s + batch_size] = h(f[r], f[c]).float().cpu().numpy()
    return out


def head_scores_fn(features, head: nn.Module, **kwargs) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``scores_fn(i_idx, j_idx)`` for the sparse miner, backed by :func:`score_pairs`."""
    f = _setup(features, kwargs.pop("device", None), kwargs.get("dtype", torch.float32))
    return lambda i_idx, j_idx: score_pairs(f, head, i_idx, j_idx, **kwargs)


def score_knn(
    features,
    head: nn.Module,
    *,
    k: int,
    labels=None,
    block_size: int = 1024,
    normalize: bool = False,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Head logits for each row's ``k`` nearest neighbours in feature space only.

    Neighbours by dot product (cosine if ``normalize``), self excluded, and other
    images of the same individual too when ``labels`` are given. Returns
    ``(indices, scores)``, both (N, k'), ``k' = min(k, N)``, neighbours in feature
    order (best first); missing neighbours are ``-1`` with score ``-inf``.
    """
    f = _setup(features, device, dtype)
    n = f.shape[0]
    codes = np.arange(n) if labels is None else label_codes(labels, n)
    idx, _ = knn_other(f.float(), codes, k, block_size=block_size, normalize=normalize)
    scores = np.full(idx.shape, -np.inf, dtype=np.float32)
    ok = idx != NO_NEIGHBOUR
    rows = np.broadcast_to(np.arange(n)[:, None], idx.shape)
    scores[ok] = score_pairs(f, head, rows[ok], idx[ok], device=device, dtype=dtype)
    return idx, scores
