"""run_ensemble end to end on fake trial folders: guarantee, reproducibility, resume, outputs."""
from __future__ import annotations

import json

import numpy as np
import optuna
import pandas as pd
import pytest

from whaleflow.ensemble import ScoreNormalizer, blend_matrices, run_ensemble
from whaleflow.inference import ClassScores
from whaleflow.inference.topk import predict_labels
from whaleflow.submission import read_submission


def test_blend_beats_or_equals_best_single_with_nonnegative_weights(make_run, ens_cfg):
    run = make_run()
    out = run_ensemble(ens_cfg(classifier=False), run, progress=False)
    singles = {n: m["val_map5"] for n, m in out["models"].items()}
    assert set(singles) == {"cos", "prob"}
    assert out["val_map5"] >= max(singles.values())
    assert all(w >= 0 for w in out["weights"].values())
    assert sum(out["weights"].values()) == pytest.approx(1.0)
    # two independent noisy views: the chosen blend uses both
    assert all(w > 0 for w in out["weights"].values())
    assert 0.0 <= out["ensemble"]["cv_map5"] <= 1.0
    for f in ("weights.json", "threshold_curve.csv", "val_predictions.csv", "summary.json", "optuna.db"):
        assert (run / "ensemble" / f).is_file()
    curve = pd.read_csv(run / "ensemble" / "threshold_curve.csv")
    assert list(curve.columns) == ["threshold", "map5"]
    assert curve["map5"].max() == pytest.approx(out["val_map5"])
    vp = pd.read_csv(run / "ensemble" / "val_predictions.csv", dtype=str, keep_default_na=False)
    assert len(vp) == out["n_val"]
    ap = [1.0 / int(h) if int(h) else 0.0 for h in vp["hit_position"]]
    assert np.mean(ap) == pytest.approx(out["val_map5"])


def test_useless_model_does_not_drag_the_ensemble_below_the_best(make_run, ens_cfg):
    run = make_run(models=("cos", "prob"), bump=3.0, noise=0.5)
    # replace prob's scores with pure noise
    d = run / "trials" / "prob"
    v = ClassScores.load(d / "scores_val.npz")
    v.scores = np.random.default_rng(9).random(v.scores.shape).astype(np.float32)
    v.save(d / "scores_val.npz")
    out = run_ensemble(ens_cfg(classifier=False, trials=5), run, progress=False)
    assert out["val_map5"] >= out["models"]["cos"]["val_map5"]
    assert out["val_map5"] >= out["models"]["prob"]["val_map5"]


def test_one_model_gets_weight_one_and_a_tuned_threshold(make_run, ens_cfg):
    run = make_run(models=("cos",))
    out = run_ensemble(ens_cfg(classifier=False), run, progress=False)
    assert out["weights"] == {"cos": 1.0}
    assert out["val_map5"] == pytest.approx(out["models"]["cos"]["val_map5"])
    assert np.isfinite(out["threshold"])
    assert (run / "submission.csv").is_file()


def test_seeded_runs_are_reproducible(make_run, ens_cfg):
    a = run_ensemble(ens_cfg(seed=3), make_run(name="a"), progress=False)
    b = run_ensemble(ens_cfg(seed=3), make_run(name="b"), progress=False)
    assert a["weights"] == b["weights"]
    assert a["threshold"] == b["threshold"] and a["val_map5"] == b["val_map5"]
    assert a["study"] == b["study"]
    assert open(a["submission"]).read() == open(b["submission"]).read()


def test_rerun_continues_the_optuna_study(make_run, ens_cfg):
    run = make_run()
    cfg = ens_cfg(classifier=False, trials=6)
    first = run_ensemble(cfg, run, progress=False)
    second = run_ensemble(cfg, run, progress=False)
    assert first["study"] == second["study"]
    assert second["optuna_trials"] == first["optuna_trials"] + 6
    storage = optuna.storages.RDBStorage(f"sqlite:///{run / 'ensemble' / 'optuna.db'}")
    study = optuna.load_study(study_name=first["study"], storage=storage)
    assert len(study.trials) == second["optuna_trials"]
    storage.engine.dispose()
    assert any("continued Optuna study" in n for n in second["notes"])


def test_submission_matches_val_fitted_transform_applied_to_test(make_run, ens_cfg):
    run = make_run()
    out = run_ensemble(ens_cfg(classifier=False), run, progress=False)
    sub = read_submission(run / "submission.csv")
    tests = {n: ClassScores.load(run / "trials" / n / "scores_test.npz") for n in ("cos", "prob")}
    images = tests["cos"].images
    # every test image exactly once, five labels each
    raw = pd.read_csv(run / "submission.csv", dtype=str)
    assert sorted(raw["Image"]) == sorted(map(str, images)) and raw["Image"].is_unique
    assert all(len(v) == 5 for v in sub.values())
    # rebuild the test blend from weights.json: normalisers fitted on val, applied to raw test scores
    saved = json.loads((run / "ensemble" / "weights.json").read_text())
    for n in ("cos", "prob"):
        val = ClassScores.load(run / "trials" / n / "scores_val.npz")
        assert ScoreNormalizer.fit(val.scores).to_dict() == saved["normalizers"][n]
    assert saved["normalizers"]["prob"]["logit"] and not saved["normalizers"]["cos"]["logit"]
    classes = np.array(sorted(set(tests["cos"].classes) | set(tests["prob"].classes)))
    mats = [ScoreNormalizer.from_dict(saved["normalizers"][n]).transform(
        tests[n].aligned(classes, images).scores) for n in ("cos", "prob")]
    blended = blend_matrices(mats, [saved["weights"]["cos"], saved["weights"]["prob"]])
    expected = predict_labels(blended, classes, saved["threshold"])
    assert [sub[str(im)] for im in images] == [list(p) for p in expected]
    assert out["n_test"] == len(images)


