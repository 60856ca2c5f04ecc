"""The expected test MAP@5 as a range over the test mixes that are plausible, not one guess.

A query's chance of a hit depends most on how many photos of its individual the gallery
holds, and nobody knows in advance how the test queries spread over those gallery sizes.
:mod:`.gallery_mix` assumes one mix (individuals photographed again in proportion to their
photos); on a set whose test asked about every known individual once, half the known queries
searched a one-photo gallery where that assumption expected 14 %, and the estimate was 0.08
too high while every per-bin figure matched test. So the estimate is given for three mixes:

* ``proportional``: test queries ∝ labelled photos per individual (the point estimate);
* ``per_individual``: one query per known individual;
* ``implied``: the mix the run's own test predictions imply — each test query counted in the
  bin of the individual its blend ranks first, and the new share the blend's "new first"
  share implies (corrected by how often validation put new first against its true share).

Each mix reweights the same held-out validation APs (every query's AP when its outer fold
was held out, :mod:`.outer`); its standard error comes from the spread over outer folds.
``low``/``high`` are the lowest estimate minus its error and the highest plus its error,
the high end also crediting test galleries larger than any validation query's
(:func:`_beyond`).
"""
from __future__ import annotations

import numpy as np

from ..metrics import ap_by_bin
from .gallery_mix import MIN_QUERIES, gallery_bin, mix_weights

__all__ = ["MIXES", "mix_shares", "estimate_range"]

MIXES = ("proportional", "per_individual", "implied")


def mix_shares(kind: str, counts: np.ndarray, predicted_sizes: np.ndarray | None = None) -> np.ndarray | None:
    """Shares of known test queries over power-of-two gallery bins under mix ``kind``
    (``counts``: labelled photos per known individual; ``predicted_sizes``: the gallery size of
    each test query's first-ranked individual, for ``implied``). None when it cannot be formed."""
    counts = np.asarray(counts, dtype=np.float64)
    counts = counts[counts > 0]
    if kind == "implied":
        if predicted_sizes is None or not np.any(np.asarray(predicted_sizes) > 0):
            return None
        sizes = np.asarray(predicted_sizes)
        return np.bincount(gallery_bin(sizes[sizes > 0])) / float((sizes > 0).sum())
    if not len(counts):
        return None
    bins = gallery_bin(counts)
    if kind == "proportional":
        return np.bincount(bins, weights=counts) / counts.sum()
    if kind == "per_individual":
        return np.bincount(bins) / float(len(counts))
    raise ValueError(f"unknown test mix {kind!r}: use one of {MIXES}")


def _new_weights(weights: np.ndarray, known: np.ndarray, new_share: float | None) -> np.ndarray:
    """Scale the new-individual queries' weights so they carry ``new_share`` of the total."""
    w = weights.copy()
    new = ~known
    if new_share is None or not new.any() or not known.any():
        return w
    s = float(np.clip(new_share, 0.0, 0.95))
    w[new] = s / (1 - s) * w[known].sum() / new.sum()
    return w


def _beyond(ap: np.ndarray, w: np.ndarray, sizes: np.ndarray, shares: np.ndarray) -> float:
    """What the high end adds for test queries whose galleries are larger than any
    validation query's: a validation query's own photo is out of its gallery, so when every
    individual has few photos no validation query ever sees the test's gallery size (three
    photos each: validation searches two, test three). The point estimate gives those queries
    the largest observed bin's AP (no gain from more photos); the high end lets each doubling
    of the gallery halve that bin's miss rate (independent photos would square it)."""
    known = sizes > 0
    if not known.any():
        return 0.0
    top = int(gallery_bin(sizes[known]).max())
    in_top = known & (gallery_bin(np.maximum(sizes, 1)) == top)
    miss = 1.0 - float(ap[in_top].mean())
    up = sum(float(q) * (1.0 - 0.5 ** (b - top)) for b, q in enumerate(shares) if b > top)
    known_share = float(w[known].sum() / max(w.sum(), 1e-12))
    return known_share * miss * up


