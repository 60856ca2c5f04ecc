"""What the blend's columns mean: every class (dense), or each query's candidate classes (top-K).

With dense score files every model is aligned on the common class list, column j
is class j, as before (:mod:`.blend`). As soon as one trial stored top-K scores
(:mod:`whaleflow.inference.topk_scores`, Happywhale scale), the blend works on
**candidates**: for each query the union of every model's stored classes (at most
``M·K``, e.g. 9 × 100), and each model's matrix is ``queries × candidates``, its
score for a candidate it did not keep being its ``rest`` (the best score it left
out, an upper bound of the true one). A class no model kept scores ``Σ w·rest`` at
most — never above a candidate, each of which is at least that — so the blend's top
five are always among the candidates, and candidates are ranked exactly except that
a model's unkept score is taken at its upper bound. Memory is ``M × n × W × 4``
bytes (W ≤ M·K) instead of ``M × n × C``: ~1 GB instead of ~15 GB for nine models at
27,956 × 15,587.

The matrices are then ordinary aligned ``(n, W)`` arrays: :func:`.blend.blend_matrices`
and :func:`.tune.tune_blend` need no change, once the validation truth is given as
candidate columns (:meth:`ScoreSpace.truth_indices`); :meth:`ScoreSpace.predict_labels`
maps the blend's top five back to class names. Normalisers are fitted on what a file
holds: the whole matrix (dense), or the stored top-K values (the normaliser only uses
each row's top five; whether the scores are probabilities comes from the file's
``value_range``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..inference import ClassScores
from ..inference.topk import insert_new_whale, truth_indices
from ..inference.topk_scores import TopKScores
from ..labels import NEW_WHALE
from .blend import align_all, common_classes
from .normalize import ScoreNormalizer

__all__ = ["ScoreSpace", "build_space", "fit_normalizer"]

#: a padded candidate slot (rows with fewer candidates than the widest): below any real score
PAD = np.float32(-1e4)
#: candidates a dense model contributes per query in candidate mode
DENSE_CANDIDATES = 100


@dataclass
class ScoreSpace:
    classes: np.ndarray              # the common class list
    cand: np.ndarray | None = None   # (n, W) class index per column, -1 = padding; None: dense

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def truth_indices(self, truth) -> np.ndarray:
        """Truth as blend columns: -1 new_whale, -2 not among the columns."""
        t = truth_indices(np.asarray(truth), self.classes)
        if self.cand is None:
            return t
        hit = (self.cand == t[:, None]) & (t[:, None] >= 0)
        return np.where(hit.any(axis=1), hit.argmax(axis=1), np.where(t == -1, -1, -2)).astype(np.int64)

    def predict_labels(self, blended: np.ndarray, threshold: float, k: int = 5) -> list[list[str]]:
        """Ranked labels per query with new_whale inserted at ``threshold``."""
        top = insert_new_whale(blended, threshold, k)
        if self.cand is not None:
            top = np.where(top >= 0, np.take_along_axis(self.cand, np.maximum(top, 0), axis=1), -1)
        names = np.append(np.asarray(self.classes).astype(object), NEW_WHALE)
        return [list(names[row]) for row in top]

    def top_labels(self, blended: np.ndarray) -> list[str]:
        """Each query's best known class (no new_whale), "" where there is no column."""
        if blended.shape[1] == 0:
            return [""] * len(blended)
        col = blended.argmax(axis=1)
        idx = col if self.cand is None else self.cand[np.arange(len(col)), col]
        return [str(self.classes[i]) if i >= 0 else "" for i in idx]


def fit_normalizer(scores: ClassScores | TopKScores, logit: bool | None = None) -> ScoreNormalizer:
    """The model's normaliser from a score file (dense matrix or stored top-K); ``logit``
    as another fit of the same model decided (None: from the file)."""
    if isinstance(scores, TopKScores):
        return ScoreNormalizer.fit(scores.values.astype(np.float32),
                                   logit=scores.probability_like if logit is None else logit)
    return ScoreNormalizer.fit(scores.scores, logit=logit)


