"""Approach 3 as one more model: a classifier on every trial's concatenated embeddings.

Each finished trial that wrote ``embeddings.npz`` (embeddings of every train, val and
test image) contributes one block of columns. Blocks are put on the same image order
(images present in every file), then each block is centred and scaled to unit total
variance using *training* images only, so that a 2048-wide unnormalised siamese
feature does not drown a 64-wide unit-norm metric embedding in the PCA that follows.

Two fits, mirroring how the other models build their galleries:

* **validation scores**: fit on train-role images of known individuals, score
  val-role images (classes = the train-role known individuals, the val class list of
  every other model); with ``val_gallery="test_like"`` (the default, as for every
  family) in chunks of whole near-duplicate groups, each fitted on train + the known
  validation images of the other chunks, so the validation fit has as many photos
  per individual as the test fit;
* **test scores**: refit on train+val known individuals, score test-role images
  (classes = train+val known individuals, the test class list). An individual held
  out as a new one in validation is new_whale there and a known class here
  (``catalog_ids`` of ``embeddings.npz``), as in every other model's test gallery.

The result is written to ``RUN_DIR/trials/classifier/`` exactly like a trial
(``scores_val.npz``, ``scores_test.npz``, ``model.pt``, then ``result.json`` last), so
the driver and the report treat it as one more model; above ``predict.store_topk_above``
classes the score files keep each query's top ``predict.store_topk`` classes, like a
trial's. The head trains on the GPU when there is one. ``result.json`` carries a
fingerprint of the inputs and settings; when nothing changed a rerun reuses it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import ClassifierConfig, to_dict
from ..inference import ClassScores
from ..inference.topk_scores import TopKScores
from ..inference.topk import truth_indices
from ..io import write_json
from ..labels import NEW_WHALE
from .tune import RankedTopK, best_threshold

__all__ = ["CLASSIFIER_NAME", "ClassifierOutcome", "build_classifier_model", "embedding_scaling",
           "gather_embeddings", "known_classes"]

CLASSIFIER_NAME = "classifier"
_CHUNK = 4096


@dataclass
class ClassifierOutcome:
    """What happened: the trial folder when built (or reused), else why it was skipped."""

    trial_dir: Path | None
    note: str


def gather_embeddings(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate several ``embeddings.npz`` per image.

    Returns ``(embeddings (n, ΣD), images, roles, ids)`` over the images present in
    every file, in the first file's order; each block is scaled to unit total variance
    on its train-role rows.
    """
    blocks, scaling, images, roles, ids = _scaled_blocks(paths)
    return np.concatenate(blocks, axis=1), images, roles, ids


def embedding_scaling(paths: Sequence[Path]) -> tuple[list[tuple[np.ndarray, float]], np.ndarray, np.ndarray]:
    """Each block's (mean, divisor) as :func:`gather_embeddings` applies it, and the roles and
    catalogue ids of the images (held-out individuals as themselves, as the test fit saw them);
    what scoring a new photo with the fitted classifier needs: its test model's classes are
    ``known_classes(ids, (roles == "train") | (roles == "val"))``."""
    _, scaling, images, roles, ids = _scaled_blocks(paths)
    return scaling, roles, _catalog_ids(paths[0], images, ids)


