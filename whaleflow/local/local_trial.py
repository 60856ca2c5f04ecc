"""Local-feature verification as one more model of the blend (``ensemble.local_match``).

For each query the classes every trained model ranks in its top ``shortlist`` are verified:
the query's keypoints are matched against up to ``photos_per_class`` gallery photos of each
(:mod:`.verify`), and the class scores ``log1p`` of its best photo's inlier count; classes off
the shortlist score 0. The scores are written like a trial's (``trials/local_match/
scores_{val,test}.npz``, dense or top-K by the same rule), so the blend treats them like any
model's: normalised on validation, its weight (possibly 0) and the new-individual threshold
tuned with the others by cross-validated MAP@5, the outer-fold estimate included. It stays
in a run's blend only where validation says it helps.

Validation queries search the gallery the models scored them against
(:class:`~whaleflow.data.gallery_plan.GalleryPlan`), test queries every labelled photo.
Cost: ``queries × shortlisted classes × photos_per_class`` matches of a few milliseconds;
a rerun with the same inputs and settings reuses the folder.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.cache import parallel_map
from ..data.gallery_plan import GalleryPlan
from ..inference.topk_scores import TopKScores, load_class_scores, store_class_scores
from ..io import write_json
from .features import FeatureExtractor
from .verify import count_inliers

__all__ = ["LOCAL_NAME", "shortlists", "read_crop_boxes", "build_local_trial", "local_scores"]

#: the blend's name (and trial folder) of the local-feature model
LOCAL_NAME = "local_match"


#: scores are ranked for the shortlist at this many decimals, ties broken by class name, so the
#: same shortlist comes out of a score file and of identify's recomputed scores (float noise, and
#: the exact ties of saturated probabilities, never decide which classes are verified)
SHORTLIST_DECIMALS = 4


def _top_names(values: np.ndarray, names: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` best names by (rounded value descending, name ascending)."""
    by_name = np.argsort(names, kind="stable")
    v = np.round(values[:, by_name].astype(np.float64), SHORTLIST_DECIMALS)
    order = np.argsort(-v, axis=1, kind="stable")[:, :k]
    return names[by_name][order]


def shortlists(scores: list, images: np.ndarray, k: int) -> list[set[str]]:
    """Per query (in ``images`` order) the union of every model's ``k`` best class names."""
    out: list[set[str]] = [set() for _ in images]
    for s in scores:
        classes = np.asarray(s.classes).astype(str)
        if isinstance(s, TopKScores):
            rows = s.row_order(images)
            top = [_top_names(s.values[r : r + 1], classes[s.ids[r]], min(k, s.k))[0] for r in rows]
        else:
            m = s.aligned(classes, images).scores
            top = _top_names(m, classes, min(k, m.shape[1])) if m.shape[1] else [[] for _ in images]
        for i, row in enumerate(top):
            out[i].update(row)
    return out


def read_crop_boxes(prepared_dir: Path) -> dict[str, tuple]:
    """The box each photo was cropped to at prepare (``crop_boxes.csv``; none: whole frames)."""
    path = Path(prepared_dir) / "crop_boxes.csv"
    if not path.is_file():
        return {}
    b = pd.read_csv(path)
    return {str(r.image): (r.x0, r.y0, r.x1, r.y1) for r in b.itertuples(index=False)}


def by_class(images: np.ndarray, ids: np.ndarray, cap: int, seed: int) -> dict[str, list[str]]:
    """Up to ``cap`` photos per class, a seeded choice (the same for every query)."""
    out: dict[str, list[str]] = {}
    for i in np.random.default_rng([seed, 23]).permutation(len(images)):
        lst = out.setdefault(str(ids[i]), [])
        if len(lst) < cap:
            lst.append(str(images[i]))
    return out


def _padding(taken: dict, n: int, n_classes: int) -> list[int]:
    """``n`` class indices not in ``taken`` (a top-K row's unverified slots, scored 0 = rest)."""
    out, i = [], 0
    while len(out) < n and i < n_classes:
        if i not in taken:
            out.append(i)
        i += 1
    return out


def local_scores(queries: list[str], short: list[set[str]], galleries, classes: np.ndarray, feats: dict,
                 extractor: FeatureExtractor, ratio: float, workers: int = 2) -> TopKScores:
    """Each query's shortlisted classes scored ``log1p(max inliers)`` over their gallery photos
    (``galleries(query) → {class: [photo, …]}``; ``feats``: photo → Features), the rest 0."""
    col = {c: i for i, c in enumerate(classes)}
    pairs = []  # (row, class index, query photo, gallery photo)
    for row, (q, cands) in enumerate(zip(queries, short)):
        gal = galleries(q)
        pairs.extend((row, col[c], q, g) for c in sorted(cands) if c in col for g in gal.get(c, ()))
    unique = sorted({(p[2], p[3]) for p in pairs})

    def one(qg):
        a, b = feats.get(qg[0]), feats.get(qg[1])
        return 0 if a is None or b is None else count_inliers(a, b, norm=extractor.norm, ratio=ratio)

    found = dict(zip(unique, parallel_map(one, unique, workers=workers)))
    best: list[dict[int, float]] = [{} for _ in queries]
    for row, c, q, g in pairs:
        best[row][c] = max(best[row].get(c, 0.0), float(np.log1p(found[(q, g)])))
    width = max(1, max((len(b) for b in best), default=1))
    ids = np.zeros((len(queries), width), np.int32)
    vals = np.zeros((len(queries), width), np.float32)
    for row, b in enumerate(best):
        items = sorted(b.items(), key=lambda kv: -kv[1])
        for j, (c, v) in enumerate(items + [(i, 0.0) for i in _padding(b, width - len(items), len(classes))]):
            ids[row, j], vals[row, j] = c, v
    hi = float(vals.max()) if vals.size else 0.0
    return TopKScores(ids, vals, np.zeros(len(queries), np.float32), np.asarray(queries), classes, None,
                      (0.0, max(hi, 2.0)))  # range: log counts, never read as probabilities