def test_use_duplicates_puts_the_duplicate_label_first(make_run, ens_cfg):
    run = make_run()
    images = ClassScores.load(run / "trials" / "cos" / "scores_test.npz").images
    dup = {str(images[0]): ["w07"], str(images[1]): ["w03", "w04"]}
    run_ensemble(ens_cfg(classifier=False), run, progress=False, test_duplicates=dup)
    sub = read_submission(run / "submission.csv")
    assert sub[str(images[0])][0] == "w07" and len(sub[str(images[0])]) == 5
    assert sub[str(images[1])][:2] == ["w03", "w04"] and len(set(sub[str(images[1])])) == 5
    run_ensemble(ens_cfg(classifier=False, use_duplicates=False), run, progress=False, test_duplicates=dup)
    plain = read_submission(run / "submission.csv")
    assert plain[str(images[1])][:2] != ["w03", "w04"]


def test_unfinished_trials_are_left_out_with_a_note(make_run, ens_cfg):
    run = make_run()
    (run / "trials" / "half").mkdir()
    (run / "trials" / "half" / "scores_val.npz").write_bytes(b"")
    out = run_ensemble(ens_cfg(classifier=False, trials=3), run, progress=False)
    assert set(out["models"]) == {"cos", "prob"}
    assert any("half" in n and "unfinished" in n for n in out["notes"])


def test_fixed_threshold_is_used_as_given(make_run, ens_cfg):
    from whaleflow.config import PredictConfig

    cfg = ens_cfg(classifier=False, trials=4)
    cfg = cfg.replace(predict=PredictConfig(new_whale_threshold=0.5))
    out = run_ensemble(cfg, make_run(), progress=False)
    assert out["threshold"] == 0.5
    assert out["val_map5"] >= max(m["val_map5"] for m in out["models"].values())
    assert all(m["threshold"] == 0.5 for m in out["models"].values())


def test_no_trials_is_a_clear_error(tmp_path, ens_cfg):
    from whaleflow.errors import DataError

    with pytest.raises(DataError, match="no finished trial"):
        run_ensemble(ens_cfg(), tmp_path, progress=False)


def test_new_prior_sets_each_threshold_from_its_own_queries(make_run, ens_cfg):
    import dataclasses

    run = make_run()
    cfg = ens_cfg(classifier=False, trials=4)
    cfg = cfg.replace(predict=dataclasses.replace(cfg.predict, new_prior=0.3, use_duplicates=False))
    out = run_ensemble(cfg, run, progress=False)
    assert out["threshold_rule"] == "prior"
    assert out["val_new_first_share"] == pytest.approx(0.3, abs=0.011)
    assert out["test_new_first_share"] == pytest.approx(0.3, abs=0.012)
    sub = read_submission(run / "submission.csv")
    first_new = np.mean([p[0] == "new_whale" for p in sub.values()])
    assert first_new == pytest.approx(out["test_new_first_share"])


def test_submission_follows_the_layout_of_the_prepared_data(make_run, ens_cfg):
    run = make_run(models=("cos",))
    (run / "prepared").mkdir()
    (run / "prepared" / "summary.json").write_text(json.dumps({"layout": "happywhale"}))
    out = run_ensemble(ens_cfg(classifier=False, trials=2), run, progress=False)
    frame = pd.read_csv(run / "submission.csv", dtype=str)
    assert out["layout"] == "happywhale" and list(frame.columns) == ["image", "predictions"]
    text = (run / "submission.csv").read_text()
    assert "new_individual" in text and "new_whale" not in text


def _write_split(run, sizes_by_class):
    """prepared/split.csv for the fixture's validation images: class w00 … keeps the given
    number of training photos, so the validation queries' galleries differ in size."""
    from whaleflow.inference import ClassScores

    val = ClassScores.load(run / "trials" / "cos" / "scores_val.npz")
    rows = [{"image": im, "id": t, "role": "val", "fold": 0, "held_out": False, "group": f"v{i}"}
            for i, (im, t) in enumerate(zip(val.images, val.truth))]
    for c, n in sizes_by_class.items():
        rows += [{"image": f"tr_{c}_{j}.jpg", "id": c, "role": "train", "fold": -1, "held_out": False,
                  "group": f"t{c}{j}"} for j in range(n)]
    (run / "prepared").mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(run / "prepared" / "split.csv", index=False)


def test_gallery_mix_reweights_the_expected_test_map_and_not_the_choice(make_run, ens_cfg):
    import dataclasses

    runs = [make_run(models=("cos", "prob"), name=n) for n in ("weighted", "plain")]  # the same data twice
    for run in runs:
        _write_split(run, {f"w{i:02d}": (1 if i < 15 else 12) for i in range(30)})
    cfg = ens_cfg(classifier=False, trials=4)
    cfg_v = cfg.replace(ensemble=dataclasses.replace(cfg.ensemble, test_mix="validation"))
    weighted = run_ensemble(cfg, runs[0], progress=False)
    plain = run_ensemble(cfg_v, runs[1], progress=False)
    assert plain["test_mix"] is None and weighted["test_mix"]["test_share"]
    assert weighted["weights"] == plain["weights"] and weighted["threshold"] == plain["threshold"]
    assert weighted["expected_test_map5"] != pytest.approx(plain["expected_test_map5"], abs=1e-9)
    assert any("expected test mix of gallery sizes" in n for n in weighted["notes"])
