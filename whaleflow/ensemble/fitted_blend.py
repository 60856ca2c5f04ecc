"""The blend as fitted, and its one predict: the steps the ensemble and ``whaleflow identify``
both run from per-model class scores to a top 5 with new_whale.

A :class:`FittedBlend` is which models, their weights, each model's score normaliser and
the new_whale threshold. :meth:`FittedBlend.predict` normalises each model's scores with its
normaliser and puts the models on common columns (:func:`.score_space.build_space`: every
class, or each query's candidate classes when a file is top-K), then
:meth:`FittedBlend.predict_aligned` blends them with the weights and inserts new_whale at the
threshold. The ensemble driver fits the blend (:mod:`.tune`), predicts its validation and
test queries with ``predict_aligned`` on the matrices it already built for tuning, and writes
the blend into ``ensemble/weights.json`` (:data:`WEIGHTS_FILE`, :meth:`FittedBlend.save`: the
validation side, the test side's normalisers and threshold, how it was tuned); ``identify``
reads it back (:meth:`FittedBlend.load`, the test side for new photos, the validation side for
the run's calibration) and predicts new photos with ``predict``. Nothing else parses the file.

Two choices belong to the caller, not the blend: ``prior_on_queries`` (the threshold follows
``predict.new_prior`` on the queries at hand, as the ensemble does for each query set; a
photo identified alone keeps the run's test threshold) and ``impute_uncovered`` (identify
only: a column some model cannot score — an individual enrolled after training, which the
classifier never saw — gets the blend of the models that score it, on the full blend's
scale, :func:`blend_with_coverage`; the ensemble gives it that model's row minimum).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..inference import ClassScores
from ..inference.impute import impute_columns
from ..inference.new_prior import prior_threshold
from ..inference.topk_scores import TopKScores
from .blend import blend_matrices, normalize_weights
from .normalize import ScoreNormalizer
from .score_space import ScoreSpace, build_space

__all__ = ["BlendPrediction", "FittedBlend", "WEIGHTS_FILE", "blend_with_coverage"]

#: where a run folder keeps its fitted blend
WEIGHTS_FILE = Path("ensemble") / "weights.json"


@dataclass
class BlendPrediction:
    """What :meth:`FittedBlend.predict` gives for a set of queries."""

    space: ScoreSpace                        # the blend's columns
    blended: np.ndarray                      # (n, columns) blended scores
    threshold: float                         # the new_whale threshold used
    predictions: list[list[str]]             # top 5 per query, new_whale inserted
    covered: list[np.ndarray] | None = None  # per model, the columns it scores (impute_uncovered only)


@dataclass
class FittedBlend:
    """The models' weights and normalisers and the new_whale threshold, in ``names`` order
    (``final_fit``: the models whose test-side scores come from their final fit)."""

    names: list[str]
    weights: dict[str, float]
    normalizers: dict[str, ScoreNormalizer]
    threshold: float
    new_prior: float | None = None
    final_fit: tuple[str, ...] = ()

    def to_record(self, test: "FittedBlend | None" = None, *, tuning: Mapping[str, Any] | None = None) -> dict:
        """What ``weights.json`` holds: this blend as the validation side, ``test``'s normalisers and
        threshold as the test side (``test`` defaults to this blend), and ``tuning`` (how the blend
        was tuned: scores, folds, study) between them, for people reading the file."""
        test = self if test is None else test
        if list(test.names) != list(self.names) or test.weights != self.weights:
            raise ValueError("the test side of a fitted blend must have the validation side's models and weights")
        return {
            "models": list(self.names),
            "weights": self.weights,
            "threshold": self.threshold,
            "test_threshold": test.threshold,
            "new_prior": self.new_prior,
            "threshold_scale": "normalised blend (see normalizers)",
            **(tuning or {}),
            "normalizers": {n: self.normalizers[n].to_dict() for n in self.names},
            "test_normalizers": {n: test.normalizers[n].to_dict() for n in self.names},
            "final_fit": list(self.final_fit),
        }

    @classmethod
    def from_record(cls, record: dict, side: str = "test") -> "FittedBlend":
        """The blend ``ensemble/weights.json`` holds, with the normalisers and threshold of the
        test side (``side="test"``: what new photos are scored with; under ``train.final_fit``
        the test scores came from the final fits) or of validation (``"val"``)."""
        if side not in ("test", "val"):
            raise ValueError(f"side must be test or val, got {side!r}")
        names = [str(n) for n in record["models"]]
        norms = (record.get("test_normalizers") if side == "test" else None) or record["normalizers"]
        threshold = record.get("test_threshold", record["threshold"]) if side == "test" else record["threshold"]
        return cls(names, {n: float(record["weights"][n]) for n in names},
                   {n: ScoreNormalizer.from_dict(norms[n]) for n in names}, float(threshold), record.get("new_prior"),
                   tuple(str(n) for n in record.get("final_fit") or ()))

    def save(self, run_dir: str | Path, test: "FittedBlend | None" = None, *,
             tuning: Mapping[str, Any] | None = None) -> Path:
        """Write :meth:`to_record` to ``run_dir``'s :data:`WEIGHTS_FILE`; returns its path."""
        from ..io import write_json

        path = Path(run_dir) / WEIGHTS_FILE
        write_json(path, self.to_record(test, tuning=tuning))
        return path

    @classmethod
    def load(cls, run_dir: str | Path, side: str = "test", *, fix: str) -> "FittedBlend":
        """The fitted blend of a run folder (``side`` as in :meth:`from_record`). A missing,
        unreadable or incomplete file is a :class:`~whaleflow.errors.DataError` naming it and ``fix``."""
        from ..errors import DataError

        path = Path(run_dir) / WEIGHTS_FILE
        if not path.is_file():
            raise DataError(f"no fitted blend ({WEIGHTS_FILE.as_posix()}).", file=path, fix=fix)
        try:
            return cls.from_record(json.loads(path.read_text(encoding="utf-8")), side=side)
        except json.JSONDecodeError as exc:
            raise DataError(f"the fitted blend is not valid JSON ({exc}).", file=path, fix=fix) from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"the fitted blend is incomplete ({type(exc).__name__}: {exc}).", file=path,
                            fix=fix) from None

    def align(self, scores: Sequence[ClassScores | TopKScores], images: np.ndarray) -> tuple[ScoreSpace, list[np.ndarray]]:
        """Each model's scores (in ``names`` order) normalised and put on the blend's columns."""
        return build_space(scores, [self.normalizers[n] for n in self.names], np.asarray(images))

    def predict(self, scores: Sequence[ClassScores | TopKScores], images: np.ndarray, *,
                prior_on_queries: bool = False, impute_uncovered: bool = False) -> BlendPrediction:
        """normalise → align → blend → new_whale at the threshold → top 5, for ``images``."""
        space, mats = self.align(scores, images)
        covered = None
        if impute_uncovered:
            if space.cand is not None:
                raise ValueError("filling uncovered columns needs dense class scores, not top-K files")
            covered = [np.isin(space.classes, np.asarray(s.classes, str)) for s in scores]
        return self.predict_aligned(space, mats, prior_on_queries=prior_on_queries, covered=covered)

    def predict_aligned(self, space: ScoreSpace, mats: Sequence[np.ndarray], *, prior_on_queries: bool = False,
                        covered: Sequence[np.ndarray] | None = None) -> BlendPrediction:
        """blend → new_whale at the threshold → top 5, on matrices :meth:`align` made (``covered``:
        which columns each model scores, for :func:`blend_with_coverage`)."""
        weights = [self.weights[n] for n in self.names]
        blended = blend_matrices(mats, weights) if covered is None else blend_with_coverage(mats, covered, weights)
        threshold = self.threshold
        if prior_on_queries and self.new_prior is not None:
            threshold = prior_threshold(blended, self.new_prior)
        predictions = space.predict_labels(blended, threshold, k=min(5, len(space.classes)))
        return BlendPrediction(space, blended, threshold, predictions, None if covered is None else list(covered))


