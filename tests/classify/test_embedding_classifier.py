"""EmbeddingClassifier: separates Gaussian clusters, reproducible, PCA as sklearn, save/load."""
import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from whaleflow.classify import EmbeddingClassifier, build_classifier
from whaleflow.config import ClassifierConfig

FAST = dict(pca_dim=16, hidden=64, epochs=40, batch_size=64, lr=3e-3)


def _clusters(seed, classes=12, dim=48, per_class=30, spread=0.6):
    """Gaussian clusters around random unit centres; returns (x, y) shuffled."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(classes), per_class)
    x = centres[y] + spread / np.sqrt(dim) * rng.normal(size=(len(y), dim))
    order = rng.permutation(len(y))
    return x[order].astype(np.float32), y[order]


def test_separates_held_out_clusters():
    x, y = _clusters(0)
    cut = len(y) * 2 // 3
    clf = EmbeddingClassifier(**FAST).fit(x[:cut], y[:cut])
    scores = clf.predict_scores(x[cut:])
    assert scores.shape == (len(y) - cut, 12) and scores.dtype == np.float32
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    assert (scores.argmax(axis=1) == y[cut:]).mean() >= 0.95


def test_same_seed_same_scores_other_seed_differs():
    x, y = _clusters(1)
    a = EmbeddingClassifier(**FAST, dropout=0.3, seed=5).fit(x, y).predict_scores(x)
    b = EmbeddingClassifier(**FAST, dropout=0.3, seed=5).fit(x, y).predict_scores(x)
    c = EmbeddingClassifier(**FAST, dropout=0.3, seed=6).fit(x, y).predict_scores(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fit_leaves_global_torch_rng_alone():
    x, y = _clusters(8, classes=3)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    EmbeddingClassifier(**FAST).fit(x, y)
    assert torch.equal(torch.rand(3), expected)


def test_full_batch_and_whitening_work():
    x, y = _clusters(2)
    clf = EmbeddingClassifier(pca_dim=16, whiten=True, hidden=64, epochs=150, lr=1e-2, batch_size=None).fit(x, y)
    assert (clf.predict_scores(x).argmax(axis=1) == y).mean() >= 0.95


@pytest.mark.parametrize("whiten", [False, True])
def test_projection_matches_sklearn_pca(whiten):
    x, y = _clusters(3)
    clf = EmbeddingClassifier(pca_dim=10, whiten=whiten, epochs=0, seed=0).fit(x, y)
    want = PCA(n_components=10, whiten=whiten, random_state=0).fit(x).transform(x)
    np.testing.assert_allclose(clf._project(x), want, rtol=1e-3, atol=1e-4)


def test_pca_dims_clipped_to_training_size():
    x, y = _clusters(4, classes=3, dim=20, per_class=2)  # n = 6 < D = 20 < pca_dim
    clf = EmbeddingClassifier(pca_dim=64, hidden=8, epochs=5).fit(x, y)
    assert clf.transform(x).shape == (6, 6)
    clf = EmbeddingClassifier(pca_dim=None, hidden=8, epochs=5).fit(x, y)
    assert clf.transform(x).shape == (6, 20)


def test_num_classes_adds_unseen_columns():
    x, y = _clusters(5, classes=4)
    scores = EmbeddingClassifier(**FAST).fit(x, y, num_classes=7).predict_scores(x[:5])
    assert scores.shape == (5, 7)
    assert scores[:, 4:].max() < 0.05


def test_save_load_round_trip(tmp_path):
    x, y = _clusters(6)
    clf = EmbeddingClassifier(**FAST, whiten=True).fit(x, y)
    path = tmp_path / "clf" / "classifier.pt"
    clf.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["classifier.pt"]  # no temp leftovers
    back = EmbeddingClassifier.load(path)
    np.testing.assert_array_equal(back.predict_scores(x), clf.predict_scores(x))
    assert (back.num_classes, back.input_dim, back.whiten, back.pca_dim) == (12, 48, True, 16)


def test_build_from_config():
    cfg = ClassifierConfig(pca_dim=8, whiten=True, hidden=32, dropout=0.1, epochs=3, lr=0.01)
    clf = build_classifier(cfg, seed=4)
    assert (clf.pca_dim, clf.whiten, clf.hidden, clf.dropout, clf.epochs, clf.lr, clf.seed) == (
        8, True, 32, 0.1, 3, 0.01, 4
    )


def test_rejects_bad_inputs(tmp_path):
    x, y = _clusters(7, classes=3)
    with pytest.raises(RuntimeError):
        EmbeddingClassifier().predict_scores(x)
    with pytest.raises(ValueError):
        EmbeddingClassifier().fit(x, y[:-1])
    with pytest.raises(ValueError):
        EmbeddingClassifier().fit(x, y.astype(float))
    with pytest.raises(ValueError):
        EmbeddingClassifier().fit(x, y, num_classes=2)
    clf = EmbeddingClassifier(**FAST).fit(x, y)
    with pytest.raises(ValueError):
        clf.predict_scores(x[:, :10])
    bad = tmp_path / "other.pt"
    torch.save({"format": "something else"}, bad)
    with pytest.raises(ValueError):
        EmbeddingClassifier.load(bad)
