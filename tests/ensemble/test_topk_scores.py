"""Top-K class score files: the format, and the ensemble on them against dense brute force."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from whaleflow.ensemble import run_ensemble
from whaleflow.ensemble.blend import blend_matrices
from whaleflow.ensemble.score_space import build_space, fit_normalizer
from whaleflow.inference import ClassScores, TopKScores, load_class_scores, store_class_scores


def test_from_dense_keeps_each_rows_best_and_the_rest(tmp_path):
    rng = np.random.default_rng(0)
    s = rng.normal(size=(9, 40)).astype(np.float32)
    cs = ClassScores(s, np.array([f"q{i}" for i in range(9)]), np.array([f"c{j}" for j in range(40)]),
                     np.array(["c1"] * 9))
    t = TopKScores.from_dense(cs, 7)
    order = np.argsort(-s, axis=1)
    np.testing.assert_array_equal(t.ids, order[:, :7])
    np.testing.assert_allclose(t.values.astype(np.float32), np.take_along_axis(s, order[:, :7], 1), atol=2e-3)
    np.testing.assert_allclose(t.rest.astype(np.float32), s[np.arange(9), order[:, 7]], atol=2e-3)
    assert t.value_range == (float(s.min()), float(s.max()))
    store_class_scores(cs, tmp_path / "a.npz", topk=7, above=10)
    store_class_scores(cs, tmp_path / "b.npz", topk=7, above=100)
    a, b = load_class_scores(tmp_path / "a.npz"), load_class_scores(tmp_path / "b.npz")
    assert isinstance(a, TopKScores) and isinstance(b, ClassScores)
    np.testing.assert_array_equal(a.ids, t.ids) and np.testing.assert_array_equal(a.truth, cs.truth)
    assert a.ids.dtype == np.int32
    with np.load(tmp_path / 'a.npz') as d:
        assert d['topk_values'].dtype == np.float16


def _to_topk(run, model, k):
    for split in ("val", "test"):
        p = run / "trials" / model / f"scores_{split}.npz"
        TopKScores.from_dense(load_class_scores(p), k).save(p)


@pytest.mark.parametrize("k", [5, 12])
def test_candidate_blend_equals_dense_brute_force(make_run, k):
    run = make_run(models=("cos", "prob"), embeddings=())
    dense = [load_class_scores(run / "trials" / m / "scores_val.npz") for m in ("cos", "prob")]
    _to_topk(run, "prob", k)
    files = [dense[0], load_class_scores(run / "trials" / "prob" / "scores_val.npz")]
    images = np.asarray(dense[0].images)
    norms = [fit_normalizer(f) for f in files]
    space, mats = build_space(files, norms, images)
    assert space.cand is not None and space.cand.shape[1] <= 30
    # brute force: every class, the top-K file's unkept classes at its `rest`
    brute_files = [dense[0], files[1].dense()]
    brute_norms = [fit_normalizer(f) for f in brute_files]
    assert brute_norms[1] == pytest.approx(norms[1]) or brute_norms[1].to_dict() == pytest.approx(norms[1].to_dict())
    brute_space, brute_mats = build_space(brute_files, brute_norms, images)
    for w in ([0.5, 0.5], [0.2, 0.8], [1.0, 0.0]):
        got = space.predict_labels(blend_matrices(mats, w), 0.3)
        want = brute_space.predict_labels(blend_matrices(brute_mats, w), 0.3)
        assert np.mean([g == h for g, h in zip(got, want)]) >= 0.97  # float16 ties may swap neighbours
    truth = np.asarray(dense[0].truth)
    t_idx = space.truth_indices(truth)
    known = (t_idx >= 0)
    assert (space.cand[known, t_idx[known]] == np.searchsorted(space.classes, truth[known])).all()


def test_ensemble_end_to_end_on_topk_files_matches_dense(make_run, ens_cfg):
    """Every class kept (K = C): per model the top-K path scores as the dense one; one model
    alone gives the same submission; a blend over top-K files still beats its best single model."""
    cfg = ens_cfg(trials=6, classifier=False)
    a, b = make_run(name="dense", embeddings=()), make_run(name="topk", embeddings=())
    for m in ("cos", "prob"):
        _to_topk(b, m, 32)
    da, db = run_ensemble(cfg, a, progress=False), run_ensemble(cfg, b, progress=False)
    for m in ("cos", "prob"):  # float16 storage may move a query across a tie (AP ≤ 1/100)
        assert db["models"][m]["val_map5"] == pytest.approx(da["models"][m]["val_map5"], abs=0.011)
    assert db["val_map5"] >= max(v["val_map5"] for v in db["models"].values()) - 1e-12
    assert any("candidate classes" in n for n in db["notes"])
    c, d = make_run(name="dense1", models=("prob",), embeddings=()), make_run(name="topk1", models=("prob",), embeddings=())
    _to_topk(d, "prob", 32)
    run_ensemble(cfg, c, progress=False), run_ensemble(cfg, d, progress=False)
    sc, sd = pd.read_csv(c / "submission.csv"), pd.read_csv(d / "submission.csv")
    assert len(sc) == len(sd) and (sc["Id"] == sd["Id"]).mean() >= 0.95