def _unkept(s: TopKScores, rows: np.ndarray) -> np.ndarray:
    """Score of a class a top-K file left out: its ``rest`` (or below its lowest kept one)."""
    rest = s.rest[rows].astype(np.float32)
    low = s.values[rows].astype(np.float32).min(axis=1) - 1.0
    return np.where(np.isfinite(rest), rest, low)


def _candidate_ids(s, norm, classes, images) -> np.ndarray:
    if isinstance(s, TopKScores):
        return s.class_map(classes)[s.ids[s.row_order(images)]]
    m = norm.transform(s.aligned(classes, images).scores)
    k = min(DENSE_CANDIDATES, m.shape[1])
    return np.argpartition(-m, k - 1, axis=1)[:, :k]


def _union(ids: Sequence[np.ndarray]) -> np.ndarray:
    """Per row the distinct non-negative ids of all blocks, padded with -1 to the widest row."""
    allc = np.sort(np.concatenate(ids, axis=1), axis=1)
    allc[:, 1:][allc[:, 1:] == allc[:, :-1]] = -1
    order = np.argsort(allc < 0, axis=1, kind="stable")
    allc = np.take_along_axis(allc, order, axis=1)
    width = max(1, int((allc >= 0).sum(axis=1).max()))
    return allc[:, :width].astype(np.int32)


def _values_at(s: TopKScores, classes, images, cand: np.ndarray) -> np.ndarray:
    """A top-K model's raw scores at the candidate classes (unkept → ``rest``)."""
    rows = s.row_order(images)
    ids = s.class_map(classes)[s.ids[rows]]
    n, c = len(images), len(classes)
    keys = (np.arange(n, dtype=np.int64)[:, None] * c + ids).ravel()
    vals = s.values[rows].astype(np.float32).ravel()
    ok = ids.ravel() >= 0
    keys, vals = keys[ok], vals[ok]
    order = np.argsort(keys, kind="stable")
    keys, vals = keys[order], vals[order]
    q = np.arange(n, dtype=np.int64)[:, None] * c + np.maximum(cand, 0)
    at = np.clip(np.searchsorted(keys, q), 0, max(len(keys) - 1, 0))
    found = keys[at] == q if len(keys) else np.zeros(q.shape, bool)
    return np.where(found, vals[at] if len(keys) else 0.0, _unkept(s, rows)[:, None]).astype(np.float32)


def build_space(scores: Sequence[ClassScores | TopKScores], norms: Sequence[ScoreNormalizer],
                images: np.ndarray) -> tuple[ScoreSpace, list[np.ndarray]]:
    """The blend's columns and each model's normalised ``(n, columns)`` matrix in ``images`` order."""
    classes = common_classes(scores)
    if not any(isinstance(s, TopKScores) for s in scores):
        normed = [ClassScores(nm.transform(s.scores), s.images, s.classes, s.truth) for s, nm in zip(scores, norms)]
        return ScoreSpace(classes), align_all(normed, classes, images)
    cand = _union([_candidate_ids(s, nm, classes, images) for s, nm in zip(scores, norms)])
    pad = cand < 0
    mats = []
    for s, nm in zip(scores, norms):
        if isinstance(s, TopKScores):
            m = nm.transform(_values_at(s, classes, images, cand))
        else:
            dense = nm.transform(s.aligned(classes, images).scores)
            m = np.take_along_axis(dense, np.maximum(cand, 0).astype(np.int64), axis=1)
            del dense
        m[pad] = PAD
        mats.append(m.astype(np.float32, copy=False))
    return ScoreSpace(classes, cand), mats


def truth_of(scores: Sequence[ClassScores | TopKScores], images: np.ndarray) -> np.ndarray:
    """Validation truth labels in ``images`` order (from the first file that has them)."""
    s = scores[0]
    if s.truth is None:
        raise ValueError("validation scores carry no truth labels")
    row = {im: i for i, im in enumerate(s.images)}
    return np.asarray(s.truth)[[row[im] for im in images]].astype(str)