def _weighted(ap: np.ndarray, w: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    """Weighted mean AP and its standard error from the per-fold weighted means."""
    mean = float((ap * w).sum() / max(w.sum(), 1e-12))
    per = [float((ap[folds == f] * w[folds == f]).sum() / max(w[folds == f].sum(), 1e-12))
           for f in np.unique(folds) if w[folds == f].sum() > 0]
    se = float(np.std(per, ddof=1) / np.sqrt(len(per))) if len(per) > 1 else 0.0
    return mean, se


def estimate_range(query_ap: np.ndarray, fold_ids: np.ndarray, val_sizes: np.ndarray, counts: np.ndarray, *,
                   predicted_sizes: np.ndarray | None = None, implied_new_share: float | None = None,
                   min_queries: int = MIN_QUERIES) -> dict:
    """The range of the expected test MAP@5 over :data:`MIXES`; see the module docstring.

    ``query_ap``/``fold_ids``: each validation query's held-out AP and outer fold;
    ``val_sizes``: its individual's photos in the gallery it was scored against (0: a new
    individual); ``counts``: labelled photos per known individual (the test gallery)."""
    ap = np.asarray(query_ap, dtype=np.float64)
    sizes = np.asarray(val_sizes, dtype=np.int64)
    known = sizes > 0
    folds = np.asarray(fold_ids)
    mixes = {}
    for kind in MIXES:
        shares = mix_shares(kind, counts, predicted_sizes)
        if shares is None:
            continue
        w = mix_weights(sizes, known, counts, min_queries, shares=shares).weights
        new_share = implied_new_share if kind == "implied" else None
        w = _new_weights(w, known, new_share)
        mean, se = _weighted(ap, w, folds)
        mixes[kind] = {"map5": mean, "se": se, "beyond": _beyond(ap, w, sizes, shares),
                       "new_share": float(w[~known].sum() / max(w.sum(), 1e-12)),
                       "shares": {_bin_text(b): float(x) for b, x in enumerate(shares) if x > 0}}
    if not mixes:
        return {}
    low = min(m["map5"] - m["se"] for m in mixes.values())
    high = max(m["map5"] + m["beyond"] + m["se"] for m in mixes.values())
    return {"low": float(low), "high": float(high), "mixes": mixes, "bins": ap_by_bin(ap, sizes)}


def _bin_text(b: int) -> str:
    """Label of power-of-two bin ``b`` (0: 1 photo, 1: 2, 2: 3–4, 3: 5–8, …)."""
    if b == 0:
        return "1"
    lo, hi = 2 ** (b - 1) + 1, 2 ** b
    return str(hi) if lo == hi else f"{lo}-{hi}"


def run_estimate(cfg, run_dir, outer, val_images: np.ndarray, truth_idx: np.ndarray, test_top: list[str], *,
                 val_new_first: float, test_new_first: float, mix=None) -> tuple[dict, np.ndarray | None]:
    """The run's range (:func:`estimate_range`) and each validation query's gallery size
    (None without a readable split): what the ensemble driver writes into summary.json.
    ``mix``: the run's :class:`~.gallery_mix.GalleryMix` when the driver already built it
    (``ensemble.test_mix: gallery``); otherwise it is read from the split here."""
    from pathlib import Path

    from .gallery_mix import mix_from_split

    truth_idx = np.asarray(truth_idx)
    if mix is None:
        mix = mix_from_split(Path(run_dir) / "prepared" / "split.csv", val_images, truth_idx != -1,
                             val_gallery=cfg.predict.val_gallery, chunks=cfg.predict.val_chunks,
                             seed=cfg.train.seed)
    if mix is None or mix.val_sizes is None:
        return {}, None
    if outer is None or outer.query_ap is None:
        return {}, mix.val_sizes
    counts = np.array(list(mix.labelled_counts.values()))
    predicted = np.array([mix.labelled_counts.get(str(label), 0) for label in test_top])
    val_new = float((truth_idx == -1).mean()) if len(truth_idx) else 0.0
    implied_new = test_new_first * val_new / val_new_first if val_new_first > 0 else None
    return estimate_range(outer.query_ap, outer.fold_ids, mix.val_sizes, counts, predicted_sizes=predicted,
                          implied_new_share=implied_new), mix.val_sizes


def model_bins(matrices, truth_idx: np.ndarray, thresholds: list[float], sizes: np.ndarray) -> list[dict]:
    """Each model's validation MAP@5 per gallery-size bin at its own threshold."""
    from ..inference.ranked import RankedTopK

    return [ap_by_bin(RankedTopK.from_scores(m, truth_idx).ap_at(t), sizes) for m, t in zip(matrices, thresholds)]
