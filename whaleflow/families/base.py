"""What every model family shares: data roles, class lists, stages, batches, embedding.

Roles come from the prepared split: ``train`` images are what a model learns from and
the gallery for validation; ``val`` images (known individuals plus new_whale, in the
test prior) are the validation queries; for the test set the gallery is train + val.

Training batches come from a :class:`~whaleflow.data.loader.BatchLoader` (worker
processes, ``train.workers``; by default the trial's CPUs minus one) reading the cache
of the stage's size; they arrive as uint8 and are normalised on the device. A family's
loop sums its loss on the device and reads it once per epoch: no CPU sync per step.

An individual held out as a new one (Happywhale-like data) is ``new_whale`` as a
validation query, and its true self in the test gallery.

Scoring (galleries, class scores, validation, the exported files) is the
:class:`~whaleflow.families.scoring_mixin.ScoringMixin` half of :class:`FamilyTask`.
"""
from __future__ import annotations

import abc
import contextlib

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from ..config import ModelConfig, PredictConfig, StageConfig, TrainConfig, size_hw
from ..engine.device import autocast, resolve_device, to_device_images
from ..engine.step import run_steps
from ..engine.trainer import ModelTask
from ..progress import progress
from .scoring_mixin import ScoringMixin


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


class FamilyTask(ScoringMixin, ModelTask):
    """Shared plumbing; subclasses build the model and write the loss and scoring
    (:class:`~whaleflow.families.scoring_mixin.ScoringMixin` supplies the scoring around them)."""

    #: the model config sections this family reads (names in :data:`whaleflow.registry.MODEL_SECTIONS`)
    SECTIONS: tuple[str, ...] = ()
    #: the :class:`ModelConfig` fields only this family (among the families) reads; with
    #: :attr:`SECTIONS`, what of a model other than the shared fields goes into its trials' fingerprint
    MODEL_FIELDS: tuple[str, ...] = ()

    def __init__(self, model_cfg: ModelConfig, prepared, train_cfg: TrainConfig, predict_cfg: PredictConfig, *,
                 quiet: bool = True, cpus: float | None = None):
        from ..data.loader import resolve_workers
        from ..registry import AUGMENTATIONS

        self.prepared = prepared
        self.train_cfg = train_cfg
        self.quiet = quiet
        index = prepared.index
        self.splits = {role: self._split(index, role) for role in ("train", "val", "test")}
        if train_cfg.max_train_images:
            s = self.splits["train"]
            keep = np.sort(np.random.default_rng(train_cfg.seed).permutation(len(s.rows))[: train_cfg.max_train_images])
            self.splits["train"] = Split(s.rows[keep], s.images[keep], s.ids[keep], s.gallery_ids[keep])
        train_ids = self.splits["train"].ids
        if len(train_ids) == 0:
            raise ValueError("the split left no training images; check the data and prepare.val_fraction")
        self._init_scoring(model_cfg, predict_cfg, resolve_device(train_cfg.device), np.array(sorted(set(train_ids))))
        self.train_labels = np.array([self.class_index[c] for c in train_ids], dtype=np.int64)
        self.augment = AUGMENTATIONS.build(model_cfg.augment)
        # every cache of the prepared folder by (height, width); each stage reads its own size's
        self.caches = getattr(prepared, "caches", None) or {tuple(prepared.images.shape[1:3]): prepared.images}
        self.workers = resolve_workers(train_cfg.workers, cpus)  # cpus: the trial's (None: this process's)
        self._loader = None

    def _init_scoring(self, model_cfg: ModelConfig, predict_cfg: PredictConfig, device: torch.device,
                      classes: np.ndarray) -> None:
        """What scoring reads, training or not: the model's config, the prediction settings, the
        device and the training classes a head is indexed by."""
        self.cfg = model_cfg
        self.name = model_cfg.name
        self.predict_cfg = predict_cfg
        self.device = device
        self.classes = classes
        self.class_index = {c: i for i, c in enumerate(self.classes)}
        self.size = model_cfg.stages[0].size
        self.val_threshold: float | None = None
        self._emb_cache: dict | None = None

    # ------------------------------------------------------------------ inference alone
    #: the attributes holding the networks inference runs: the keys of :meth:`model_state` it loads
    INFERENCE_PARTS: tuple[str, ...] = ("model",)
    #: whether the family scores through a classification head over its training individuals, which
    #: cannot score an individual enrolled after training (the identify page says so)
    CLOSED_SET_HEAD: bool = False

    @classmethod
    def for_inference(cls, model_cfg: ModelConfig, classes, predict_cfg: PredictConfig, *,
                      device: str = "auto") -> "FamilyTask":
        """The family's networks alone, to score photos with an exported model (``whaleflow identify``).

        No split, loader, sampler, optimiser or miner is built and no weights are fetched
        (:meth:`load_inference_state` puts the trained ones in): a run folder scores new photos
        without its ``prepared/`` folder. ``classes`` are the training classes the export lists;
        scoring then runs the very methods that scored the run's validation and test photos.
        Query pixels come through :attr:`images_eval`, which the caller assigns."""
        task = cls.__new__(cls)
        task._init_scoring(model_cfg, predict_cfg, resolve_device(device), np.asarray(classes, dtype=str))
        task.caches = {}  # no image cache: embedding reads only what is assigned to images_eval
        task.build_networks(load_weights=False)
        return task

    @abc.abstractmethod
    def build_networks(self, *, load_weights: bool = True) -> None:
        """Create the networks of :attr:`INFERENCE_PARTS` on ``self.device`` (``load_weights``: read the
        pretrained weights ``cfg.pretrained`` names; without, the same architecture and input
        normalisation, for weights loaded afterwards)."""

    def load_inference_state(self, state: dict[str, Any]) -> None:
        """Load the :attr:`INFERENCE_PARTS` of an exported :meth:`model_state`."""
        for part in self.INFERENCE_PARTS:
            getattr(self, part).load_state_dict(state[part])

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

    def run_steps(self, batches: Iterable[Any], before_step: Callable[[int], None] | None = None) -> dict[str, float]:
        """An epoch of the shared trainer step (:mod:`whaleflow.engine.step`) over ``batches`` with this
        family's ``compute_loss``; returns ``{"loss": mean}``."""
        return run_steps(self.optimizer, self.compute_loss, batches, self.device,
                         grad_clip=self.train_cfg.grad_clip, before_step=before_step)

    def compute_loss(self, batch: Any) -> torch.Tensor:
        """The loss of one training batch (run by the shared step under autocast); trainable families define it."""
        raise NotImplementedError(f"{type(self).__name__} trains nothing (no compute_loss).")

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
