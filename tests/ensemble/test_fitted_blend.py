"""The fitted blend's predict (the one the ensemble and identify share) against a per-query loop."""
from __future__ import annotations

import numpy as np
import pytest

from whaleflow.ensemble.fitted_blend import FittedBlend
from whaleflow.ensemble.normalize import ScoreNormalizer
from whaleflow.inference import ClassScores
from whaleflow.labels import NEW_WHALE


def _models(rng, n=12):
    """Three models scoring the same photos in their own row and column orders; the third
    leaves two classes out."""
    classes = np.array([f"w{i}" for i in range(8)])
    images = np.array([f"p{i}.jpg" for i in range(n)])
    out = []
    for m in range(3):
        cls = classes[rng.permutation(8)][: 8 if m < 2 else 6]
        rows = rng.permutation(n)
        out.append(ClassScores(rng.normal(size=(n, len(cls))).astype(np.float32), images[rows], cls))
    return out, images


def _by_hand(blend: FittedBlend, scores, images, threshold: float) -> list[list[str]]:
    """Per query: each model's normalised score per class (a class it lacks: its row minimum),
    the weighted sum, classes by score (ties by name order), new_whale before the first below
    the threshold."""
    classes = sorted({str(c) for s in scores for c in s.classes})
    w = np.array([blend.weights[n] for n in blend.names], np.float64)
    w = w / w.sum()
    out = []
    for im in images:
        total = {c: 0.0 for c in classes}
        for name, s, wm in zip(blend.names, scores, w):
            row = blend.normalizers[name].transform(s.scores[list(s.images).index(im)][None])[0]
            per = dict(zip(map(str, s.classes), row))
            for c in classes:
                total[c] += np.float32(wm) * np.float32(per.get(c, row.min()))
        ranked = sorted(classes, key=lambda c: (-np.float32(total[c]), classes.index(c)))[:5]
        pos = next((i for i, c in enumerate(ranked) if np.float32(total[c]) < threshold), None)
        if pos is not None:
            ranked = (ranked[:pos] + [NEW_WHALE] + ranked[pos:])[:5]
        out.append(ranked)
    return out


def _blend(scores, weights: dict, **kw) -> FittedBlend:
    """A blend of models a, b, c with each normaliser fitted on its own scores."""
    names = list(weights)
    return FittedBlend(names, weights, {n: ScoreNormalizer.fit(s.scores) for n, s in zip(names, scores)}, **kw)


def test_predict_matches_a_per_query_loop():
    rng = np.random.default_rng(3)
    scores, images = _models(rng)
    blend = _blend(scores, {"a": 0.5, "b": 0.3, "c": 0.2}, threshold=0.4)
    pred = blend.predict(scores, images)
    assert pred.threshold == 0.4
    assert pred.predictions == _by_hand(blend, scores, images, 0.4)
    # the same blend on matrices it aligned itself: what the ensemble driver calls
    space, mats = blend.align(scores, images)
    assert np.array_equal(blend.predict_aligned(space, mats).blended, pred.blended)


def test_prior_on_queries_sets_the_threshold_from_the_share_of_new_ones():
    rng = np.random.default_rng(4)
    scores, images = _models(rng, n=40)
    blend = _blend(scores, {"a": 1.0, "b": 1.0, "c": 1.0}, threshold=-99.0, new_prior=0.25)
    kept = blend.predict(scores, images)
    assert kept.threshold == -99.0 and not any(p[0] == NEW_WHALE for p in kept.predictions)
    pred = blend.predict(scores, images, prior_on_queries=True)
    assert sum(p[0] == NEW_WHALE for p in pred.predictions) == 10  # 25 % of 40, no ties in random scores
    assert pred.predictions == _by_hand(blend, scores, images, pred.threshold)


def test_impute_uncovered_marks_the_columns_a_model_cannot_score():
    rng = np.random.default_rng(5)
    scores, images = _models(rng)
    blend = _blend(scores, {"a": 0.2, "b": 0.3, "c": 0.5}, threshold=0.0)
    pred = blend.predict(scores, images, impute_uncovered=True)
    assert [int((~c).sum()) for c in pred.covered] == [0, 0, 2]
    full = pred.covered[2]
    plain = blend.predict(scores, images).blended
    assert np.array_equal(pred.blended[:, full], plain[:, full])  # covered columns: the plain blend


def test_from_record_reads_either_side():
    norm = {"a": ScoreNormalizer.fit(np.arange(20, dtype=np.float32).reshape(4, 5)).to_dict()}
    test_norm = {"a": ScoreNormalizer.fit(np.arange(20, 40, dtype=np.float32).reshape(4, 5)).to_dict()}
    record = {"models": ["a"], "weights": {"a": 1.0}, "threshold": 0.1, "test_threshold": 0.7, "new_prior": 0.3,
              "normalizers": norm, "test_normalizers": test_norm}
    test, val = FittedBlend.from_record(record), FittedBlend.from_record(record, side="val")
    assert (test.threshold, val.threshold, test.new_prior) == (0.7, 0.1, 0.3)
    assert test.normalizers["a"].to_dict() == test_norm["a"] and val.normalizers["a"].to_dict() == norm["a"]
    older = {k: v for k, v in record.items() if k not in ("test_threshold", "test_normalizers")}
    assert FittedBlend.from_record(older).threshold == 0.1  # a run from before the test side was kept
    with pytest.raises(ValueError, match="side"):
        FittedBlend.from_record(record, side="train")
