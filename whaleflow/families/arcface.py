"""Approach 4: sub-center ArcFace with dynamic margins (the Happywhale 2022 winner's family).

Backbone feature map → GeM → BN neck → unit embedding, trained as a classifier over
individuals with a cosine head (:class:`~whaleflow.losses.arcface_loss.SubCenterArcFaceLoss`):
K sub-centres per individual, a margin per individual that shrinks with its photo
count, scale s. A flipped photo is an individual of its own (class c + C), as in the
other families. The head learns ``head_lr_mult`` times faster than the backbone; the
LR warms up linearly for ``warmup_epochs``, then decays along a cosine within each
stage.

Class scores blend the head's cosine to each individual's closest sub-centre with
k-NN over the gallery embeddings (the best cosine to any gallery photo of that
individual): ``(1 − knn_weight) · head + knn_weight · knn``. The k-NN part lets an
individual with a single photo rank, and it is the only evidence for individuals the head
was never trained on (enrolled later): their score is put on the blended scale per query
(:func:`~whaleflow.inference.impute.impute_columns`), not used raw.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..engine.device import prepare_model
from ..engine.step import full_precision
from ..inference import aggregate_by_class
from ..inference.impute import impute_columns
from ..losses.arcface_loss import SubCenterArcFaceLoss, dynamic_margins
from ..models.arcface_net import ArcFaceNet
from ..models.backbones import build_backbone
from ..registry import FAMILIES, MODEL_SECTIONS
from .base import FamilyTask


@MODEL_SECTIONS.register("arcface")
@dataclass(frozen=True)
class ArcFaceConfig:
    """Sub-center ArcFace with dynamic margins (the Happywhale 2022 winner's head): the ``arcface:``
    section of an arcface model (registered as the model config section ``arcface``).

    Margin of individual c with n_c training photos: ``m_c = margin_a * n_c**-margin_lambda
    + margin_b`` (rare individuals get larger margins). ``subcenters`` K cosine centres per
    class, the max over them is the class logit, times ``scale``.
    """

    scale: float = 30.0
    subcenters: int = 3
    margin_a: float = 0.45
    margin_lambda: float = 0.25
    margin_b: float = 0.05
    gem_p: float = 3.0               # GeM pooling exponent (learned)
    head_lr_mult: float = 10.0       # the head learns this much faster than the backbone
    warmup_epochs: int = 1           # linear LR warm-up, then cosine decay over the rest of the run
    min_lr_ratio: float = 0.05       # cosine decays to lr × this
    knn_weight: float = 0.5          # class score = (1-w)·head cosine + w·best gallery cosine
    imprint: bool = True             # start each class centre at its mean embedding (weight imprinting)


@FAMILIES.register("arcface")
class ArcFaceTask(FamilyTask):
    SECTIONS = ("arcface",)
    MODEL_FIELDS = ("batch_size", "embedding_dim")

    def __init__(self, model_cfg, prepared, train_cfg, predict_cfg, **kw):
        super().__init__(model_cfg, prepared, train_cfg, predict_cfg, **kw)
        cfg, a = model_cfg, model_cfg.arcface
        stage = cfg.stages[0]
        self.build_networks(counts=np.bincount(self.train_labels, minlength=len(self.classes)))
        self.optimizer = torch.optim.AdamW(
            [
                {"params": self.model.parameters(), "lr": stage.lr, "weight_decay": stage.weight_decay,
                 "role": "model", "mult": 1.0},
                {"params": self.head.parameters(), "lr": stage.lr * a.head_lr_mult, "weight_decay": 0.0,
                 "role": "head", "mult": a.head_lr_mult},
            ]
        )
        if a.imprint:
            self.imprint()
        self.stage_lr = stage.lr
        self._stage_starts = np.cumsum([0] + [s.epochs for s in cfg.stages])

    @torch.no_grad()
    def imprint(self) -> None:
        """Start every class centre at its individual's mean embedding under the initial net
        (weight imprinting, Qi et al. 2018): with a pretrained backbone the head then starts
        where k-NN already is, instead of spending its first epochs finding the classes."""
        rows = self.splits["train"].rows
        n = len(self.classes)
        views = [(False, 0), (True, n)] if self.flips else [(False, 0)]
        centres = torch.zeros(self.head.num_classes, self.cfg.embedding_dim, device=self.device)
        for flip, offset in views:
            emb = self.embed(self.model, rows, flip)
            labels = torch.as_tensor(self.train_labels + offset, device=self.device)
            centres.index_add_(0, labels, emb)
        centres = torch.nn.functional.normalize(centres, dim=1)
        k = self.head.subcenters
        noise = torch.randn(self.head.num_classes, k, centres.shape[1], device=self.device) * 0.01
        self.head.weight.copy_((centres[:, None, :] + noise).reshape(-1, centres.shape[1]))

    INFERENCE_PARTS = ("model", "head")
    CLOSED_SET_HEAD = True

    def build_networks(self, *, load_weights: bool = True, counts: np.ndarray | None = None) -> None:
        """The embedding net and the cosine head (a class, then its mirror class with flips);
        ``counts``: training photos per class, which set the margins (None: inference, where
        the exported head brings its own)."""
        cfg, a = self.cfg, self.cfg.arcface
        backbone = build_backbone(cfg.backbone, cfg.pretrained, frozen_stages=cfg.frozen_stages,
                                  load_weights=load_weights)
        self.model = prepare_model(ArcFaceNet(backbone, cfg.embedding_dim, cfg.stages[0].dropout, a.gem_p), self.device)
        self.flips = bool(cfg.flip_new_class)
        counts = np.ones(len(self.classes), np.int64) if counts is None else np.asarray(counts)
        if self.flips:
            counts = np.concatenate([counts, counts])
        margins = dynamic_margins(counts, a.margin_a, a.margin_lambda, a.margin_b)
        self.head = SubCenterArcFaceLoss(len(counts), cfg.embedding_dim, subcenters=a.subcenters, scale=a.scale,
                                         margins=torch.from_numpy(margins)).to(self.device)

    def modules(self):
        return list(self.model.modules()) + list(self.head.modules())

    # ------------------------------------------------------------------ schedule
    def setup_stage(self, stage, *, fresh: bool) -> None:
        super().setup_stage(stage, fresh=fresh)
        self.stage_lr = stage.lr

    def lr_factor(self, epoch: int, step: int, steps: int) -> float:
        """Warm-up (first stage only) then cosine decay to ``min_lr_ratio`` within the stage."""
        a = self.cfg.arcface
        s = int(np.searchsorted(self._stage_starts, epoch, side="right") - 1)
        s = min(s, len(self.cfg.stages) - 1)
        first, length = int(self._stage_starts[s]), int(self.cfg.stages[s].epochs)
        t = (epoch - first + step / max(steps, 1)) / max(length, 1)
        warm = a.warmup_epochs / max(length, 1) if s == 0 else 0.0
        if t < warm:
            return max(t / warm, 0.02)
        u = (t - warm) / max(1.0 - warm, 1e-9)
        return a.min_lr_ratio + (1.0 - a.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(u, 1.0)))

    def _set_lr(self, factor: float) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = self.stage_lr * g.get("mult", 1.0) * factor

    # ------------------------------------------------------------------ training
    def _epoch_batches(self, epoch: int):
        """Every training photo once, shuffled; each flipped with p = ½ into its mirror class."""
        rng = np.random.default_rng([self.train_cfg.seed, epoch, 7])
        n, bs = len(self.train_labels), max(2, self.cfg.batch_size)
        order = rng.permutation(n)
        flips = rng.random(n) < 0.5 if self.flips else np.zeros(n, bool)
        labels = self.train_labels + flips * len(self.classes)
        for start in range(0, n, bs):
            sl = order[start:start + bs]
            if len(sl) < 2:  # batch norm needs two samples
                continue
            yield sl, flips[sl], labels[sl]

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        self.model.train()
        self.head.train()
        rows = self.splits["train"].rows
        steps = -(-len(rows) // max(2, self.cfg.batch_size))
        specs = ((rows[pos], flips, labels) for pos, flips, labels in self._epoch_batches(epoch))
        return self.run_steps(self.train_batches(epoch, specs, total=steps),
                              before_step=lambda step: self._set_lr(self.lr_factor(epoch, step, steps)))

    def compute_loss(self, batch) -> torch.Tensor:
        """The margin head's loss of the batch's embeddings, in float32."""
        x, y = batch
        emb = self.model(x)
        with full_precision(self.device):
            return self.head(emb.float(), y)

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------ scoring
    def _embed(self, rows: np.ndarray, flip: bool) -> torch.Tensor:
        return self.embed(self.model, rows, flip)

    def image_vectors(self, rows, flip):
        return self._embed(rows, flip).cpu().numpy()

    def score_queries(self, q_rows, g_rows, g_labels, num_classes):
        """Scores against a gallery whose labels index this task's own training classes
        (the base class calls :meth:`score_queries_named`, which takes any class list)."""
        if num_classes != len(self.classes):
            raise ValueError(f"{num_classes} gallery classes, {len(self.classes)} trained: "
                             "use score_queries_named with the gallery's class names")
        return self.score_queries_named(q_rows, g_rows, g_labels, self.classes)

    @torch.inference_mode()
    def score_views(self, q, g, g_labels, classes):
        w = float(self.cfg.arcface.knn_weight)
        col = np.array([self.class_index.get(c, -1) for c in classes])
        known = col >= 0
        total = np.zeros((len(q[False]), len(classes)), np.float32)
        self.head.eval()
        for flip in self.views:
            qv = torch.as_tensor(q[flip], device=self.device)
            gv = torch.as_tensor(g[flip], device=self.device)
            knn = aggregate_by_class((qv @ gv.T).cpu().numpy(), g_labels, len(classes), "max")
            head = self.head.cosine(qv).cpu().numpy()
            offset = len(self.classes) if (flip and self.flips) else 0
            blended = knn.copy()
            blended[:, known] = (1 - w) * head[:, col[known] + offset] + w * knn[:, known]
            # individuals the head never saw: their k-NN cosine on the head + k-NN scale (only
            # identify's enrolled ones; training's galleries hold trained individuals: no copy)
            total += blended if known.all() else impute_columns(blended, knn, known)
        return total / len(self.views)

    # ------------------------------------------------------------------ state
    def state_dict(self):
        return {"model": self.model.state_dict(), "head": self.head.state_dict(),
                "optimizer": self.optimizer.state_dict(), "size": self.size, "stage_lr": self.stage_lr}

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.size = state["size"]
        self.stage_lr = state["stage_lr"]

    def model_state(self):
        return {"model": self.model.state_dict(), "head": self.head.state_dict()}

    def load_model_state(self, state):
        self.model.load_state_dict(state["model"])
        self.head.load_state_dict(state["head"])
