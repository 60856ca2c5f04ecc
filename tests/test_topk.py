"""new_whale insertion and threshold tuning against brute force."""
import numpy as np
import pytest

from whaleflow.inference import aggregate_by_class, class_centroids, insert_new_whale, predict_labels, tune_threshold
from whaleflow.inference.topk import truth_indices
from whaleflow.metrics import map_at_k


def _reference(scores, threshold, k=5):
    out = []
    for row in scores:
        order = list(np.argsort(-row, kind="stable"))
        ranked = []
        inserted = False
        for c in order:
            if not inserted and row[c] < threshold:
                ranked.append(-1)
                inserted = True
            ranked.append(c)
        out.append(ranked[:k])
    return np.array(out)


def test_insert_matches_reference():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(50, 9)).astype(np.float32)
    for t in (-5, -0.5, 0.0, 0.7, 5):
        assert (insert_new_whale(scores, t) == _reference(scores, t)).all()


def test_new_whale_first_when_best_is_weak():
    labels = predict_labels(np.array([[0.1, 0.2, 0.05]]), np.array(["a", "b", "c"]), threshold=0.5)
    assert labels[0][:4] == ["new_whale", "b", "a", "c"]


def test_tuned_threshold_is_best_of_brute_force():
    rng = np.random.default_rng(1)
    n, c = 80, 12
    truth = rng.integers(-1, c, size=n)
    scores = rng.normal(size=(n, c)).astype(np.float32)
    scores[truth >= 0, truth[truth >= 0]] += 1.5
    t, value = tune_threshold(scores, truth)
    names = np.array([f"w{i}" for i in range(c)])
    truth_names = ["new_whale" if x < 0 else names[x] for x in truth]
    assert value == pytest.approx(map_at_k(predict_labels(scores, names, t), truth_names))
    for cand in np.linspace(scores.min(), scores.max(), 40):
        assert map_at_k(predict_labels(scores, names, cand), truth_names) <= value + 1e-9


def test_truth_indices():
    idx = truth_indices(np.array(["b", "new_whale", "zz"]), np.array(["a", "b"]))
    assert list(idx) == [1, -1, -2]


def test_centroids_and_aggregation():
    emb = np.array([[1, 0], [0.8, 0.6], [0, 1]], dtype=np.float32)
    cent = class_centroids(emb, np.array([0, 0, 1]), 3)
    assert np.allclose(np.linalg.norm(cent[:2], axis=1), 1)
    assert np.allclose(cent[2], 0)
    agg = aggregate_by_class(np.array([[0.1, 0.9, 0.3]]), np.array([0, 0, 1]), 2)
    assert np.allclose(agg, [[0.9, 0.3]])
