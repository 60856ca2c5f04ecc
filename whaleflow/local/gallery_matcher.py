"""Local-feature scores of new photos against a trained run's gallery, for ``identify``.

The same gallery photos per individual as the ensemble verified the run's test photos
against (every labelled photo, ``photos_per_class`` of each by the same seeded choice), the
same shortlist rule and the same features, so a run identifies its own test photos as its
submission ranked them. Individuals enrolled after training have no photos here: the blend
treats the local model as not scoring them (``identify.scoring.blend_with_coverage``).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from ..data.gallery_plan import GalleryPlan
from ..inference import ClassScores
from .features import FeatureExtractor
from .local_trial import by_class, local_scores, shortlists

__all__ = ["GalleryMatcher"]


class GalleryMatcher:
    """Scores query photos (paths, crop boxes) on their shortlisted classes; gallery features
    are extracted on first use and kept."""

    def __init__(self, cfg, photos: pd.DataFrame, settings: dict | None = None):
        """``photos``: the run's photos (:func:`~whaleflow.data.run_photos.read_run_photos`: roles,
        ids, paths and the boxes prepare cropped them to)."""
        # the settings the blend's local scores were made with (trials/local_match/result.json),
        # which may differ from config.yaml's when the ensemble was rerun with overrides
        self.lc = (dataclasses.replace(cfg.ensemble.local_match, **settings) if settings
                   else cfg.ensemble.local_match)
        self.margin = cfg.data.box_margin
        images, ids = GalleryPlan(photos, cfg.predict.val_gallery, cfg.predict.val_chunks,
                                  cfg.train.seed).test_gallery()
        self.classes = np.array(sorted(set(ids)))
        self.by_class = by_class(images, ids, self.lc.photos_per_class, cfg.ensemble.seed)
        self.paths = dict(zip(photos["image"].astype(str), photos["path"].astype(str)))
        boxed = photos.dropna(subset=["x0", "y0", "x1", "y1"])
        self.boxes = {str(r.image): (r.x0, r.y0, r.x1, r.y1) for r in boxed.itertuples(index=False)}
        self.extractor = FeatureExtractor(self.lc.kind, self.lc.n_features, self.lc.max_side)
        self.feats: dict = {}

    def _gallery_features(self, photos: set[str]) -> None:
        todo = sorted(p for p in photos if p not in self.feats and p in self.paths)
        self.feats.update(self.extractor.extract_all(((p, self.paths[p], self.boxes.get(p)) for p in todo),
                                                     margin=self.margin, workers=self.lc.workers or 2))

    def class_scores(self, images: Sequence[str], paths: Sequence[str], crops: Sequence,
                     model_scores: Sequence[ClassScores]) -> tuple[np.ndarray, np.ndarray]:
        """(n, classes) ``log1p`` inlier scores of each query's shortlist from ``model_scores``
        (0 off it), and the classes."""
        images = np.asarray(images, str)
        short = shortlists(list(model_scores), images, self.lc.shortlist)
        self._gallery_features({p for s in short for c in s for p in self.by_class.get(c, ())})
        queries = [f"\0query{i}" for i in range(len(images))]  # never a gallery photo's name
        feats = dict(self.feats)
        feats.update(self.extractor.extract_all(zip(queries, map(str, paths), crops), margin=self.margin,
                                                workers=self.lc.workers or 2))
        s = local_scores(queries, short, lambda _q: self.by_class, self.classes, feats, self.extractor,
                         self.lc.ratio, self.lc.workers or 2)
        return s.dense().scores, self.classes
