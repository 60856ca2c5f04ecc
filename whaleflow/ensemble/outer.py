"""The expected test MAP@5 of the ensemble: the whole blend choice, cross-validated once more.

:func:`~whaleflow.ensemble.tune.tune_blend` picks the weights (best of N Optuna trials)
and the threshold on validation, so its figures are in-sample for the weights: the
more trials, the more the best one flatters itself. Here validation is split into
``outer_folds`` folds (stratified like the inner ones); for each, the *whole*
procedure — Optuna over the weights with its inner cross-validated threshold, the
final threshold, the single-model guard — runs on the other folds only, and the
held-out fold is scored once with what they chose (under ``predict.new_prior`` the
held-out fold's own threshold comes from the rule, as the test set's does). No
held-out image takes part in any choice made for it, so the size-weighted mean is
an estimate of the test MAP@5 and the spread over folds says how far to trust it.

What this cannot undo: each model's best epoch was picked on all of validation
before the ensemble ran. With a handful of models and one checkpoint choice each
that is a small optimism, stated in the report next to the figure.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from ..inference.new_prior import prior_threshold
from .blend import blend_matrices
from .tune import RankedTopK, make_folds, tune_blend

__all__ = ["OuterEstimate", "outer_estimate"]

#: the outer folds are drawn with another seed than the inner ones, so the two splits differ
OUTER_SEED_OFFSET = 7919


@dataclass
class OuterEstimate:
    map5: float                  # size- (or weight-) weighted mean of the held-out folds' MAP@5
    std: float                   # standard deviation of the per-fold MAP@5
    folds: list[dict] = field(default_factory=list)  # per fold: images, map5, weights, threshold
    # per validation query: its AP when its fold was held out, and that fold (for the
    # per-bin table and the range over test mixes, :mod:`.estimate_range`)
    query_ap: np.ndarray | None = field(default=None, repr=False)
    fold_ids: np.ndarray | None = field(default=None, repr=False)

    @property
    def stderr(self) -> float:
        return self.std / np.sqrt(len(self.folds)) if self.folds else float("nan")

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("query_ap", "fold_ids")}
        return {**d, "stderr": float(self.stderr), "n_folds": len(self.folds)}


def outer_estimate(
    matrices: Sequence[np.ndarray],
    truth_idx: np.ndarray,
    names: Sequence[str],
    *,
    outer_folds: int,
    trials: int,
    folds: int,
    seed: int,
    fixed_threshold: float | None = None,
    prior: float | None = None,
    row_weights: np.ndarray | None = None,
    weighted_choice: bool = True,
    choice: str = "best",
) -> OuterEstimate | None:
    """Score each outer fold with the blend chosen on the others; None with < 2 folds or images.

    With ``row_weights`` (:mod:`.gallery_mix`) each held-out fold's MAP@5 is the weighted mean
    and the folds are pooled by their weight; ``weighted_choice`` says whether the choice
    on the other folds was weighted too (as the run's own choice is)."""
    truth_idx = np.asarray(truth_idx, dtype=np.int64)
    n = len(truth_idx)
    if outer_folds < 2 or n < 2 * outer_folds:
        return None
    fold_ids = make_folds(truth_idx, outer_folds, seed + OUTER_SEED_OFFSET)
    rows: list[dict] = []
    query_ap = np.zeros(n, dtype=np.float64)
    for f in np.unique(fold_ids):
        held, inner = fold_ids == f, fold_ids != f
        chosen = tune_blend([m[inner] for m in matrices], truth_idx[inner], list(names), trials=trials,
                            folds=folds, seed=seed, storage_path=None, fixed_threshold=fixed_threshold,
                            prior=prior, progress=False,
                            row_weights=row_weights[inner] if row_weights is not None and weighted_choice else None,
                            choice=choice)
        weights = np.array([chosen.weights[nm] for nm in names])
        ranked = RankedTopK.from_scores(blend_matrices([m[held] for m in matrices], weights), truth_idx[held],
                                        weights=None if row_weights is None else row_weights[held])
        threshold = prior_threshold(ranked.values[:, 0], prior) if prior is not None else chosen.threshold
        query_ap[held] = ranked.ap_at(threshold)
        rows.append({"fold": int(f), "images": int(held.sum()), "weight": ranked.total_weight,
                     "map5": float(ranked.map_at(threshold)),
                     "inner_map5": float(chosen.val_map5), "threshold": float(threshold),
                     "weights": chosen.weights})
    sizes = np.array([r["weight"] for r in rows], dtype=np.float64)
    maps = np.array([r["map5"] for r in rows])
    return OuterEstimate(map5=float((maps * sizes).sum() / sizes.sum()), std=float(maps.std(ddof=1)), folds=rows,
                         query_ap=query_ap, fold_ids=np.asarray(fold_ids))
