"""Prepared photos → per-model class scores → the run's tuned blend → top 5 with new_whale.

The blend is the one the ensemble driver fitted and applied to the run's test scores, and
its predict is the same code (:class:`~whaleflow.ensemble.fitted_blend.FittedBlend`): each
model's scores go through its normaliser, models are put on the union of their classes,
blended with the tuned weights, and new_whale is inserted at the tuned threshold;
near-duplicates of gallery photos put their labels first when the run does
(``predict.use_duplicates``).

One difference, only for individuals enrolled after training: the classifier on
embeddings has a fixed set of classes and cannot score them. For such a column the
blend uses the models that do score it (their weights renormalised), put on the full
blend's scale per query (:func:`~whaleflow.ensemble.fitted_blend.blend_with_coverage`), so a new individual is neither
pushed down by a model that abstains nor lifted above trained ones by the missing
term. The arcface family does the same inside the family for individuals its head
never saw (their k-NN score on the head + k-NN scale).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..ensemble.classifier_model import CLASSIFIER_NAME
from ..ensemble.driver import apply_duplicates
from ..ensemble.fitted_blend import blend_with_coverage  # noqa: F401  (re-exported)
from ..inference import ClassScores
from ..labels import NEW_WHALE
from ..local.local_trial import LOCAL_NAME
from .trained_run import TrainedRun


@dataclass
class Scored:
    """The blended scores of a batch of photos and what the page needs about them."""

    classes: np.ndarray            # union of every model's classes
    blended: np.ndarray            # (n, C)
    predictions: list[list[str]]   # top 5 with new_whale
    closest: np.ndarray            # (n, C) name of the gallery photo most like the query, per class
    uncovered: dict[str, set]      # model → classes it cannot score (fell back to the others)


def score_batch(run: TrainedRun, pixels: np.ndarray, images: Sequence[str],
                duplicates: dict[str, list[str]] | None = None, by_size: dict | None = None,
                sources: tuple[Sequence[str], Sequence] | None = None) -> Scored:
    """Score prepared photos (n, H, W) against the run's gallery with its tuned blend
    (``by_size``: the same photos at each of the run's cache sizes; ``sources``: their files
    and crop boxes, which a blend with local-feature verification reads again)."""
    images = np.asarray(images, str)
    q = {f.name: f.vectors(pixels, by_size) for f in run.families}
    per_model: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in run.names:
        if name == LOCAL_NAME:
            continue  # after the others: it verifies their shortlists
        if name == CLASSIFIER_NAME:
            emb = {s: run.family(run.classifier.input_of(s)).embedding(q[run.classifier.input_of(s)])
                   for s in run.classifier.sources}
            per_model[name] = run.classifier.class_scores(emb)
        else:
            per_model[name] = run.family(name).class_scores(q[name])
    if LOCAL_NAME in run.names:
        if sources is None or run.local is None:
            raise ValueError("this run blends local-feature verification: score_batch needs the photos' files")
        others = [ClassScores(s, images, np.asarray(c, str)) for s, c in per_model.values()]
        per_model[LOCAL_NAME] = run.local.class_scores(images, sources[0], sources[1], others)
    # the run's fitted blend, as the ensemble applied it to the test photos (one predict for both)
    pred = run.blend.predict([ClassScores(s, images, np.asarray(c, str)) for s, c in (per_model[n] for n in run.names)],
                             images, impute_uncovered=True)
    classes = pred.space.classes
    uncovered = {n: set(classes[~cov].tolist()) for n, cov in zip(run.names, pred.covered) if not cov.all()}
    predictions = pred.predictions
    if duplicates and run.cfg.predict.use_duplicates:
        predictions = [apply_duplicates(p, duplicates.get(im, [])) if duplicates.get(im) else p
                       for p, im in zip(predictions, images)]
    return Scored(classes, pred.blended, predictions, _closest(run, q, classes), uncovered)


def _closest(run: TrainedRun, q, classes: np.ndarray) -> np.ndarray:
    """Per photo and class, the name of the gallery photo most like it, by the family with
    the largest blend weight (its own per-photo similarity: cosine, or the pair head)."""
    fams = [f for f in run.families if f.name in run.weights]
    fam = max(fams, key=lambda f: run.weights[f.name]) if fams else run.families[0]
    sims = fam.image_scores(q[fam.name])
    ids = fam.gallery.ids
    out = np.full((sims.shape[0], len(classes)), "", dtype=object)
    col = {c: i for i, c in enumerate(classes)}
    for c in np.unique(ids):
        members = np.flatnonzero(ids == c)
        out[:, col[c]] = fam.gallery.images[members[np.argmax(sims[:, members], axis=1)]]
    return out


def near_duplicates(run: TrainedRun, paths: Sequence[str], images: Sequence[str]) -> dict[str, list[str]]:
    """Labels of the gallery photos each photo nearly duplicates (perceptual hash within
    ``prepare.dup_distance`` bits, as ``prepare`` finds leaks), most frequent first."""
    from ..data.dedup import find_duplicates, hash_image

    pc = run.cfg.prepare
    if not run.cfg.predict.use_duplicates or not len(paths):
        return {}
    known = run.photos  # the training photos' hashes, by the run's hash settings (photos.csv)
    train = known[(known["split"] == "train") & (known["hash"] != "")]
    frames = [train.assign(split="train")[["image", "split", "id", "hash", "width", "height"]]]
    e = run.enrolled
    if len(e):
        frames.append(pd.DataFrame({"image": e.images, "split": "train", "id": e.ids, "hash": e.hashes,
                                    "width": e.sizes[:, 0], "height": e.sizes[:, 1]}))
    rows = []
    for im, p in zip(images, paths):
        try:
            w, h, hx = hash_image(p, method=pc.hash, hash_size=pc.hash_size)
        except Exception:  # unreadable photos are skipped before this; a hash failure only loses the check
            continue
        rows.append({"image": im, "split": "test", "id": "", "hash": hx, "width": w, "height": h})
    frames.append(pd.DataFrame(rows, columns=["image", "split", "id", "hash", "width", "height"]))
    frame = pd.concat(frames, ignore_index=True)
    frame["width"] = frame["width"].astype(int)
    frame["height"] = frame["height"].astype(int)
    return find_duplicates(frame, max_distance=pc.dup_distance, new_whale=NEW_WHALE).test_duplicates
