"""The frozen pretrained network as a member of the blend: what a user has without whaleflow.

An ImageNet-pretrained backbone, never trained here, pools each photo into a vector, and a
query's score for an individual is its best cosine to any gallery photo of that individual
(k-NN, as wildlife-tools' baseline and most published re-identification baselines do). On
photo sets whaleflow was never tuned on this peer was as good as the fine-tuned models
(0.386 against 0.344 on whole-frame flukes from another generator), because fine-tuning a
few hundred photos at a small size can lose the detail the pretrained features keep at a
large one. As one member of the blend its strength is kept: the blend weights, tuned on
validation, decide how much the trained families add to it, and the frozen net costs no
training, only one pass over the photos at a size no trained model could afford.

The stages give only the image size; a frozen model has nothing to train, so every stage
must have ``epochs: 0``. Flip TTA compares a mirrored query with mirrored gallery photos,
as in the other families.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..config import ConfigError
from ..engine.device import prepare_model
from ..inference import aggregate_by_class
from ..models.backbones import build_backbone
from ..registry import FAMILIES
from .base import FamilyTask


@FAMILIES.register("frozen")
class FrozenTask(FamilyTask):
    def __init__(self, model_cfg, prepared, train_cfg, predict_cfg, **kw):
        trained = [s for s in model_cfg.stages if s.epochs]
        if trained:
            raise ConfigError(f"model {model_cfg.name!r} (family frozen) trains nothing, but a stage asks for "
                              f"{trained[0].epochs} epochs. Fix: set epochs: 0 in its stages, or use the "
                              "arcface or metric family to fine-tune the backbone.")
        super().__init__(model_cfg, prepared, train_cfg, predict_cfg, **kw)
        self.build_networks()

    def build_networks(self, *, load_weights: bool = True) -> None:
        backbone = build_backbone(self.cfg.backbone, self.cfg.pretrained, load_weights=load_weights)
        for p in backbone.parameters():
            p.requires_grad_(False)
        self.model = prepare_model(backbone, self.device).eval()

    def modules(self):
        return self.model.modules()

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        raise RuntimeError(f"{self.name}: a frozen model has no epoch to train (its stages have epochs: 0)")

    def image_vectors(self, rows: np.ndarray, flip: bool) -> np.ndarray:
        v = self.embed(self.model, rows, flip)
        return torch.nn.functional.normalize(v, dim=1).cpu().numpy()

    def score_views(self, q, g, g_labels, classes):
        per_view = [aggregate_by_class(np.asarray(q[f], np.float32) @ np.asarray(g[f], np.float32).T,
                                       g_labels, len(classes), "max") for f in self.views]
        return per_view[0] if len(per_view) == 1 else 0.5 * (per_view[0] + per_view[1])

    def state_dict(self):
        return {"size": self.size}

    def load_state_dict(self, state):
        self.size = state["size"]

    def model_state(self):
        return {"model": self.model.state_dict()}

    def load_model_state(self, state):
        self.model.load_state_dict(state["model"])