def blend_with_coverage(matrices: Sequence[np.ndarray], covered: Sequence[np.ndarray], weights) -> np.ndarray:
    """The weighted blend of aligned (n, C) matrices where model m scores only the columns
    ``covered[m]``. Fully covered columns are exactly :func:`blend_matrices`. A column that
    some models cannot score gets the blend of those that can (their weights renormalised;
    equal when the tuned blend gave all of them weight 0), mapped per query onto the full
    blend's scale by :func:`~whaleflow.inference.impute.impute_columns`, fitted on the fully
    covered columns."""
    w = normalize_weights(weights)
    covered = [np.asarray(c, bool) for c in covered]
    filled = [np.where(c[None, :], m, m.min(axis=1, keepdims=True)) for m, c in zip(matrices, covered)]
    out = blend_matrices(filled, w)
    cov = np.stack(covered)                                              # (models, C)
    full = cov.all(axis=0)
    for pattern in np.unique(cov[:, ~full], axis=1).T:                   # each set of covering models
        cols = np.flatnonzero((cov == pattern[:, None]).all(axis=0) & ~full)
        use = np.flatnonzero(pattern)
        if not len(use):
            continue  # no model scores these columns: they stay at the blend of the minima
        wu = w[use] if w[use].sum() > 0 else np.ones(len(use))
        wu = wu / wu.sum()
        part = sum(wu[i] * np.asarray(matrices[m], np.float32) for i, m in enumerate(use))
        keep = full.copy()
        keep[cols] = True
        fitted = impute_columns(out[:, keep], part[:, keep], full[keep])
        out[:, cols] = fitted[:, np.flatnonzero(~full[keep])]
    return out
