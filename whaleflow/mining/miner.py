"""``LapMiner``: the hard-example miner the siamese trainer calls every K epochs.

One interface, two solvers (DESIGN.md, MiningActor):

* ``dense`` — :func:`.dense.hard_negatives` on the N×N score matrix (O(N³): fine
  up to a few thousand images).
* ``sparse`` — :func:`.sparse.sparse_hard_negatives` from features and k-NN
  candidates (seconds at N ≈ 16,000), or, with ``kind="scores"``, the sparse
  solver on a given matrix.

``mine`` takes an N×N score matrix (what the trainer and the MiningActor hold:
either solver works on it; ``sparse`` keeps each row's top k) or (N, D) features
(``dense`` scores them by dot product; ``sparse`` finds k-NN candidates without any
N×N array). Which one is inferred from the shape — square with side N = len(labels)
means scores — and ``kind="scores"|"features"`` overrides that. With features a
``scores_fn(i_idx, j_idx)`` (a pair head: :func:`.scoring.head_scores_fn`) can score
the candidate pairs. Hard positives come from the same scores, inside each
individual. Built from the config by :func:`build_miner` (registered in ``MINERS``
under the solver names, so ``mining.solver`` picks it).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Union

import numpy as np
import torch

from ..config import MiningConfig
from ..errors import ConfigError
from ..registry import MINERS
from .dense import as_rng, check_square, hard_negatives, hard_positives, label_codes
from .knn import features_tensor, pair_dots
from .noise import NoiseSchedule
from .sparse import hard_positives_from_features, sparse_hard_negatives, sparse_hard_negatives_from_scores

SOLVERS = ("dense", "sparse")
KINDS = ("scores", "features")


@dataclass(frozen=True)
class MinedPairs:
    """Index pairs for the next training epochs.

    ``neg_a[i], neg_b[i]``: images of different individuals (one per image that has
    any). ``pos_a[i], pos_b[i]``: images of the same individual, one per image
    (``pos_b == pos_a`` for singletons). ``hardness``: mean noiseless score of the
    mined negatives (rises as mining gets harder; compare with the dense optimum).
    ``seconds``: wall time of ``mine``. ``info``: solver statistics (noise std, and
    for the sparse solver edges, unmatched rows, residual size, fallback rows).
    """

    neg_a: np.ndarray
    neg_b: np.ndarray
    pos_a: np.ndarray
    pos_b: np.ndarray
    hardness: float
    seconds: float
    info: dict = field(default_factory=dict)


class LapMiner:
    """``LapMiner(solver="dense"|"sparse", k=50, noise=NoiseSchedule(...), every=4, ...)``."""

    def __init__(
        self,
        solver: str = "dense",
        k: int = 50,
        noise: Union[NoiseSchedule, float] = NoiseSchedule(),
        every: int = 4,
        block_size: int = 1024,
        normalize: bool = False,
    ):
        if solver not in SOLVERS:
            raise ConfigError(f"mining solver must be one of {SOLVERS}, got {solver!r}")
        if k < 1 or every < 1 or block_size < 1:
            raise ConfigError(f"mining k, every and block_size must be ≥ 1, got {k}, {every}, {block_size}")
        self.solver, self.k, self.every, self.block_size = solver, int(k), int(every), int(block_size)
        self.noise = noise if isinstance(noise, NoiseSchedule) else NoiseSchedule(float(noise), float(noise), 0)
        self.normalize = normalize

    def __repr__(self) -> str:
        return f"LapMiner(solver={self.solver!r}, k={self.k}, noise={self.noise}, every={self.every})"

    def due(self, epoch: int) -> bool:
        """Whether the trainer should mine before ``epoch`` (0, every, 2·every, …)."""
        return epoch % self.every == 0

    def mine(
        self,
        scores_or_features,
        labels,
        epoch: float,
        rng=None,
        *,
        scores_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
        kind: str | None = None,
    ) -> MinedPairs:
        """Hard negatives and positives for ``epoch`` (noise from the schedule)."""
        t0 = time.perf_counter()
        if kind is None:
            shape = tuple(getattr(scores_or_features, "shape", np.shape(scores_or_features)))
            kind = "scores" if len(shape) == 2 and shape[0] == shape[1] == len(labels) else "features"
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        rng, sigma = as_rng(rng), self.noise(epoch)
        info: dict = {"noise": sigma, "solver": self.solver, "kind": kind}
        if kind == "features":
            f = features_tensor(scores_or_features, self.normalize)
            if self.solver == "dense":
                if scores_fn is not None:
                    raise ValueError("dense mining with a pair head: score the matrix with score_all_pairs and pass it")
                with torch.inference_mode():
                    return self._from_scores((f @ f.T).float().cpu().numpy(), labels, sigma, rng, t0, info)
            neg = sparse_hard_negatives(
                f, labels, k=self.k, scores_fn=scores_fn, noise=sigma, rng=rng,
                block_size=self.block_size, random_candidates=self.k if sigma > 0 else 0, info=info,
            )
            pos = hard_positives_from_features(f, labels, scores_fn=scores_fn, noise=sigma, rng=rng)
            a, b = _valid(neg)
            s = pair_dots(f, a, b) if scores_fn is None else np.asarray(scores_fn(a, b), dtype=np.float64)
            return _pairs(a, b, pos, s, t0, info)
        if scores_fn is not None:
            raise ValueError("scores_fn applies to features; a score matrix already holds the scores")
        return self._from_scores(check_square(scores_or_features), labels, sigma, rng, t0, info)

    def _from_scores(self, scores: np.ndarray, labels, sigma: float, rng, t0: float, info: dict) -> MinedPairs:
        label_codes(labels, scores.shape[0])  # shape check before any work
        if self.solver == "dense":
            neg = hard_negatives(scores, labels, noise=sigma, rng=rng, info=info)
        else:
            neg = sparse_hard_negatives_from_scores(
                scores, labels, k=self.k, noise=sigma, rng=rng, block_size=self.block_size, info=info
            )
        pos = hard_positives(scores, labels, noise=sigma, rng=rng)
        a, b = _valid(neg)
        return _pairs(a, b, pos, scores[a, b].astype(np.float64), t0, info)


def _valid(partner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.flatnonzero(partner >= 0)
    return a, partner[a]


def _pairs(a, b, pos, neg_scores, t0, info) -> MinedPairs:
    hardness = float(np.mean(neg_scores)) if len(neg_scores) else float("nan")
    return MinedPairs(a, b, np.arange(len(pos)), pos, hardness, time.perf_counter() - t0, info)


def build_miner(mining_cfg: MiningConfig) -> LapMiner:
    """The miner a ``mining:`` config section describes (``solver`` via ``MINERS``)."""
    return MINERS.build(
        mining_cfg.solver,
        k=mining_cfg.k,
        every=mining_cfg.every,
        block_size=mining_cfg.block_size,
        noise=NoiseSchedule(mining_cfg.noise_start, mining_cfg.noise_end, mining_cfg.noise_epochs),
    )


@MINERS.register("dense")
def dense_lap_miner(**kwargs) -> LapMiner:
    """Exact LAP on the full score matrix (scipy ``linear_sum_assignment``)."""
    return LapMiner(solver="dense", **kwargs)


@MINERS.register("sparse")
def sparse_lap_miner(**kwargs) -> LapMiner:
    """LAP restricted to k-NN candidates (scipy ``min_weight_full_bipartite_matching``)."""
    return LapMiner(solver="sparse", **kwargs)
