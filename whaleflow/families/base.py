"""What every model family shares: data roles, class lists, batched embedding, scoring.

Roles come from the prepared split: ``train`` images are what a model learns from and
the gallery for validation; ``val`` images (known individuals plus new_whale, in the
test prior) are the validation queries; for the test set the gallery is train + val.
An individual held out as a new one (Happywhale-like data) is ``new_whale`` as a
validation query, and its true self in the test gallery.
"""
from __future__ import annotations

import abc

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import ModelConfig, PredictConfig, StageConfig, TrainConfig
from ..engine.device import autocast, resolve_device, to_device_images
from ..engine.trainer import ModelTask
from ..inference import ClassScores
from ..inference.topk import truth_indices, tune_threshold
from ..labels import NEW_WHALE


@dataclass
class Split:
    """Rows (into the prepared image cache) and labels of one role."""

    rows: np.ndarray
    images: np.ndarray
    ids: np.ndarray                   # as queries see them (held-out individuals are new_whale)
    gallery_ids: np.ndarray | None = None  # the catalogue's ids, for a gallery (None: ``ids``)

    def __post_init__(self):
        if self.gallery_ids is None:
            self.gallery_ids = self.ids


class FamilyTask(ModelTask):
    """Shared plumbing; subclasses build the model and write the loss and scoring."""

    def __init__(self, model_cfg: ModelConfig, prepared, train_cfg: TrainConfig, predict_cfg: PredictConfig, *, quiet: bool = True):
        from ..data.dataset import CachedImages
        from ..registry import AUGMENTATIONS

        self.cfg = model_cfg
        self.name = model_cfg.name
        self.prepared = prepared
        self.train_cfg = train_cfg
        self.predict_cfg = predict_cfg
        self.quiet = quiet
        self.device = resolve_device(train_cfg.device)
        index = prepared.index
        self.splits = {role: self._split(index, role) for role in ("train", "val", "test")}
        if train_cfg.max_train_images:
            s = self.splits["train"]
            keep = np.sort(np.random.default_rng(train_cfg.seed).permutation(len(s.rows))[: train_cfg.max_train_images])
            self.splits["train"] = Split(s.rows[keep], s.images[keep], s.ids[keep], s.gallery_ids[keep])
        train_ids = self.splits["train"].ids
        if len(train_ids) == 0:
            raise ValueError("the split left no training images; check the data and prepare.val_fraction")
        self.classes = np.array(sorted(set(train_ids)))
        self.class_index = {c: i for i, c in enumerate(self.classes)}
        self.train_labels = np.array([self.class_index[c] for c in train_ids], dtype=np.int64)
        self.augment = AUGMENTATIONS.build(model_cfg.augment)
        self.images_train = CachedImages(prepared.images, augment=self.augment)
        self.images_eval = CachedImages(prepared.images, augment=None)
        self.size = model_cfg.stages[0].size
        self.val_threshold: float | None = None

    @staticmethod
    def _split(index, role: str) -> Split:
        from ..data.split import query_ids

        part = index[index["role"] == role]
        ids = part["id"].fillna("").to_numpy(str)
        return Split(part["row"].to_numpy(np.int64), part["image"].to_numpy(str), query_ids(part.fillna({"id": ""})), ids)

    # ------------------------------------------------------------------ stages
    def setup_stage(self, stage: StageConfig, *, fresh: bool) -> None:
        self.size = stage.size
        self.set_dropout(stage.dropout)
        if fresh:
            for group in self.optimizer.param_groups:
                if group.get("role", "model") == "model":
                    group["lr"] = stage.lr
                    group["weight_decay"] = stage.weight_decay
            self.on_new_stage(stage)

    def on_new_stage(self, stage: StageConfig) -> None:
        """Hook for a family to reset schedules at a stage boundary."""

    def set_dropout(self, p: float) -> None:
        for m in self.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = p

    def begin_epoch(self, epoch: int) -> None:
        """Per-epoch seeding of what the trainer's global seeding does not reach."""
        if hasattr(self.augment, "reseed"):
            self.augment.reseed(self.train_cfg.seed * 1_000_003 + epoch)

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------ helpers
    @abc.abstractmethod
    def modules(self):
        """All trainable modules (for dropout and mode switches)."""

    @torch.inference_mode()
    def embed(self, fn: Callable[[torch.Tensor], torch.Tensor], rows: np.ndarray, flips, *, batch_size: int = 128) -> torch.Tensor:
        """Apply ``fn`` (images → vectors) to cached, unaugmented images in batches, in eval
        mode; ``flips`` is one bool or one per row. The result stays on the device."""
        self.model.eval()
        flips = np.broadcast_to(np.asarray(flips, dtype=bool), (len(rows),))
        out = []
        for start in range(0, len(rows), batch_size):
            sl = slice(start, start + batch_size)
            x = to_device_images(self.images_eval.batch(rows[sl], flips[sl], self.size), self.device)
            with autocast(self.device):
                out.append(fn(x).float())
        return torch.cat(out) if out else torch.zeros((0, 0), device=self.device)

    def labelled_gallery(self, roles: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, class indices and class names of known-individual images in ``roles``."""
        rows, ids = [], []
        for role in roles:
            s = self.splits[role]
            known = (s.gallery_ids != NEW_WHALE) & (s.gallery_ids != "")
            rows.append(s.rows[known])
            ids.append(s.gallery_ids[known])
        rows_a, ids_a = np.concatenate(rows), np.concatenate(ids)
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
        """:meth:`score_queries` for a family that needs the gallery's class names (one with
        a head over a fixed set of classes)."""
        return self.score_queries(q_rows, g_rows, g_labels, len(classes))

    @abc.abstractmethod
    def score_queries(self, q_rows, g_rows, g_labels, num_classes) -> np.ndarray:
        """Query × class scores (higher = more likely that individual)."""

    def evaluate(self) -> float:
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
        val = (self.test_like_val_scores(self.predict_cfg.val_chunks)
               if mode == "test_like" and len(self.splits["val"].rows) else self.class_scores("val"))
        test = self.class_scores("test")
        val.save(out_dir / "scores_val.npz")
        test.save(out_dir / "scores_test.npz")
        thr, value = (None, 0.0)
        if len(val.images):
            thr, value = tune_threshold(val.scores, truth_indices(val.truth, val.classes))
        self.export_embeddings(out_dir)
        return {"val_map5": value, "threshold": thr}

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