def _key(cfg, trials) -> str:
    parts = [dataclasses.asdict(cfg.ensemble.local_match), cfg.predict.val_gallery, cfg.predict.val_chunks,
             cfg.train.seed, cfg.ensemble.seed, cfg.data.box_margin]
    for t in trials:
        for f in ("scores_val.npz", "scores_test.npz"):
            st = (Path(t.path) / f).stat()
            parts.append([t.name, f, st.st_size, st.st_mtime_ns])
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_local_trial(cfg, run_dir: str | Path, trials) -> tuple[Path, dict]:
    """Write ``trials/local_match/`` (scores and ``result.json``) from the finished ``trials``'
    shortlists; reused when its inputs and settings are unchanged. Returns (folder, result)."""
    lc = cfg.ensemble.local_match
    run_dir = Path(run_dir)
    out = run_dir / "trials" / LOCAL_NAME
    key = _key(cfg, trials)
    res_path = out / "result.json"
    if res_path.is_file():
        old = json.loads(res_path.read_text())
        if old.get("key") == key:
            return out, {**old, "probability_like": False}  # also for a result written before the field
    t0 = time.perf_counter()
    vals = [load_class_scores(Path(t.path) / "scores_val.npz") for t in trials]
    tests = [load_class_scores(Path(t.path) / "scores_test.npz") for t in trials]
    v_images, t_images = np.asarray(vals[0].images).astype(str), np.asarray(tests[0].images).astype(str)
    classes = np.array(sorted(set().union(*(np.asarray(s.classes).astype(str) for s in vals + tests))))
    v_short, t_short = shortlists(vals, v_images, lc.shortlist), shortlists(tests, t_images, lc.shortlist)
    truth = np.asarray(vals[0].truth).astype(str)  # v_images is vals[0]'s own order
    del vals, tests
    pdir = run_dir / "prepared"
    index = pd.read_csv(pdir / "index.csv", dtype={"id": str}, keep_default_na=False)
    plan = GalleryPlan(index, cfg.predict.val_gallery, cfg.predict.val_chunks, cfg.train.seed)
    chunks: dict[int, dict] = {}

    def val_gallery(image: str) -> dict:
        c = plan.val_chunk(image)
        if c not in chunks:
            chunks[c] = by_class(*plan.val_gallery_of(c), lc.photos_per_class, cfg.ensemble.seed)
        return chunks[c]

    test_gallery = by_class(*plan.test_gallery(), lc.photos_per_class, cfg.ensemble.seed)
    needed = set(v_images) | set(t_images)
    for q, sh in zip(v_images, v_short):
        needed.update(p for c in sh for p in val_gallery(q).get(c, ()))
    for sh in t_short:
        needed.update(p for c in sh for p in test_gallery.get(c, ()))
    ext = FeatureExtractor(lc.kind, lc.n_features, lc.max_side)
    boxes, paths = read_crop_boxes(pdir), dict(zip(index["image"].astype(str), index["path"].astype(str)))
    workers = lc.workers or 2
    feats = ext.extract_all(((im, paths[im], boxes.get(im)) for im in sorted(needed) if im in paths),
                            margin=cfg.data.box_margin, workers=workers)
    t1 = time.perf_counter()
    val = local_scores(list(v_images), v_short, val_gallery, classes, feats, ext, lc.ratio, workers)
    test = local_scores(list(t_images), t_short, lambda _q: test_gallery, classes, feats, ext, lc.ratio, workers)
    val = dataclasses.replace(val, truth=truth)
    for s, split in ((val, "val"), (test, "test")):
        dense = s.dense() if len(classes) <= cfg.predict.store_topk_above else None
        if dense is not None:
            store_class_scores(dense, out / f"scores_{split}.npz", topk=cfg.predict.store_topk,
                               above=cfg.predict.store_topk_above)
        else:
            s.save(out / f"scores_{split}.npz")
    # log match counts: never read as probabilities (TrialArtifacts.probability_like)
    result = {"family": "local", "key": key, "val_map5": None, "probability_like": False,
              "settings": dataclasses.asdict(lc),
              "photos": len(feats), "photos_without_features": sum(1 for f in feats.values() if len(f) == 0),
              "feature_seconds": round(t1 - t0, 2), "match_seconds": round(time.perf_counter() - t1, 2)}
    write_json(res_path, result)
    return out, result
