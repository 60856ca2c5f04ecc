"""Approach 1: siamese networks with a pair head and LAP hard-example mining.

A backbone turns each image into pooled features; the pair head scores two feature
vectors (probability "same individual" after a sigmoid). Batches are half same and
half different pairs. After a warm-up on random pairs, every ``mining.every``
epochs (never on the first epoch of a new image-size stage) the model scores all
training images against each other in logits (flipped images are other
individuals), and a linear assignment on that matrix picks each image's most
confusable other individual (hard negatives) and least similar same-individual
image (hard positives), with annealed noise that never reaches zero. Photos of one
near-duplicate group are never negatives of each other (a group with two labels
merges them for negatives). ``mining.random_share`` of each mined batch stays
random; before the first round, and with ``solver: none``, pairs are all random.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..engine.device import prepare_model
from ..engine.step import full_precision
from ..mining import (MiningSchedule, build_miner, mining_enabled, negative_codes, score_all_pairs, score_blocks,
                      mining_noise, score_candidates, virtual_codes)
from ..inference import aggregate_by_class
from ..models.backbones import build_backbone
from ..models.pair_head import PairHead
from ..progress import progress
from .. import losses as _losses  # noqa: F401  (registers the losses)
from ..registry import FAMILIES, LOSSES
from .base import FamilyTask
from .mining_client import LocalMiningClient
from .pair_shortlist import shortlisted_scores, use_shortlist


#: per-round mining numbers in metrics.csv (NaN on epochs without new pairs)
ROUND_STATS = ("mining_neg_score", "mining_pos_score", "mining_neg_easy", "mining_noise")


@FAMILIES.register("siamese")
class SiameseTask(FamilyTask):
    SECTIONS = ("mining",)
    MODEL_FIELDS = ("head_layers", "batch_size", "plateau_patience", "plateau_factor")

    def __init__(self, model_cfg, prepared, train_cfg, predict_cfg, *, mining_client=None, **kw):
        super().__init__(model_cfg, prepared, train_cfg, predict_cfg, **kw)
        from ..data.samplers import PairSampler

        cfg = model_cfg
        stage = cfg.stages[0]
        self.build_networks()
        self.loss = LOSSES.build("pair")
        self.optimizer = torch.optim.Adam(
            [{"params": self.model.parameters(), "lr": stage.lr, "weight_decay": stage.weight_decay, "role": "model"}]
        )
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience
        )
        self.neg_codes = negative_codes(self.train_labels, self._groups(self.splits["train"].rows))
        self.sampler = PairSampler(
            self.train_labels, batch_size=cfg.batch_size, flip_new_class=cfg.flip_new_class, seed=train_cfg.seed,
            neg_codes=self.neg_codes, random_share=cfg.mining.random_share,
        )
        enabled = mining_enabled(cfg.mining)
        self.mining = None
        if enabled:  # solver none: no miner is ever built or called
            self.mining = mining_client or LocalMiningClient(build_miner(cfg.mining), seed=train_cfg.seed)
        self.schedule = MiningSchedule.for_stages(cfg.mining.start, cfg.mining.every,
                                                  [s.epochs for s in cfg.stages], enabled=enabled)
        self.mined_epoch = -1
        self.mined: tuple[np.ndarray, ...] | None = None  # pairs in use, kept for exact resume

    def build_networks(self, *, load_weights: bool = True) -> None:
        cfg = self.cfg
        backbone = build_backbone(cfg.backbone, cfg.pretrained, frozen_stages=cfg.frozen_stages,
                                  load_weights=load_weights)
        head = PairHead(backbone.num_features, hidden=tuple(cfg.head_layers), dropout=cfg.stages[0].dropout)
        self.model = prepare_model(nn.ModuleDict({"backbone": backbone, "head": head}), self.device)

    def modules(self):
        return self.model.modules()

    # ------------------------------------------------------------------ mining
    def _groups(self, rows: np.ndarray):
        """Near-duplicate group of each cache row (None when the index has no groups)."""
        index = self.prepared.index
        if "group" not in index:
            return None
        # a pseudo-labelled test photo is a second row over the same pixels (whaleflow.pseudo_label)
        g = index.drop_duplicates("row").set_index("row")["group"].reindex(rows)
        own = np.char.add("single-", np.arange(len(rows)).astype(str))  # no group: a group of its own
        return np.where(g.isna().to_numpy(), own, g.astype(str).to_numpy())

    def _virtual(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Training images as mining sees them: originals, then flips as new individuals
        (rows, flips, labels, negative codes)."""
        rows = self.splits["train"].rows
        labels = self.train_labels
        flip = self.cfg.flip_new_class
        # mirror_negatives false: an image and its flipped twin share a code for the miner
        neg = virtual_codes(self.neg_codes, flip) if self.cfg.mining.mirror_negatives or not flip else \
            np.concatenate([self.neg_codes, self.neg_codes])
        if not flip:
            return rows, np.zeros(len(rows), bool), labels, neg
        n_cls = len(self.classes)
        return (
            np.concatenate([rows, rows]),
            np.concatenate([np.zeros(len(rows), bool), np.ones(len(rows), bool)]),
            np.concatenate([labels, labels + n_cls]),
            neg,
        )

    def _features(self, rows: np.ndarray, flips) -> torch.Tensor:
        return self.embed(self.model["backbone"], rows, flips)

    def _score_blocks(self, queries: torch.Tensor, gallery: torch.Tensor, block_size: int, transform=torch.sigmoid):
        """Row blocks of queries × gallery "same individual" probabilities (the pair head, tiled;
        ``transform=None``: logits, what mining assigns on)."""
        return score_blocks(queries, gallery, self.model["head"], block_size=block_size, transform=transform)

    def mine(self, epoch: int) -> None:
        """Score the training pairs for a mining round and hand them to the miner.

        The sparse solver gets each image's top-k candidates, scored on the device with
        each unordered pair once (``score_candidates``: N·k entries cross to the miner, not
        N×N); the dense one the full matrix (symmetric head: upper triangle, mirrored).
        Both are computed only when the client takes the round (a busy actor skips it)."""
        rows, flips, labels, neg_codes = self._virtual()
        feats = self._features(rows, flips)
        block, head, n = self.cfg.mining.block_size, self.model["head"], len(rows)
        if self.cfg.mining.solver == "sparse":
            def candidates():  # the round's noise is drawn on the device, before the top-k
                return score_candidates(feats, head, k=self.cfg.mining.k, neg_labels=neg_codes, labels=labels,
                                        noise=mining_noise(self.cfg.mining, epoch), block_size=block,
                                        seed=[self.train_cfg.seed, epoch], prefilter=self.cfg.mining.prefilter)
            self.mining.submit_candidates(epoch, candidates, labels, neg_labels=neg_codes)
        else:
            def row_blocks():
                matrix = score_all_pairs(feats, head, block_size=block, fast=True)
                blocks = progress(range(0, n, block), description=f"{self.name}: sending {n}² pair scores",
                                  quiet=self.quiet, unit="blocks", leave=False)
                for s in blocks:
                    yield s, matrix[s : s + block]
            self.mining.submit(epoch, row_blocks(), n, labels, neg_labels=neg_codes)
        self.mined_epoch = epoch

    # ------------------------------------------------------------------ training
    def train_epoch(self, epoch: int) -> dict[str, Any]:
        if self.schedule.due(epoch):
            self.mine(epoch)
        pairs = self.mining.poll() if self.mining is not None else None
        round_stats = dict.fromkeys(ROUND_STATS, float("nan"))  # every key from the first epoch (Tune's CSV)
        if pairs is not None:
            self.mined = tuple(np.asarray(p) for p in (pairs.neg_a, pairs.neg_b, pairs.pos_a, pairs.pos_b))
            self.sampler.set_mined(*self.mined)
            if len(pairs.neg_a):
                round_stats.update(pairs.stats())
        self.model.train()
        rows = self.splits["train"].rows
        # one batch of both sides: the left images, then the right ones
        specs = ((np.concatenate([rows[a], rows[b]]), np.concatenate([fa, fb]), np.asarray(target, np.float32))
                 for a, fa, b, fb, target in self.sampler.epoch(epoch))
        out = self.run_steps(self.train_batches(epoch, specs, total=len(self.sampler)))
        out.update(self.mining.status() if self.mining is not None else {"mining_source": "random (solver none)"})
        out.update(round_stats)
        return out

    def compute_loss(self, batch) -> torch.Tensor:
        """Binary cross-entropy of the head's same/different logits on a batch of left + right images."""
        x, target = batch
        feats = self.model["backbone"](x)
        fa_, fb_ = feats.float().chunk(2)
        logits = self.model["head"](fa_, fb_)
        with full_precision(self.device):
            return self.loss(logits.float(), target)

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

    def image_scores(self, q, g):
        # flipped query against flipped gallery: the same individual again
        per_view = [self._pair_scores(torch.as_tensor(q[f], device=self.device),
                                      torch.as_tensor(g[f], device=self.device)) for f in self.views]
        return per_view[0] if len(per_view) == 1 else 0.5 * (per_view[0] + per_view[1])

    def score_views(self, q, g, g_labels, classes):
        """Class scores by the pair head: on every gallery photo while the gallery holds at most
        ``predict.pair_shortlist`` classes, else on each query's shortlist (``pair_shortlist``:
        linear in the gallery, not Q·G head evaluations)."""
        m = self.predict_cfg.pair_shortlist
        if use_shortlist(m, g_labels):
            return shortlisted_scores({f: q[f] for f in self.views}, {f: g[f] for f in self.views}, g_labels,
                                      len(classes), self.model["head"], shortlist=m,
                                      how=self.predict_cfg.class_agg, device=self.device)
        return aggregate_by_class(self.image_scores(q, g), g_labels, len(classes), self.predict_cfg.class_agg)

    def gallery_vectors(self, rows, flip):
        # the pair head scores raw pooled features
        return self._features(rows, flip).cpu().numpy()

    def embedding_from(self, vectors):
        # pooled backbone features, unit-normalised so PCA is not led by their scale
        return torch.nn.functional.normalize(torch.as_tensor(vectors), dim=1).numpy()

    def image_vectors(self, rows, flip):
        return self.embedding_from(self.gallery_vectors(rows, flip))

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