def known_classes(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The individuals (sorted) among the ``mask`` images that a fit learns: not new_whale, not
    unlabelled. The class order of a fit's scores, here and wherever its model.pt is read."""
    ids = np.asarray(ids).astype(str)
    return np.array(sorted(set(ids[np.asarray(mask, bool) & (ids != NEW_WHALE) & (ids != "")])))


def _scaled_blocks(paths: Sequence[Path]):
    if not paths:
        raise ValueError("no embedding files given")
    loaded = []
    for p in paths:
        with np.load(p, allow_pickle=False) as d:
            loaded.append({k: d[k] for k in ("embeddings", "images", "roles", "ids")})
    first = loaded[0]
    common = set(map(str, first["images"]))
    for d in loaded[1:]:
        common &= set(map(str, d["images"]))
    keep = np.array([str(im) in common for im in first["images"]])
    images = first["images"][keep].astype(str)
    roles, ids = first["roles"][keep].astype(str), first["ids"][keep].astype(str)
    train = roles == "train"
    blocks, scaling = [], []
    for d in loaded:
        row = {str(im): i for i, im in enumerate(d["images"])}
        x = d["embeddings"][[row[im] for im in images]].astype(np.float32)
        ref = x[train] if train.any() else x
        mean = ref.mean(axis=0)
        scale = float(np.sqrt(((ref - mean) ** 2).sum(axis=1).mean())) if len(ref) else 1.0
        divisor = scale if scale > 1e-12 else 1.0
        blocks.append((x - mean) / divisor)
        scaling.append((mean, divisor))
    return blocks, scaling, images, roles, ids


def _groups(path: Path, images: np.ndarray) -> np.ndarray:
    """Near-duplicate groups of ``images`` (each image its own when the file predates them)."""
    with np.load(path, allow_pickle=False) as d:
        if "groups" not in d.files:
            return np.asarray(images).astype(str)
        row = {str(im): i for i, im in enumerate(d["images"])}
        return d["groups"][[row[str(im)] for im in images]].astype(str)


def _catalog_ids(path: Path, images: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The catalogue's ids of ``images`` (held-out individuals as themselves); ``ids`` when
    the file predates them."""
    with np.load(path, allow_pickle=False) as d:
        if "catalog_ids" not in d.files:
            return ids
        row = {str(im): i for i, im in enumerate(d["images"])}
        return d["catalog_ids"][[row[str(im)] for im in images]].astype(str)


def _fit(cfg: ClassifierConfig, seed: int, x, ids, fit_mask):
    from ..classify import build_classifier
    from ..engine.device import resolve_device

    known = fit_mask & (ids != NEW_WHALE) & (ids != "")
    classes = known_classes(ids, fit_mask)
    col = {c: i for i, c in enumerate(classes)}
    model = build_classifier(cfg, seed=seed, device=str(resolve_device("auto")))  # the GPU when there is one
    model.fit(x[known], np.array([col[c] for c in ids[known]], dtype=np.int64), num_classes=len(classes))
    return model, classes


def _scores(dense_rows, n: int, images, classes, truth, topk: int, above: int | None):
    """Class scores as they are stored: dense, or top-``topk`` per query above ``above``
    classes, built in row chunks so a 27,956 × 15,587 matrix never exists at once.
    ``dense_rows(a, b)`` gives the dense scores of query rows ``a:b``."""
    if above is None or len(classes) <= above or topk >= len(classes):
        return ClassScores(dense_rows(0, n), images, classes, truth)
    parts = [TopKScores.from_dense(ClassScores(dense_rows(a, a + _CHUNK), images[a:a + _CHUNK], classes), topk)
             for a in range(0, n, _CHUNK)]
    return TopKScores.concat(parts, truth)


def _threshold(scores) -> tuple[float, float]:
    if isinstance(scores, TopKScores):  # the top five are among the kept classes: exact
        return best_threshold(RankedTopK.from_scores(scores.values.astype(np.float32), scores.truth_columns()))
    return best_threshold(RankedTopK.from_scores(scores.scores, truth_indices(scores.truth, scores.classes)))


def _test_like_val(cfg, seed, x, ids, groups, train, val, chunks: int):
    """Validation scores in chunks, each from a fit on train + the other chunks' known val images."""
    from ..data.split import val_chunks

    known = (ids != NEW_WHALE) & (ids != "")
    classes = np.array(sorted(set(ids[(train | val) & known])))
    col = {c: i for i, c in enumerate(classes)}
    out = np.zeros((int(val.sum()), len(classes)), np.float32)
    vpos = np.flatnonzero(val)
    chunk = val_chunks(groups[val], chunks, seed)
    for k in np.unique(chunk):
        fit = train.copy()
        fit[vpos[chunk != k]] = True
        query = np.zeros_like(val)
        query[vpos[chunk == k]] = True
        model, c = _fit(cfg, seed, x, ids, fit)
        s = model.predict_scores(x[query])
        block = np.repeat(s.min(axis=1, keepdims=True), len(classes), axis=1)
        block[:, [col[n] for n in c]] = s
        out[chunk == k] = block
    return out, classes


def _fingerprint(paths: Sequence[Path], cfg: ClassifierConfig, seed: int, val_gallery: str = "train",
                 val_chunks: int = 0) -> str:
    h = hashlib.sha1(json.dumps({"cfg": to_dict(cfg), "seed": seed, "val_gallery": val_gallery,
                                 "val_chunks": val_chunks}, sort_keys=True).encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.parent.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()


def build_classifier_model(
    cfg: ClassifierConfig,
    run_dir: str | Path,
    sources: Sequence[str],
    *,
    seed: int = 0,
    reuse: bool = True,
    store_topk: int = 100,
    store_topk_above: int | None = 2000,
    val_gallery: str = "test_like",
    val_chunks: int = 4,
) -> ClassifierOutcome:
    """Fit the classifier on the embeddings of the trials named in ``sources``.

    ``sources`` are trial folder names under ``RUN_DIR/trials``; those without an
    ``embeddings.npz`` are ignored. Returns the classifier's trial folder, or ``None``
    and the reason when it is disabled, has no embeddings, or has too few classes.
    """
    trials_dir = Path(run_dir) / "trials"
    out_dir = trials_dir / CLASSIFIER_NAME
    if not cfg.enabled:
        return ClassifierOutcome(None, "classifier on embeddings: disabled in config (ensemble.classifier.enabled)")
    paths = [trials_dir / s / "embeddings.npz" for s in sorted(sources) if s != CLASSIFIER_NAME]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        return ClassifierOutcome(None, "classifier on embeddings: skipped, no trial wrote embeddings.npz")
    existing = out_dir / "result.json"
    if existing.is_file():
        prev = json.loads(existing.read_text())
        if prev.get("family") != CLASSIFIER_NAME:
            return ClassifierOutcome(None, f"classifier on embeddings: skipped, {out_dir} belongs to a "
                                           f"{prev.get('family')!r} trial; rename that model")
        fp = _fingerprint(paths, cfg, seed, val_gallery, val_chunks)
        if reuse and prev.get("fingerprint") == fp and (out_dir / "scores_val.npz").is_file() \
                and (out_dir / "scores_test.npz").is_file():
            return ClassifierOutcome(out_dir, f"classifier on embeddings: reused (sources unchanged: "
                                              f"{', '.join(prev.get('sources', []))})")
    fp = _fingerprint(paths, cfg, seed, val_gallery, val_chunks)
    x, images, roles, ids = gather_embeddings(paths)
    catalog = _catalog_ids(paths[0], images, ids)
    train, val, test = roles == "train", roles == "val", roles == "test"
    n_train_classes = len(set(ids[train & (ids != NEW_WHALE) & (ids != "")]))
    if n_train_classes < 2 or not val.any() or not test.any():
        return ClassifierOutcome(None, f"classifier on embeddings: skipped, {n_train_classes} known training "
                                       f"individuals, {int(val.sum())} val and {int(test.sum())} test images")
    groups = _groups(paths[0], images)
    if val_gallery == "test_like":
        s_val, c_val = _test_like_val(cfg, seed, x, ids, groups, train, val, val_chunks)
        val_scores = _scores(lambda a, b: s_val[a:b], len(s_val), images[val], c_val, ids[val],
                             store_topk, store_topk_above)
    else:
        model, c_val = _fit(cfg, seed, x, ids, train)
        xv = x[val]
        val_scores = _scores(lambda a, b: model.predict_scores(xv[a:b]), len(xv), images[val], c_val, ids[val],
                             store_topk, store_topk_above)
    model, c_test = _fit(cfg, seed, x, catalog, train | val)
    xt = x[test]
    test_scores = _scores(lambda a, b: model.predict_scores(xt[a:b]), len(xt), images[test], c_test, None,
                          store_topk, store_topk_above)
    out_dir.mkdir(parents=True, exist_ok=True)
    existing.unlink(missing_ok=True)  # result.json marks a finished model: drop it while rewriting
    val_scores.save(out_dir / "scores_val.npz")
    test_scores.save(out_dir / "scores_test.npz")
    model.save(out_dir / "model.pt")
    threshold, value = _threshold(val_scores)
    source_names = [p.parent.name for p in paths]
    write_json(existing, {
        "name": CLASSIFIER_NAME,
        "family": CLASSIFIER_NAME,
        "val_map5": value,
        "threshold": threshold,
        "sources": source_names,
        "embedding_dim": int(x.shape[1]),
        "pca_dim": cfg.pca_dim,
        "fingerprint": fp,
    })
    return ClassifierOutcome(out_dir, f"classifier on embeddings: built from {', '.join(source_names)} "
                                      f"({x.shape[1]} dims → PCA {cfg.pca_dim}), val MAP@5 {value:.4f}")
