"""Scoring and export for every model family: galleries, class scores, the run's files.

:class:`ScoringMixin` is the half of :class:`~whaleflow.families.base.FamilyTask` that
turns a trained model into scores: which photos form the gallery of each query set
(validation against train, the test-like validation gallery, test against train + val),
query × class scores from per-view vectors, validation MAP@5, and the files the ensemble
and ``whaleflow identify`` read (score files, embeddings, the exported model and its
gallery). It is kept apart from the training plumbing in ``base.py`` (data roles, stages,
batches, the embedding cache) so each file stays one concern; a family still implements
only :meth:`~ScoringMixin.image_vectors` and :meth:`~ScoringMixin.score_views`.

It reads what :class:`~whaleflow.families.base.FamilyTask` sets up: ``splits``,
``prepared``, ``train_cfg``, ``predict_cfg``, ``cfg``, ``name``, ``size``, ``classes``,
``val_threshold``, :meth:`embedding_cache` and :meth:`model_state`.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import size_hw, to_dict
from ..inference import ClassScores
from ..inference.topk import truth_indices, tune_threshold
from ..inference.topk_scores import store_class_scores
from ..labels import NEW_WHALE

#: query × gallery cells scored at once (float32: 64 MB per intermediate), see score_queries_named
SCORE_BLOCK_ELEMS = 1 << 24


class ScoringMixin(abc.ABC):
    """Galleries, class scores, validation and export; see the module docstring."""

    def gallery_members(self, roles: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, image names and catalogue ids of the known-individual images in ``roles``, in
        role order: the one definition of a gallery that scoring and export share. Ids are the
        catalogue's (``Split.gallery_ids``), so an individual held out as new in validation is
        in the train + val (test) gallery as itself."""
        rows, images, ids = [], [], []
        for role in roles:
            s = self.splits[role]
            known = (s.gallery_ids != NEW_WHALE) & (s.gallery_ids != "")
            rows.append(s.rows[known])
            images.append(s.images[known])
            ids.append(s.gallery_ids[known])
        return np.concatenate(rows), np.concatenate(images), np.concatenate(ids)

    def labelled_gallery(self, roles: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, class indices and class names of :meth:`gallery_members` of ``roles``."""
        rows_a, _, ids_a = self.gallery_members(roles)
        classes = np.array(sorted(set(ids_a)))
        col = {c: i for i, c in enumerate(classes)}
        return rows_a, np.array([col[c] for c in ids_a], dtype=np.int64), classes

    def class_scores(self, split: str) -> ClassScores:
        """Scores of ``split`` queries ('val' or 'test') against the matching gallery."""
        roles = ("train",) if split == "val" else ("train", "val")
        g_rows, g_labels, classes = self.labelled_gallery(roles)
        q = self.splits[split]
        if len(q.rows) == 0:  # a final fit (train.final_fit) has no validation queries
            return ClassScores(np.zeros((0, len(classes)), np.float32), q.images, classes,
                               q.ids if split == "val" else None)
        scores = self.score_queries_named(q.rows, g_rows, g_labels, classes)
        truth = q.ids if split == "val" else None
        return ClassScores(scores.astype(np.float32), q.images, classes, truth)

    def val_chunk_ids(self, chunks: int) -> np.ndarray:
        """The chunk of every validation query (rows of ``splits['val']``), by near-duplicate group."""
        from ..data.split import val_chunks

        idx = self.prepared.index
        val = idx[idx["role"] == "val"]
        return val_chunks(val["group"].to_numpy() if "group" in val else val["image"].to_numpy(), chunks,
                          self.train_cfg.seed)

    def test_like_val_scores(self, chunks: int) -> ClassScores:
        """Validation queries against a gallery as large as the test set's.

        A test query searches every labelled photo (train + val); a validation query
        scored against train alone searches fewer photos of its own individual (often
        one instead of two), so its scores run lower, its MAP@5 understates test, and a
        threshold tuned on it puts "new" first too often. Here the validation queries
        are split into ``chunks`` chunks (whole near-duplicate groups); each chunk is
        scored against train + the known validation photos of the other chunks, never
        its own (so no query sees itself or its twins). New individuals (new_whale,
        held out) never enter the gallery.
        """
        q, tr = self.splits["val"], self.splits["train"]
        t_known = (tr.gallery_ids != NEW_WHALE) & (tr.gallery_ids != "")
        v_known = (q.ids != NEW_WHALE) & (q.ids != "")  # query view: held-out individuals are new
        classes = np.array(sorted(set(tr.gallery_ids[t_known]) | set(q.ids[v_known])))
        col = {c: i for i, c in enumerate(classes)}
        out = np.zeros((len(q.rows), len(classes)), np.float32)
        chunk = self.val_chunk_ids(chunks)
        for k in np.unique(chunk):
            inq = chunk == k
            g_rows = np.concatenate([tr.rows[t_known], q.rows[v_known & ~inq]])
            g_ids = np.concatenate([tr.gallery_ids[t_known], q.ids[v_known & ~inq]])
            present = np.array(sorted(set(g_ids)))
            pcol = {c: i for i, c in enumerate(present)}
            s = self.score_queries_named(q.rows[inq], g_rows, np.array([pcol[c] for c in g_ids], np.int64), present)
            block = np.repeat(s.min(axis=1, keepdims=True), len(classes), axis=1)  # absent class: row minimum
            block[:, [col[c] for c in present]] = s
            out[inq] = block
        return ClassScores(out, q.images, classes, q.ids)

    def score_queries_named(self, q_rows, g_rows, g_labels, classes: np.ndarray) -> np.ndarray:
        """Query × class scores (higher = more likely that individual) of cached rows against a
        gallery of cached rows; ``classes`` names the gallery's classes (a family with a head
        over a fixed set of classes needs the names).

        Queries go through :meth:`score_views` in blocks of at most ``SCORE_BLOCK_ELEMS``
        query × gallery-image cells: a family's intermediates (the siamese pair scores per
        view, the k-NN cosines, their class-sorted copies) are queries × gallery images, and
        at HWI size (7,960 test queries × 25,000 gallery photos) all queries at once held
        several 800 MB arrays; block by block only the queries × classes result grows with
        the query count. The gallery is embedded once."""
        q_rows = np.asarray(q_rows)
        g = self.row_views(g_rows)
        out = np.empty((len(q_rows), len(classes)), np.float32)
        step = max(1, SCORE_BLOCK_ELEMS // max(1, len(g_rows), len(classes)))
        for a in range(0, len(q_rows), step):
            out[a:a + step] = self.score_views(self.row_views(q_rows[a:a + step]), g, g_labels, classes)
        return out

    def score_queries(self, q_rows, g_rows, g_labels, num_classes) -> np.ndarray:
        """:meth:`score_queries_named` for a gallery labelled 0 … num_classes − 1."""
        return self.score_queries_named(q_rows, g_rows, g_labels, np.arange(num_classes).astype(str))

    # ------------------------------------------------------------------ vectors → scores
    # Scoring is split into "rows → vectors per view" and "vectors → class scores", so that
    # identify (whaleflow.identify) scores new photos against a saved gallery with the same
    # code that wrote the run's validation and test scores.
    @property
    def views(self) -> tuple[bool, ...]:
        """The flips a query is scored in: (False,), or (False, True) with flip TTA."""
        return (False, True) if self.predict_cfg.flip_tta else (False,)

    def gallery_vectors(self, rows: np.ndarray, flip: bool) -> np.ndarray:
        """The vectors :meth:`score_views` compares, one per image (default: :meth:`image_vectors`)."""
        return self.image_vectors(rows, flip)

    def embedding_from(self, vectors: np.ndarray) -> np.ndarray:
        """:meth:`image_vectors` from :meth:`gallery_vectors` (the same unless a family differs)."""
        return vectors

    def row_views(self, rows: np.ndarray) -> dict[bool, np.ndarray]:
        return {flip: self.gallery_vectors(rows, flip) for flip in self.views}

    @abc.abstractmethod
    def score_views(self, q: dict[bool, np.ndarray], g: dict[bool, np.ndarray], g_labels: np.ndarray,
                    classes: np.ndarray) -> np.ndarray:
        """Query × class scores from query and gallery vectors per view (flip → (n, D))."""

    def image_scores(self, q: dict[bool, np.ndarray], g: dict[bool, np.ndarray]) -> np.ndarray:
        """Query × gallery-image similarity, averaged over views (cosine of unit vectors;
        the siamese family uses its pair head). The review page shows the closest photo."""
        return np.mean([np.asarray(q[f], np.float32) @ np.asarray(g[f], np.float32).T for f in self.views], axis=0)

    def evaluate(self) -> float:
        with self.embedding_cache():  # the gallery is embedded once per evaluation
            cs = self.class_scores("val")
        if len(cs.images) == 0:
            return 0.0
        self.val_threshold, value = tune_threshold(cs.scores, truth_indices(cs.truth, cs.classes))
        return value

    def export(self, out_dir: str | Path) -> dict[str, Any]:
        """Write what the ensemble needs: class scores for val and test (and embeddings)."""
        out_dir = Path(out_dir)
        mode = self.predict_cfg.val_gallery
        if mode not in ("test_like", "train"):
            raise ValueError(f"predict.val_gallery must be test_like or train, got {mode!r}")
        with self.embedding_cache():  # train images: val gallery, test gallery and embeddings once
            val = (self.test_like_val_scores(self.predict_cfg.val_chunks)
                   if mode == "test_like" and len(self.splits["val"].rows) else self.class_scores("val"))
            test = self.class_scores("test")
            for cs, split in ((val, "val"), (test, "test")):  # top-K above a class count
                store_class_scores(cs, out_dir / f"scores_{split}.npz", topk=self.predict_cfg.store_topk,
                                   above=self.predict_cfg.store_topk_above)
            thr, value = (None, 0.0)
            if len(val.images):
                thr, value = tune_threshold(val.scores, truth_indices(val.truth, val.classes))
            self.export_embeddings(out_dir)
            self.export_model(out_dir)
        return {"val_map5": value, "threshold": thr}

    def export_model(self, out_dir: Path) -> None:
        """What ``whaleflow identify`` needs to score new photos without the training data:
        the weights (``model.pt``, read back with ``weights_only=True``) at the image size
        they were validated at, and the test gallery (``gallery.npz``: every labelled train
        and val image, the very gallery :meth:`class_scores` scored the test set against:
        :meth:`gallery_members` order, individuals held out as new in validation included
        under their own ids, with its vectors per view)."""
        from ..io import atomic_path, save_npz

        rows, images, ids = self.gallery_members(("train", "val"))
        views = {f"view{int(f)}": self.gallery_vectors(rows, f).astype(np.float32) for f in self.views}
        save_npz(Path(out_dir) / "gallery.npz", images=images.astype(str), ids=ids.astype(str), **views)
        payload = {"format": "whaleflow.exported_model/1", "name": self.name, "family": self.cfg.family,
                   "size": list(size_hw(self.size)), "classes": [str(c) for c in self.classes],
                   "model_config": to_dict(self.cfg), "model": self.model_state()}
        with atomic_path(Path(out_dir) / "model.pt", suffix=".pt") as tmp:
            torch.save(payload, tmp)

    def export_embeddings(self, out_dir: Path) -> None:
        """Embeddings of every image (plus their flips with flip TTA), for the classifier
        on embeddings (approach 3): any family's image vectors can feed it."""
        from ..io import save_npz

        from ..data.split import query_ids

        idx = self.prepared.index
        idx = idx[idx["role"].isin(["train", "val", "test"])]
        rows = idx["row"].to_numpy(np.int64)
        emb = self.image_vectors(rows, flip=False)
        if self.predict_cfg.flip_tta:
            emb = np.concatenate([emb, self.image_vectors(rows, flip=True)], axis=1)
        save_npz(
            out_dir / "embeddings.npz",
            embeddings=emb.astype(np.float32),
            images=idx["image"].to_numpy(str),
            roles=idx["role"].to_numpy(str),
            ids=query_ids(idx.fillna({"id": ""})),            # as queries see them
            catalog_ids=idx["id"].fillna("").to_numpy(str),  # held-out individuals as themselves
            groups=idx["group"].astype(str).to_numpy(str) if "group" in idx else idx["image"].to_numpy(str),
        )

    @abc.abstractmethod
    def image_vectors(self, rows: np.ndarray, flip: bool) -> np.ndarray:
        """One vector per image: what this family compares images by."""
