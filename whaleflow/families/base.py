"""What every model family shares: data roles, class lists, batched embedding, scoring.

Roles come from the prepared split: ``train`` images are what a model learns from and
the gallery for validation; ``val`` images (known individuals plus new_whale, in the
test prior) are the validation queries; for the test set the gallery is train + val.

Training batches come from a :class:`~whaleflow.data.loader.BatchLoader` (worker
processes, ``train.workers``; by default the trial's CPUs minus one) reading the cache
of the stage's size; they arrive as uint8 and are normalised on the device. A family's
loop sums its loss on the device and reads it once per epoch: no CPU sync per step.

An individual held out as a new one (Happywhale-like data) is ``new_whale`` as a
validation query, and its true self in the test gallery.
"""
from __future__ import annotations

import abc
import contextlib

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from ..config import ModelConfig, PredictConfig, StageConfig, TrainConfig, size_hw, to_dict
from ..engine.device import autocast, resolve_device, to_device_images
from ..engine.trainer import ModelTask
from ..inference import ClassScores
from ..inference.topk import truth_indices, tune_threshold
from ..inference.topk_scores import store_class_scores
from ..progress import progress
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

    def __init__(self, model_cfg: ModelConfig, prepared, train_cfg: TrainConfig, predict_cfg: PredictConfig, *,
                 quiet: bool = True, cpus: float | None = None):
        from ..data.loader import resolve_workers
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
        # every cache of the prepared folder by (height, width); each stage reads its own size's
        self.caches = getattr(prepared, "caches", None) or {tuple(prepared.images.shape[1:3]): prepared.images}
        self.workers = resolve_workers(train_cfg.workers, cpus)  # cpus: the trial's (None: this process's)
        self._loader = None
        self.size = model_cfg.stages[0].size
        self.val_threshold: float | None = None
        self._emb_cache: dict | None = None

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

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------ batches
    @property
    def images_eval(self):
        """Unaugmented images from the cache the current size reads (or what was assigned:
        ``identify`` embeds photos that are in no cache)."""
        from ..data.dataset import CachedImages, pick_cache

        given = self.__dict__.get("_images_eval")
        return given if given is not None else CachedImages(pick_cache(self.caches, self.size))

    @images_eval.setter
    def images_eval(self, images) -> None:
        self.__dict__["_images_eval"] = images

    def loader(self):
        """The training loader (its workers start on first use and live until :meth:`close`)."""
        from ..data.loader import BatchLoader

        if self._loader is None:
            self._loader = BatchLoader(self.caches, self.augment, workers=self.workers,
                                       prefetch=self.train_cfg.prefetch, pin_memory=self.device.type == "cuda")
        return self._loader

    def train_batches(self, epoch: int, batches: Iterable[tuple[np.ndarray, np.ndarray, Any]], *,
                      total: int) -> Iterator[tuple[torch.Tensor, Any]]:
        """(normalised images on the device, extra on the device) for each (cache rows, flips,
        extra) of ``batches``, built ahead by the loader's workers at the current size.
        Batch ``i`` of ``epoch`` is augmented from its own seed, so what a step sees depends
        on neither the worker count nor where a resumed run started."""
        from ..data.loader import BatchSpec, batch_seed

        size, seed = size_hw(self.size), self.train_cfg.seed
        specs = (BatchSpec(np.asarray(rows, np.int64), np.asarray(flips, bool), size, batch_seed(seed, epoch, i),
                           extra) for i, (rows, flips, extra) in enumerate(batches))
        it = progress(self.loader().epoch(specs), total=total, description=f"{self.name} epoch {epoch + 1}",
                      quiet=self.quiet, unit="batches", leave=False)
        for pixels, extra in it:
            yield to_device_images(pixels, self.device), extra.to(self.device, non_blocking=True)

    def close(self) -> None:
        if self._loader is not None:
            self._loader.close()
            self._loader = None

    # ------------------------------------------------------------------ helpers
    @abc.abstractmethod
    def modules(self):
        """All trainable modules (for dropout and mode switches)."""

    @contextlib.contextmanager
    def embedding_cache(self):
        """Within this block every image is embedded once per network and flip.

        An evaluation embeds the same gallery for several query sets (validation, test,
        the embeddings export; the test gallery is train + val): with the cache each
        cache row goes through the backbone once. Entries live on the device and are
        dropped when the block ends (the weights change with the next step)."""
        outer = self._emb_cache is None
        if outer:
            self._emb_cache = {}
        try:
            yield
        finally:
            if outer:
                self._emb_cache = None

    @torch.inference_mode()
    def embed(self, fn: Callable[[torch.Tensor], torch.Tensor], rows: np.ndarray, flips, *, batch_size: int = 128) -> torch.Tensor:
        """Apply ``fn`` (images → vectors) to cached, unaugmented images in batches, in eval
        mode; ``flips`` is one bool or one per row. The result stays on the device.
        Inside :meth:`embedding_cache` an image already embedded is not embedded again."""
        rows = np.asarray(rows, dtype=np.int64)
        flips = np.broadcast_to(np.asarray(flips, dtype=bool), (len(rows),))
        if self._emb_cache is None or len(rows) == 0:
            return self._embed_batches(fn, rows, flips, batch_size)
        out = None
        for flip in (False, True):
            sel = np.flatnonzero(flips == flip)
            if len(sel) == 0:
                continue
            key = (id(fn), str(self.size), flip)
            slot = self._emb_cache.setdefault(key, {"pos": np.zeros(0, np.int64), "buf": None})
            top = int(rows[sel].max()) + 1
            if len(slot["pos"]) < top:  # position of each cache row in buf, -1 = not embedded yet
                slot["pos"] = np.r_[slot["pos"], np.full(top - len(slot["pos"]), -1, np.int64)]
            need = np.unique(rows[sel])
            need = need[slot["pos"][need] < 0]
            if len(need):
                new = self._embed_batches(fn, need, np.full(len(need), flip), batch_size)
                done = 0 if slot["buf"] is None else len(slot["buf"])
                slot["buf"] = new if slot["buf"] is None else torch.cat([slot["buf"], new])
                slot["pos"][need] = done + np.arange(len(need))
            vecs = slot["buf"][torch.as_tensor(slot["pos"][rows[sel]], device=slot["buf"].device)]
            if out is None:
                out = torch.empty((len(rows), vecs.shape[1]), dtype=vecs.dtype, device=vecs.device)
            out[torch.as_tensor(sel, device=out.device)] = vecs
        return out

    def _embed_batches(self, fn, rows: np.ndarray, flips: np.ndarray, batch_size: int) -> torch.Tensor:
        self.model.eval()
        images = self.images_eval
        out = []
        for start in range(0, len(rows), batch_size):
            sl = slice(start, start + batch_size)
            x = to_device_images(torch.from_numpy(images.batch_uint8(rows[sl], flips[sl], self.size)), self.device)
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
        """Query × class scores (higher = more likely that individual) of cached rows against a
        gallery of cached rows; ``classes`` names the gallery's classes (a family with a head
        over a fixed set of classes needs the names)."""
        return self.score_views(self.row_views(q_rows), self.row_views(g_rows), g_labels, classes)

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
        and val image, in :meth:`labelled_gallery` order, with its vectors per view)."""
        from ..io import atomic_path, save_npz

        rows, ids, images = [], [], []
        for role in ("train", "val"):
            s = self.splits[role]
            known = s.ids != NEW_WHALE
            rows.append(s.rows[known]); ids.append(s.ids[known]); images.append(s.images[known])
        rows_a = np.concatenate(rows)
        views = {f"view{int(f)}": self.gallery_vectors(rows_a, f).astype(np.float32) for f in self.views}
        save_npz(Path(out_dir) / "gallery.npz", images=np.concatenate(images).astype(str),
                 ids=np.concatenate(ids).astype(str), **views)
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
