"""Approach 2: metric learning with margin loss and distance-weighted sampling.

Embeddings are unit vectors; each known individual is the (re-normalised) mean of
its gallery embeddings, and a query's class scores are dot products with those
centroids. A horizontally flipped fluke is trained as a different individual, so at
test time a flipped query is compared with flipped centroids (flip TTA).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..engine.device import prepare_model
from ..engine.step import full_precision
from ..inference import centroid_scores, class_centroids
from ..models.backbones import build_backbone
from ..models.embedding import EmbeddingNet
from .. import losses as _losses  # noqa: F401  (registers the losses)
from ..registry import FAMILIES, LOSSES
from .base import FamilyTask


@FAMILIES.register("metric")
class MetricTask(FamilyTask):
    SECTIONS = ("margin",)
    MODEL_FIELDS = ("embedding_dim", "p_individuals", "k_images", "lr_step_epochs", "lr_gamma")

    def __init__(self, model_cfg, prepared, train_cfg, predict_cfg, **kw):
        super().__init__(model_cfg, prepared, train_cfg, predict_cfg, **kw)
        from ..data.samplers import PKSampler

        cfg = model_cfg
        stage = cfg.stages[0]
        self.build_networks()
        n_classes = len(self.classes) * (2 if cfg.flip_new_class else 1)
        self.loss = LOSSES.build("margin", num_classes=n_classes, cfg=cfg.margin).to(self.device)
        self.optimizer = torch.optim.Adam(
            [
                {"params": self.model.parameters(), "lr": stage.lr, "weight_decay": stage.weight_decay, "role": "model"},
                {"params": list(self.loss.beta_parameters()), "lr": cfg.margin.beta_lr, "weight_decay": 0.0, "role": "beta"},
            ]
        )
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=cfg.lr_step_epochs, gamma=cfg.lr_gamma)
        self.sampler = PKSampler(
            self.train_labels, p=cfg.p_individuals, k=cfg.k_images, flip_new_class=cfg.flip_new_class, seed=train_cfg.seed
        )

    def build_networks(self, *, load_weights: bool = True) -> None:
        cfg = self.cfg
        backbone = build_backbone(cfg.backbone, cfg.pretrained, frozen_stages=cfg.frozen_stages,
                                  load_weights=load_weights)
        self.model = prepare_model(EmbeddingNet(backbone, cfg.embedding_dim, cfg.stages[0].dropout), self.device)

    def modules(self):
        return self.model.modules()

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        self.model.train()
        rows = self.splits["train"].rows
        specs = ((rows[pos], flips, vlabels) for pos, flips, vlabels in self.sampler.epoch(epoch))
        return self.run_steps(self.train_batches(epoch, specs, total=len(self.sampler)))

    def compute_loss(self, batch) -> torch.Tensor:
        """The metric loss (mined in-batch) of the batch's embeddings, in float32."""
        x, y = batch
        emb = self.model(x)
        with full_precision(self.device):
            return self.loss(emb.float(), y)

    def end_epoch(self, epoch, val_map5):
        self.scheduler.step()

    def _embed(self, rows: np.ndarray, flip: bool) -> np.ndarray:
        return self.embed(self.model, rows, flip).cpu().numpy()

    def score_views(self, q, g, g_labels, classes):
        # flipped query vs flipped centroids: with flips trained as new individuals, only
        # this pairing is the same individual again (flip TTA averages the two views)
        per_view = [centroid_scores(q[f], class_centroids(g[f], g_labels, len(classes))) for f in self.views]
        return per_view[0] if len(per_view) == 1 else 0.5 * (per_view[0] + per_view[1])

    def image_vectors(self, rows, flip):
        return self._embed(rows, flip)

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "loss": self.loss.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "size": self.size,
        }

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.loss.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.size = state["size"]

    def model_state(self):
        return {"model": self.model.state_dict(), "loss": self.loss.state_dict()}

    def load_model_state(self, state):
        self.model.load_state_dict(state["model"])
        self.loss.load_state_dict(state["loss"])
