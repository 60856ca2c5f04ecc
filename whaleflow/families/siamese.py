"""Approach 1: siamese networks with a pair head and LAP hard-example mining.

A backbone turns each image into pooled features; the pair head scores two feature
vectors (probability "same individual" after a sigmoid). Batches are half same and
half different pairs. Every ``mining.every`` epochs the model scores all training
images against each other (flipped images are other individuals), and a linear
assignment on that matrix picks each image's most confusable other individual
(hard negatives) and least similar same-individual image (hard positives), with
annealed noise so early training stays easy. Between mining rounds, and whenever no
mined pairs are available, pairs are random.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..engine.device import autocast, prepare_model, to_device_images
from ..mining import score_blocks
from ..inference import aggregate_by_class
from ..models.backbones import build_backbone
from ..models.pair_head import PairHead
from ..progress import progress
from .. import losses as _losses  # noqa: F401  (registers the losses)
from ..registry import FAMILIES, LOSSES
from .base import FamilyTask
from .mining_client import LocalMiningClient


class SiameseTask(FamilyTask):
    def __init__(self, model_cfg, prepared, train_cfg, predict_cfg, *, mining_client=None, **kw):
        super().__init__(model_cfg, prepared, train_cfg, predict_cfg, **kw)
        from ..data.samplers import PairSampler
        from ..mining import build_miner

        cfg = model_cfg
        stage = cfg.stages[0]
        backbone = build_backbone(cfg.backbone, cfg.pretrained)
        head = PairHead(backbone.num_features, hidden=tuple(cfg.head_layers), dropout=stage.dropout)
        self.model = prepare_model(nn.ModuleDict({"backbone": backbone, "head": head}), self.device)
        self.loss = LOSSES.build("pair")
        self.optimizer = torch.optim.Adam(
            [{"params": self.model.parameters(), "lr": stage.lr, "weight_decay": stage.weight_decay, "role": "model"}]
        )
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience
        )
        self.sampler = PairSampler(
            self.train_labels, batch_size=cfg.batch_size, flip_new_class=cfg.flip_new_class, seed=train_cfg.seed
        )
        self.mining = mining_client or LocalMiningClient(build_miner(cfg.mining), seed=train_cfg.seed)
        self.mined_epoch = -1
        self.mined: tuple[np.ndarray, ...] | None = None  # pairs in use, kept for exact resume

    def modules(self):
        return self.model.modules()

    # ------------------------------------------------------------------ mining
    def _virtual(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Training images as mining sees them: originals, then flips as new individuals."""
        rows = self.splits["train"].rows
        labels = self.train_labels
        if not self.cfg.flip_new_class:
            return rows, np.zeros(len(rows), bool), labels
        n_cls = len(self.classes)
        return (
            np.concatenate([rows, rows]),
            np.concatenate([np.zeros(len(rows), bool), np.ones(len(rows), bool)]),
            np.concatenate([labels, labels + n_cls]),
        )

    def _features(self, rows: np.ndarray, flips) -> torch.Tensor:
        return self.embed(self.model["backbone"], rows, flips)

    def _score_blocks(self, queries: torch.Tensor, gallery: torch.Tensor, block_size: int):
        """Row blocks of queries × gallery "same individual" probabilities (the pair head, tiled)."""
        return score_blocks(queries, gallery, self.model["head"], block_size=block_size, transform=torch.sigmoid)

    def mine(self, epoch: int) -> None:
        rows, flips, labels = self._virtual()
        feats = self._features(rows, flips)
        block = self.cfg.mining.block_size
        blocks = progress(self._score_blocks(feats, feats, block), total=-(-len(rows) // block),
                          description=f"{self.name}: scoring {len(rows)}² pairs for mining", quiet=self.quiet,
                          unit="blocks", leave=False)
        self.mining.submit(epoch, blocks, len(rows), labels)
        self.mined_epoch = epoch

    # ------------------------------------------------------------------ training
    def train_epoch(self, epoch: int) -> dict[str, Any]:
        self.begin_epoch(epoch)
        mcfg = self.cfg.mining
        if epoch >= mcfg.start and (epoch - mcfg.start) % max(1, mcfg.every) == 0:
            self.mine(epoch)
        pairs = self.mining.poll()
        if pairs is not None:
            self.mined = tuple(np.asarray(p) for p in (pairs.neg_a, pairs.neg_b, pairs.pos_a, pairs.pos_b))
            self.sampler.set_mined(*self.mined)
        self.model.train()
        rows = self.splits["train"].rows
        total, batches = 0.0, 0
        batches_iter = progress(self.sampler.epoch(epoch), description=f"{self.name} epoch {epoch + 1}",
                                quiet=self.quiet, unit="batches", leave=False)
        for a, fa, b, fb, target in batches_iter:
            xa = self.images_train.batch(rows[a], fa, self.size)
            xb = self.images_train.batch(rows[b], fb, self.size)
            x = to_device_images(torch.cat([xa, xb]), self.device)
            with autocast(self.device):
                feats = self.model["backbone"](x)
                fa_, fb_ = feats.float().chunk(2)
                logits = self.model["head"](fa_, fb_)
            loss = self.loss(logits.float(), torch.as_tensor(target, device=self.device, dtype=torch.float32))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach())
            batches += 1
        out = {"loss": total / max(batches, 1)}
        out.update(self.mining.status())
        return out

    def end_epoch(self, epoch, val_map5):
        if val_map5 is not None:
            self.scheduler.step(val_map5)

    def on_new_stage(self, stage):
        # a new stage restarts the plateau count at the stage's own LR
        self.scheduler.num_bad_epochs = 0
        self.scheduler.best = self.scheduler.mode_worse

    # ------------------------------------------------------------------ scoring
    def _pair_scores(self, q: torch.Tensor, g: torch.Tensor) -> np.ndarray:
        blocks = [b for _, b in self._score_blocks(q, g, self.cfg.mining.block_size)]
        return np.concatenate(blocks) if blocks else np.zeros((0, len(g)), np.float32)

    def score_queries(self, q_rows, g_rows, g_labels, num_classes):
        scores = self._pair_scores(self._features(q_rows, False), self._features(g_rows, False))
        if self.predict_cfg.flip_tta:
            # flipped query against flipped gallery: the same individual again
            flip_scores = self._pair_scores(self._features(q_rows, True), self._features(g_rows, True))
            scores = 0.5 * (scores + flip_scores)
        return aggregate_by_class(scores, g_labels, num_classes, self.predict_cfg.class_agg)

    def image_vectors(self, rows, flip):
        # pooled backbone features, unit-normalised so PCA is not led by their scale
        return torch.nn.functional.normalize(self._features(rows, flip), dim=1).cpu().numpy()

    # ------------------------------------------------------------------ state
    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "size": self.size,
            "sampler": self.sampler.state_dict(),
            "mined_epoch": self.mined_epoch,
            "mined": self.mined,
        }

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.size = state["size"]
        self.sampler.load_state_dict(state["sampler"])
        self.mined_epoch = state["mined_epoch"]
        self.mined = state.get("mined")
        if self.mined is not None:
            self.sampler.set_mined(*self.mined)

    def model_state(self):
        return {"model": self.model.state_dict()}

    def load_model_state(self, state):
        self.model.load_state_dict(state["model"])


@FAMILIES.register("siamese")
def build_siamese_task(**kwargs) -> SiameseTask:
    return SiameseTask(**kwargs)
