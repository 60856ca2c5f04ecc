"""A realistic fake run folder for the report: every artifact a finished run writes.

Written from small synthetic arrays: ``N_IDS`` individuals with a procedural pattern
each (so thumbnails differ visibly), a prepared image cache (raw uint8 memmap + meta +
index, as :mod:`whaleflow.data.cache` writes it), original JPEG files for a few images,
two trained trials with per-epoch metrics over two image-size stages, the classifier
trial, class scores, and the ensemble's weights, threshold curve and per-image
validation predictions with hits at every position and misses.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from whaleflow.inference import ClassScores

N_IDS = 12
SIZE = 128  # cache size: large enough that thumbnails come from the cache
CACHE_KEY = "0123456789abcdef"


def _pattern(rng: np.random.Generator, size: int) -> np.ndarray:
    """A grey 'fluke' of one individual: a dark wedge with a few light spots on a sea gradient."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = 140 + 60 * yy
    wedge = (np.abs(xx - 0.5) < 0.45 * (1 - yy)) & (yy > 0.25)
    img[wedge] = 40
    for cx, cy, r in rng.uniform([0.2, 0.35, 0.03], [0.8, 0.7, 0.08], size=(4, 3)):
        img[((xx - cx) ** 2 + (yy - cy) ** 2 < r * r) & wedge] = 220
    return img


