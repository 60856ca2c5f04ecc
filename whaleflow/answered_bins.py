"""Test MAP@5 per gallery-size bin, when the data set comes with its answers.

Most real individuals have one or two photos, and one overall figure hides how a run does
on them. With ``answers.csv`` beside the data, ``summary.json`` gets, for the ensemble (its
submission) and for each trial alone (its test scores at its own validated threshold), the
MAP@5 of the test queries whose individual has 1, 2, 3–4, 5–8 or 9+ photos in the test
gallery (every labelled train + validation photo), and of the new individuals.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .labels import NEW_WHALE
from .metrics import map_at_k_by_bin

__all__ = ["test_gallery_sizes", "test_bins", "ranked_labels"]


def ranked_labels(path: str | Path, threshold: float, k: int = 5) -> dict[str, list[str]]:
    """A trial's score file (dense or top-K) as ranked label lists with new_whale inserted."""
    from .inference import predict_labels
    from .inference.topk import insert_new_whale
    from .inference.topk_scores import TopKScores, load_class_scores

    cs = load_class_scores(path)
    images = [str(i) for i in cs.images]
    if not isinstance(cs, TopKScores):
        return dict(zip(images, predict_labels(cs.scores, cs.classes, threshold, k)))
    top = insert_new_whale(cs.values.astype(np.float32), threshold, k)
    names = np.concatenate([np.asarray(cs.classes).astype(object)[cs.ids],
                            np.full((len(images), 1), NEW_WHALE, dtype=object)], axis=1)
    return dict(zip(images, [list(r) for r in np.take_along_axis(names, top, axis=1)]))


def test_gallery_sizes(index: pd.DataFrame, truth: dict[str, str]) -> dict[str, int]:
    """Photos of each answered test image's individual among the labelled photos (0: new)."""
    lab = index[index["role"].isin(("train", "val"))]
    ids = lab["id"].astype(str)
    counts = ids[(ids != NEW_WHALE) & (ids != "") & (ids != "nan")].value_counts()
    return {im: 0 if t == NEW_WHALE else int(counts.get(t, 0)) for im, t in truth.items()}


def test_bins(run_dir: str | Path, index: pd.DataFrame, truth: dict[str, str],
              submission: dict[str, list[str]]) -> dict[str, dict]:
    """``{"ensemble": bins, "<trial>": bins, …}``; see the module docstring."""
    sizes = test_gallery_sizes(index, truth)
    images = [im for im in truth if im in submission]
    out = {"ensemble": map_at_k_by_bin([submission[i] for i in images], [truth[i] for i in images],
                                       [sizes[i] for i in images])}
    trials = Path(run_dir) / "trials"
    for trial in sorted(trials.iterdir()) if trials.is_dir() else []:
        result_path, test_path = trial / "result.json", trial / "scores_test.npz"
        if not result_path.is_file() or not test_path.is_file():
            continue
        thr = json.loads(result_path.read_text()).get("threshold")
        pred = ranked_labels(test_path, thr if thr is not None else -np.inf)
        have = [i for i in images if i in pred]
        out[trial.name] = map_at_k_by_bin([pred[i] for i in have], [truth[i] for i in have], [sizes[i] for i in have])
    return out
