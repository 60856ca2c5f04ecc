"""Fake-but-real trial folders from synthetic score matrices and embeddings.

Hidden truth: ``n_classes`` individuals; train has 2 images each, validation has
known images plus new_whale queries, test likewise. Model ``cos`` gives cosine-like
scores (a bump on the true class plus noise, in [-1, 1]); model ``prob`` gives
sigmoid probabilities from independent noise; new_whale queries get no bump. The
test class list has two extra individuals, as a train+val gallery can.
"""
from __future__ import annotations

import numpy as np
import pytest

from whaleflow.config import ClassifierConfig, Config, EnsembleConfig, OutputConfig, PredictConfig
from whaleflow.inference import ClassScores
from whaleflow.io import save_npz, write_json

N_CLASSES = 30


def _truth(rng, n_known, n_new, classes):
    t = np.concatenate([rng.choice(classes, n_known), np.full(n_new, "new_whale")])
    return t[rng.permutation(len(t))]


def _scores(rng, truth, classes, kind, bump, noise):
    col = {c: i for i, c in enumerate(classes)}
    x = rng.normal(0.0, noise, (len(truth), len(classes)))
    for r, t in enumerate(truth):
        if t in col:
            x[r, col[t]] += bump
    if kind == "cos":
        return np.clip(0.2 + 0.25 * x, -1, 1).astype(np.float32)
    if kind == "prob":
        return (1.0 / (1.0 + np.exp(-(3.0 * x - 2.0)))).astype(np.float32)
    raise ValueError(kind)


@pytest.fixture
def make_run(tmp_path):
    """Factory: make_run(models=("cos", "prob"), embeddings=("cos",), seed=0) → run dir."""

    def make(models=("cos", "prob"), embeddings=("cos",), seed=0, name="run", bump=1.3, noise=0.9):
        rng = np.random.default_rng(seed)
        run = tmp_path / name
        val_classes = np.array([f"w{i:02d}" for i in range(N_CLASSES)])
        test_classes = np.append(val_classes, ["w98", "w99"])
        v_truth = _truth(rng, 70, 30, val_classes)
        t_truth = _truth(rng, 60, 25, test_classes)
        v_images = np.array([f"val_{i:03d}.jpg" for i in range(len(v_truth))])
        t_images = np.array([f"test_{i:03d}.jpg" for i in range(len(t_truth))])
        tr_ids = np.repeat(val_classes, 2)
        tr_images = np.array([f"train_{i:03d}.jpg" for i in range(len(tr_ids))])
        centres = rng.normal(size=(len(test_classes), 16))
        centre = {c: centres[i] for i, c in enumerate(test_classes)}
        for m, kind in enumerate(models):
            d = run / "trials" / kind
            d.mkdir(parents=True)
            sv = _scores(rng, v_truth, val_classes, kind, bump, noise)
            st = _scores(rng, t_truth, test_classes, kind, bump, noise)
            # a different class/image order per model, as real files may have
            pv, pc = rng.permutation(len(v_images)), rng.permutation(len(val_classes))
            ClassScores(sv[pv][:, pc], v_images[pv], val_classes[pc], v_truth[pv]).save(d / "scores_val.npz")
            ClassScores(st, t_images, test_classes).save(d / "scores_test.npz")
            if kind in embeddings:
                ids = np.concatenate([tr_ids, v_truth, np.full(len(t_truth), "")])
                hidden = np.concatenate([tr_ids, v_truth, t_truth])
                emb = np.stack([centre[h] if h in centre else rng.normal(size=16) for h in hidden])
                emb = emb + rng.normal(0, 0.5, emb.shape)
                save_npz(d / "embeddings.npz", embeddings=emb.astype(np.float32),
                         images=np.concatenate([tr_images, v_images, t_images]),
                         roles=np.array(["train"] * len(tr_ids) + ["val"] * len(v_truth) + ["test"] * len(t_truth)),
                         ids=ids)
            write_json(d / "result.json", {"name": kind, "family": "metric" if kind == "cos" else "siamese",
                                           "val_map5": 0.0, "threshold": None})
        return run

    return make


@pytest.fixture
def ens_cfg():
    """A fast config: few Optuna trials, a tiny classifier, quiet."""

    def make(trials=8, seed=0, classifier=True, use_duplicates=True, folds=3):
        return Config(
            ensemble=EnsembleConfig(trials=trials, folds=folds, seed=seed, classifier=ClassifierConfig(
                enabled=classifier, pca_dim=8, hidden=32, dropout=0.1, epochs=60, lr=1e-2)),
            predict=PredictConfig(use_duplicates=use_duplicates),
            output=OutputConfig(quiet=True),
        )

    return make

