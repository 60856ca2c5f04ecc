"""The local-feature model of the blend: shortlists, scores, and a run that blends it."""
import json

import numpy as np
import pandas as pd

from whaleflow.config import ClassifierConfig, Config, EnsembleConfig, LocalMatchConfig, OutputConfig
from whaleflow.ensemble.driver import run_ensemble
from whaleflow.inference import ClassScores
from whaleflow.inference.topk_scores import TopKScores
from whaleflow.io import write_json
from whaleflow.local import FeatureExtractor
from whaleflow.local.local_trial import LOCAL_NAME, local_scores, shortlists


def test_shortlists_are_the_union_of_each_models_top_k_by_brute_force():
    rng = np.random.default_rng(0)
    classes = np.array([f"c{i}" for i in range(12)])
    images = np.array([f"q{i}" for i in range(7)])
    a = ClassScores(rng.normal(size=(7, 12)).astype(np.float32), images, classes)
    perm = rng.permutation(7)
    b_dense = ClassScores(rng.normal(size=(7, 12)).astype(np.float32), images[perm], classes)
    b = TopKScores.from_dense(b_dense, 4)
    got = shortlists([a, b], images, 3)
    for i, im in enumerate(images):
        want = set(classes[np.argsort(-a.scores[i])[:3]])
        r = list(b_dense.images).index(im)
        want |= set(classes[np.argsort(-b_dense.scores[r])[:3]])
        assert got[i] == want


def test_local_scores_rank_the_photographed_individual_first(photo_dir):
    photos = photo_dir(n=4, per=3)
    ext = FeatureExtractor("sift", n_features=300)
    feats = {im: ext.from_file(p) for im, (p, _) in photos.items()}
    classes = np.array(["w0", "w1", "w2", "w3"])
    queries = [f"w{k}_0.png" for k in range(4)]
    gallery = {f"w{k}": [f"w{k}_1.png", f"w{k}_2.png"] for k in range(4)}
    short = [set(classes)] * 3 + [{"w0", "w1"}]  # the last query's own class is off its shortlist
    s = local_scores(queries, short, lambda q: gallery, classes, feats, ext, ratio=0.8)
    dense = s.dense().scores
    assert list(dense[:3].argmax(axis=1)) == [0, 1, 2]
    assert dense[3, 3] == 0.0  # not verified → 0 (the rest)
    assert np.all(dense >= 0) and dense.max() > np.log1p(15)


def _fake_run(tmp_path, photos):
    """A prepared run over real photos: per individual one train, one val and one test photo
    (w0 a second train one), and one weak trained model whose scores barely see the truth."""
    run = tmp_path / "run"
    (run / "prepared").mkdir(parents=True)
    rows = []
    for im, (path, ind) in sorted(photos.items()):
        j = int(im.split("_")[1].split(".")[0])
        role = {0: "train", 1: "val", 2: "test", 3: "train"}[j]
        rows.append({"image": im, "split": "test" if role == "test" else "train", "id": "" if role == "test" else ind,
                     "role": role, "fold": 0 if role == "val" else -1, "held_out": False, "group": im,
                     "row": len(rows), "path": path, "box": "none"})
    index = pd.DataFrame(rows)
    index.to_csv(run / "prepared" / "index.csv", index=False)
    truth = {im: ind for im, (_, ind) in photos.items()}
    rng = np.random.default_rng(1)
    classes = np.array(sorted(set(truth.values())))
    d = run / "trials" / "weak"
    d.mkdir(parents=True)
    for split, role in (("val", "val"), ("test", "test")):
        ims = index["image"][index["role"] == role].to_numpy()
        s = rng.normal(size=(len(ims), len(classes))).astype(np.float32)
        s[np.arange(len(ims)), [list(classes).index(truth[i]) for i in ims]] += 0.3
        ClassScores(s, ims, classes, np.array([truth[i] for i in ims]) if role == "val" else None).save(
            d / f"scores_{split}.npz")
    write_json(d / "result.json", {"name": "weak", "family": "metric", "val_map5": 0.0})
    return run, truth


def test_the_ensemble_blends_local_matching_and_reuses_it(tmp_path, photo_dir):
    photos = photo_dir(n=12, per=3)
    photos.update({k: v for k, v in photo_dir(n=12, per=4).items() if k.endswith("_3.png") and k.startswith("w0")})
    run, truth = _fake_run(tmp_path, photos)
    cfg = Config(ensemble=EnsembleConfig(trials=12, folds=2, outer_folds=0, classifier=ClassifierConfig(enabled=False),
                                         local_match=LocalMatchConfig(enabled=True, shortlist=12)),
                 output=OutputConfig(quiet=True))
    summary = run_ensemble(cfg, run)
    assert summary["models"][LOCAL_NAME]["val_map5"] > summary["models"]["weak"]["val_map5"] + 0.2
    assert summary["models"][LOCAL_NAME]["weight"] > 0.3
    sub = pd.read_csv(run / "submission.csv")
    right = np.mean([row.Id.split()[0] == truth[row.Image] for row in sub.itertuples()])
    assert right >= 0.75
    res = run / "trials" / LOCAL_NAME / "result.json"
    stamp = res.stat().st_mtime_ns
    run_ensemble(cfg, run)
    assert res.stat().st_mtime_ns == stamp  # same inputs and settings: reused
    off = Config(ensemble=EnsembleConfig(trials=12, folds=2, outer_folds=0, classifier=ClassifierConfig(enabled=False)),
                 output=OutputConfig(quiet=True))
    assert LOCAL_NAME not in run_ensemble(off, run)["models"]  # a stale folder never slips in
    assert json.loads(res.read_text())["family"] == "local"