def _image(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def write_fake_run(run: Path, *, seed: int = 0, answers: bool = True) -> Path:
    """Write a complete fake run into ``run`` and return it."""
    rng = np.random.default_rng(seed)
    ids = [f"w_{i:04d}" for i in range(N_IDS)]
    bases = {i: _pattern(rng, SIZE) for i in ids}
    rows = []  # image, split, id, role
    for k, i in enumerate(ids):
        n = 3 if k % 3 else 1
        for j in range(n):
            rows.append((f"{i}_{j}.jpg", "train", i, "val" if (j == 1 and k % 2) else "train"))
    for j in range(4):
        rows.append((f"nw_{j}.jpg", "train", "new_whale", "val" if j < 3 else "unused"))
    for j in range(5):
        rows.append((f"test_{j}.jpg", "test", "", "test"))
    index = pd.DataFrame(rows, columns=["image", "split", "id", "role"])
    index["fold"] = np.where(index["role"] == "val", 0, -1)
    index["group"] = np.arange(len(index))
    index["row"] = np.arange(len(index))
    data_dir = run / "data"
    (data_dir / "train").mkdir(parents=True)
    index["path"] = [str(data_dir / ("test" if s == "test" else "train") / im) for im, s in
                     zip(index["image"], index["split"])]
    index["box"] = "none"
    pixels = np.stack([_image(bases[i], rng) if i in bases else _image(_pattern(rng, SIZE), rng)
                       for i in index["id"]])
    for r in index.head(4).itertuples():  # a few originals on disk; the rest only in the cache
        Image.fromarray(pixels[r.row]).save(r.path)

    pdir = run / "prepared"
    cdir = pdir / "cache" / CACHE_KEY
    cdir.mkdir(parents=True)
    mm = np.memmap(cdir / "images.u8", dtype=np.uint8, mode="w+", shape=pixels.shape)
    mm[:] = pixels
    mm.flush()
    del mm
    (cdir / "meta.json").write_text(json.dumps({"key": CACHE_KEY, "version": 1, "n": len(index), "size": SIZE,
                                                "channels": 1, "grayscale": True}))
    index[["image", "split", "row", "path"]].assign(width=SIZE, height=SIZE, box="none").to_csv(
        cdir / "index.csv", index=False)
    index.to_csv(pdir / "index.csv", index=False)
    train = index[index["split"] == "train"]
    train.assign(reason="fake")[["image", "id", "role", "fold", "group", "reason"]].to_csv(pdir / "split.csv",
                                                                                          index=False)
    pd.DataFrame([{"group": 3, "kind": "train", "conflict": False, "image": "w_0001_0.jpg", "split": "train",
                   "id": "w_0001", "hash": "ff00", "width": SIZE, "height": SIZE}]).to_csv(
        pdir / "duplicates.csv", index=False)
    pd.DataFrame([{"image": "test_0.jpg", "group": 7, "train_images": "w_0002_0.jpg", "train_ids": "w_0002"}]).to_csv(
        pdir / "leaks.csv", index=False)
    pd.DataFrame(columns=["group", "ids", "images"]).to_csv(pdir / "conflicts.csv", index=False)
    val = index[index["role"] == "val"]
    data_summary = {
        "data_root": str(data_dir),
        "images": {"train": len(train), "test": 5, "individuals": N_IDS, "new_whale_train": 4},
        "skipped": {"total": 0, "by_split": {}},
        "duplicates": {"groups": 1, "images_in_groups": 2, "train_groups": 1, "test_groups": 0,
                       "train_test_groups": 1, "conflicting_groups": 0},
        "conflicts": 0, "leaks": 1,
        "split": {"folds": 1, "fold_0": {"train_images": int((index["role"] == "train").sum()),
                                         "train_individuals": N_IDS, "val_images": len(val),
                                         "val_new_whale": 3, "val_individuals": int(val["id"].nunique() - 1),
                                         "unused": 1}},
        "boxes": {"box": 0, "clamped": 0, "missing": 0, "invalid": 0, "none": len(index), "problems": 0,
                  "file": None, "margin": 0.05},
        "cache": {"dir": f"cache/{CACHE_KEY}", "size": SIZE, "images": len(index), "reused": False},
        "seconds": {"total": 1.5},
    }
    (pdir / "summary.json").write_text(json.dumps(data_summary))

    # ---- trials
    val_images, truth = val["image"].to_numpy(), val["id"].to_numpy()
    classes = np.array(ids)
    models = {"siamese_r18": ("siamese", "resnet18", 0.52), "metric_r50": ("metric", "resnet50", 0.61)}
    for name, (family, backbone, best) in models.items():
        d = run / "trials" / name
        d.mkdir(parents=True)
        epochs = 8
        m = pd.DataFrame({
            "epoch": range(epochs), "stage": [0] * 4 + [1] * 4, "size": [64] * 4 + [96] * 4,
            "lr": [1e-3] * 4 + [2e-4] * 4, "loss": np.linspace(0.7, 0.3, epochs) + rng.normal(0, 0.02, epochs),
            "val_map5": np.linspace(0.2, best, epochs), "seconds": 1.0,
            "mining_seconds": 0.2 if family == "siamese" else "", "mining_hardness": "",
            "mining_source": "lap" if family == "siamese" else ""})
        m.to_csv(d / "metrics.csv", index=False)
        (d / "result.json").write_text(json.dumps({"name": name, "family": family, "backbone": backbone,
                                                   "val_map5": best, "threshold": 0.5, "best_epoch": epochs - 1,
                                                   "epochs": epochs, "seconds": 12.5}))
        s = rng.normal(0, 1, (len(val_images), len(classes))).astype(np.float32)
        ClassScores(s, val_images, classes, truth).save(d / "scores_val.npz")
    cdir_ = run / "trials" / "classifier"
    cdir_.mkdir()
    (cdir_ / "result.json").write_text(json.dumps({"name": "classifier", "family": "classifier", "val_map5": 0.55,
                                                   "threshold": 0.7, "sources": list(models)}))

    # ---- ensemble: predictions with every kind of outcome
    edir = run / "ensemble"
    edir.mkdir()
    preds = []
    for k, (im, t) in enumerate(zip(val_images, truth)):
        others = [c for c in ids if c != t]
        rng.shuffle(others)
        pos = k % 6  # 0 = miss, else the truth's position
        top = others[:5]
        if pos:
            top.insert(pos - 1, str(t) if t != "new_whale" else "new_whale")
            top = top[:5]
        elif t != "new_whale":
            top = ["new_whale"] + top[:4]
        hit = next((j + 1 for j, lab in enumerate(top) if lab == t), 0)
        preds.append({"image": im, "truth": t, "top5": " ".join(top), "hit_position": hit,
                      "top1_score": float(rng.uniform(0, 3))})
    pd.DataFrame(preds).to_csv(edir / "val_predictions.csv", index=False)
    grid = np.linspace(-1, 3, 60)
    pd.DataFrame({"threshold": grid, "map5": 0.4 + 0.25 * np.exp(-(grid - 1.2) ** 2)}).to_csv(
        edir / "threshold_curve.csv", index=False)
    weights = {"metric_r50": 0.5, "siamese_r18": 0.3, "classifier": 0.2}
    (edir / "weights.json").write_text(json.dumps({"models": list(weights), "weights": weights, "threshold": 1.2,
                                                   "val_map5": 0.66, "cv_map5": 0.64, "folds": 3,
                                                   "optuna_trials": 40}))
    summary = {
        "run_dir": str(run), "data_root": str(data_dir), "data": data_summary,
        "models": {n: {"family": models.get(n, ("classifier",))[0], "val_map5": v, "trial_val_map5": v,
                       "weight": weights[n], "val_map5_by_bin": {"1": {"map5": v - 0.2, "n": 12}}}
                   for n, v in (("metric_r50", 0.61), ("siamese_r18", 0.52),
                                                          ("classifier", 0.55))},
        "ensemble": {"val_map5": 0.66, "threshold": 1.2, "weights": weights, "notes": ["a note from the ensemble"],
                     "estimate": {"low": 0.58, "high": 0.71, "bins": {"1": {"map5": 0.41, "n": 12},
                                                                     "new": {"map5": 0.7, "n": 9}},
                                  "lambda_low": 0.4, "lambda_high": 0.9, "test_new_first": 0.47,
                                  "mixes": {"proportional": {"map5": 0.64, "se": 0.02, "beyond": 0.0,
                                                             "new_share": 0.3, "shares": {"1": 0.2, "5-8": 0.8},
                                                             "new_first": 0.41, "lambda": 1.0},
                                            "per_individual": {"map5": 0.6, "se": 0.02, "beyond": 0.0,
                                                               "new_share": 0.3, "shares": {"1": 0.6, "5-8": 0.4},
                                                               "new_first": 0.55, "lambda": 0.0}}},
                     "expected_test_map5_low": 0.58, "expected_test_map5_high": 0.71},
        "val_map5": 0.66, "timings": {"prepare_s": 1.5, "train_metric_r50_s": 12.5, "ensemble_s": 2.0, "total_s": 30},
    }
    if answers:
        summary.update(test_map5=0.63, test_map5_frequency_baseline=0.31)
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "config.yaml").write_text("data:\n  root: data\nmodels:\n- name: metric_r50\n  backbone: resnet50\n")
    return run


@pytest.fixture
def fake_run(tmp_path) -> Path:
    """A fresh fake run that a test may change."""
    return write_fake_run(tmp_path / "run")


@pytest.fixture(scope="module")
def built_run(tmp_path_factory) -> Path:
    """A fake run with its report already built, shared by the tests that only read it."""
    from whaleflow.report import build_report

    run = write_fake_run(tmp_path_factory.mktemp("built") / "run")
    build_report(run)
    return run
