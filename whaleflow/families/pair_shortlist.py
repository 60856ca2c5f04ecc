"""Siamese class scores that grow linearly in the gallery: the pair head on each query's shortlist.

The siamese family's pair head scores one (query, gallery photo) pair at a time. Scoring
every query against every gallery photo is Q·G head evaluations: from 7,000 photos to HWI
size that grows about 21×, to Happywhale's about 119×, and it dominated a trial's
validation and test scoring. Only each query's best few classes matter downstream: MAP@5
reads five, and score files above ``predict.store_topk_above`` classes keep the top
``predict.store_topk`` (100) and a ``rest`` below them (:mod:`whaleflow.inference.topk_scores`).

So, once the gallery holds more than ``predict.pair_shortlist`` (M) classes, each query
first ranks the classes by the cosine of the backbone's pooled features (unit-normalised,
summed over the flip views; a matrix product per block of queries, a few multiply-adds per
feature where the head costs a small MLP per pair), keeps its M best, and the head scores
only the photos of those M classes: Q·M·(photos per class) evaluations, linear in the
gallery. A shortlisted class gets exactly the score the full evaluation gives it (the same
head, views and class aggregation). Every other class gets the row's *floor*: the largest
float below its lowest shortlisted score (0 when that is 0, so probabilities stay in [0, 1]).
That is what a top-K file says of the classes it left out (``rest``: ranked below every kept
one), so with M ≥ ``store_topk`` the stored top-K holds only real head scores. The result is
exact whenever the gallery has at most M classes (the caller then scores everything).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..inference import aggregate_by_class

#: float32 cells of a batch's pair features (pairs × 2·width), by device type: on a CPU the
#: gathered pairs must stay in cache (1,600 pairs of width 160 at 2 MB scored 3× faster than
#: 52,000 at 64 MB, and as fast per pair as the full matrix's tiles); a GPU wants large batches
PAIR_BATCH_ELEMS = {"cpu": 1 << 19, "default": 1 << 24}


def use_shortlist(shortlist: int | None, g_labels: np.ndarray) -> bool:
    """Whether a gallery has more classes than the shortlist holds (``0``/``None``: never)."""
    return bool(shortlist) and len(np.unique(np.asarray(g_labels))) > int(shortlist)


def shortlist_classes(q: dict[bool, np.ndarray], g: dict[bool, np.ndarray], g_labels: np.ndarray,
                      num_classes: int, m: int, device=None) -> np.ndarray:
    """Each query's ``m`` gallery classes of highest cosine (max over a class's photos, summed
    over views), as a ``(Q, m)`` array of class indices; only classes with a gallery photo."""
    cos = None
    for f in q:
        qn = nn.functional.normalize(torch.as_tensor(np.asarray(q[f]), dtype=torch.float32, device=device), dim=1)
        gn = nn.functional.normalize(torch.as_tensor(np.asarray(g[f]), dtype=torch.float32, device=device), dim=1)
        c = qn @ gn.T
        cos = c if cos is None else cos.add_(c)
    by_class = aggregate_by_class(cos.cpu().numpy(), g_labels, num_classes, "max")
    absent = np.bincount(np.asarray(g_labels, np.int64), minlength=num_classes) == 0
    by_class[:, absent] = -np.inf  # aggregate_by_class gives them the matrix minimum
    return np.argpartition(-by_class, m - 1, axis=1)[:, :m]


def shortlist_pairs(top: np.ndarray, g_labels: np.ndarray, num_classes: int):
    """The (query, gallery photo) pairs of every query's shortlisted classes, grouped by
    (query, slot): query indices, gallery indices, each segment's first pair and length."""
    labels = np.asarray(g_labels, np.int64)
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=num_classes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    cnt = counts[top].ravel()
    first = np.concatenate([[0], np.cumsum(cnt)[:-1]]).astype(np.int64)
    within = np.arange(int(cnt.sum()), dtype=np.int64) - np.repeat(first, cnt)
    gi = order[np.repeat(starts[top].ravel(), cnt) + within]
    qi = np.repeat(np.repeat(np.arange(top.shape[0]), top.shape[1]), cnt)
    return qi, gi, first, cnt


def shortlisted_scores(q: dict[bool, np.ndarray], g: dict[bool, np.ndarray], g_labels: np.ndarray,
                       num_classes: int, head: nn.Module, *, shortlist: int, how: str = "max",
                       device=None) -> np.ndarray:
    """Query × class "same individual" probabilities with the head on each query's
    ``shortlist`` classes only, the rest at the row's floor (see the module docstring).

    ``q``/``g``: pooled features per view (flip → (n, D)); a pair's probability is the mean
    of its views' ``sigmoid(head)`` and a class's score the ``how`` (max | mean) of its photos',
    as :meth:`SiameseTask.image_scores` and :func:`aggregate_by_class` compute them."""
    if how not in ("max", "mean"):
        raise ValueError(f"unknown class aggregation {how!r}; use max or mean")
    n_q = len(next(iter(q.values())))
    m = min(int(shortlist), int((np.bincount(np.asarray(g_labels, np.int64), minlength=num_classes) > 0).sum()))
    if n_q == 0 or m == 0:
        return np.zeros((n_q, num_classes), np.float32)
    top = shortlist_classes(q, g, g_labels, num_classes, m, device)
    qi, gi, first, cnt = shortlist_pairs(top, g_labels, num_classes)
    prob = sum(pair_probabilities(q[f], g[f], qi, gi, head, device) for f in q) / len(q)
    if how == "max":
        vals = np.maximum.reduceat(prob, first)
    else:
        vals = (np.add.reduceat(prob, first, dtype=np.float64) / cnt).astype(np.float32)
    vals = vals.reshape(top.shape)
    low = vals.min(axis=1)
    floor = np.where(low > 0, np.nextafter(low, np.float32(-np.inf)), np.minimum(low, 0)).astype(np.float32)
    out = np.repeat(floor[:, None], num_classes, axis=1)
    np.put_along_axis(out, top, vals, axis=1)
    return out


@torch.inference_mode()
def pair_probabilities(q: np.ndarray, g: np.ndarray, qi: np.ndarray, gi: np.ndarray, head: nn.Module,
                       device=None) -> np.ndarray:
    """``sigmoid(head)`` of the pairs ``(q[qi[e]], g[gi[e]])``, the head in eval mode (put back
    after): :meth:`PairHead.score_indexed` (linear terms once per vector), or ``head(x, y)`` on
    the gathered pairs for any other head."""
    p = next(head.parameters())
    dev = torch.device(device) if device is not None else p.device
    xq = torch.as_tensor(np.asarray(q), dtype=p.dtype, device=dev)
    xg = torch.as_tensor(np.asarray(g), dtype=p.dtype, device=dev)
    a, b = torch.as_tensor(qi, device=dev), torch.as_tensor(gi, device=dev)
    batch = max(1, PAIR_BATCH_ELEMS.get(dev.type, PAIR_BATCH_ELEMS["default"]) // (2 * xq.shape[1]))
    was = head.training
    head.eval()
    try:
        if hasattr(head, "score_indexed"):
            logits = head.score_indexed(xq, xg, a, b, batch_size=batch)
        else:
            logits = torch.cat([head(xq[a[s : s + batch]], xg[b[s : s + batch]])
                                for s in range(0, len(a), batch)]) if len(a) else xq.new_zeros(0)
    finally:
        head.train(was)
    return torch.sigmoid(logits.float()).cpu().numpy()
