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
``scores_fn(i_idx, j_idx)`` (a pair head: :func:`.pair_scoring.head_scores_fn`) can score
the candidate pairs. Hard positives come from the same scores, inside each
individual. Built from the config by :func:`build_miner` (registered in ``MINERS``
under the solver names, so ``mining.solver`` picks it; ``none`` builds no miner).

``neg_labels`` (optional) are the codes that decide which images may be negatives
of each other (:func:`.exclusion.negative_codes`: individuals merged through
near-duplicate groups); positives always follow ``labels``. With ``logits=True``
the scores are a pair head's logits, and the per-round statistics (mean score of
the mined negatives and positives, share of negatives already below 0.5) are
reported as probabilities.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Union

import numpy as np
import torch

from ..errors import ConfigError
from ..registry import MINERS
from .mining_config import MiningConfig
from .candidate_lap import CandidateLookup, hard_negatives_from_candidates, hard_positives_from_candidates
from .candidates import PairCandidates
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
    ``neg_score`` / ``pos_score``: mean noiseless score of the mined negatives and of
    the mined positives of two distinct images (probabilities when the miner takes
    logits); ``neg_easy``: share of mined negatives the model already puts below 0.5
    (mining too easy when near 1, the model lost when near 0). Empty positives mean
    "random positives" (``hard_positives=False``).
    """

    neg_a: np.ndarray
    neg_b: np.ndarray
    pos_a: np.ndarray
    pos_b: np.ndarray
    hardness: float
    seconds: float
    info: dict = field(default_factory=dict)
    neg_score: float = float("nan")
    pos_score: float = float("nan")
    neg_easy: float = float("nan")

    def stats(self) -> dict:
        """The per-round numbers that go into ``metrics.csv``."""
        return {"mining_neg_score": self.neg_score, "mining_pos_score": self.pos_score,
                "mining_neg_easy": self.neg_easy, "mining_noise": float(self.info.get("noise", float("nan")))}


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
        hard_positives: bool = True,
        logits: bool = False,
    ):
        if solver not in SOLVERS:
            raise ConfigError(f"mining solver must be one of {SOLVERS}, got {solver!r}")
        if k < 1 or every < 1 or block_size < 1:
            raise ConfigError(f"mining k, every and block_size must be ≥ 1, got {k}, {every}, {block_size}")
        self.solver, self.k, self.every, self.block_size = solver, int(k), int(every), int(block_size)
        self.noise = noise if isinstance(noise, NoiseSchedule) else NoiseSchedule(float(noise), float(noise), 0)
        self.normalize = normalize
        self.hard_positives, self.logits = bool(hard_positives), bool(logits)

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
        neg_labels=None,
    ) -> MinedPairs:
        """Hard negatives and positives for ``epoch`` (noise from the schedule).

        ``neg_labels``: codes forbidding negatives within a code (default ``labels``)."""
        t0 = time.perf_counter()
        if isinstance(scores_or_features, PairCandidates):
            return self._from_candidates(scores_or_features, labels, neg_labels, epoch, rng, t0)
        if kind is None:
            shape = tuple(getattr(scores_or_features, "shape", np.shape(scores_or_features)))
            kind = "scores" if len(shape) == 2 and shape[0] == shape[1] == len(labels) else "features"
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        rng, sigma = as_rng(rng), self.noise(epoch)
        info: dict = {"noise": sigma, "solver": self.solver, "kind": kind}
        neg_labels = labels if neg_labels is None else neg_labels
        label_codes(neg_labels, len(labels))
        if kind == "features":
            f = features_tensor(scores_or_features, self.normalize)
            if self.solver == "dense":
                if scores_fn is not None:
                    raise ValueError("dense mining with a pair head: score the matrix with score_all_pairs and pass it")
                with torch.inference_mode():
                    return self._from_scores((f @ f.T).float().cpu().numpy(), labels, neg_labels, sigma, rng,
                                             t0, info)
            neg = sparse_hard_negatives(
                f, neg_labels, k=self.k, scores_fn=scores_fn, noise=sigma, rng=rng,
                block_size=self.block_size, random_candidates=self.k if sigma > 0 else 0, info=info,
            )
            pos = (hard_positives_from_features(f, labels, scores_fn=scores_fn, noise=sigma, rng=rng)
                   if self.hard_positives else None)
            a, b = _valid(neg)
            pair_fn = (lambda i, j: pair_dots(f, i, j)) if scores_fn is None else \
                (lambda i, j: np.asarray(scores_fn(i, j), dtype=np.float64))
            return self._pairs(a, b, pos, pair_fn, t0, info)
        if scores_fn is not None:
            raise ValueError("scores_fn applies to features; a score matrix already holds the scores")
        return self._from_scores(check_square(scores_or_features), labels, neg_labels, sigma, rng, t0, info)

    def _from_candidates(self, cand: PairCandidates, labels, neg_labels, epoch, rng, t0: float) -> MinedPairs:
        """Sparse LAP on the top-k candidates a trial scored on its device (:mod:`.candidates`)."""
        if self.solver != "sparse":
            raise ValueError("top-k candidates need mining.solver sparse; the dense solver assigns on the full matrix")
        rng, sigma = as_rng(rng), self.noise(epoch)
        info: dict = {"noise": sigma, "solver": self.solver, "kind": "candidates", "bytes": cand.nbytes,
                      "candidate_noise": cand.noise}
        neg_labels = labels if neg_labels is None else neg_labels
        label_codes(neg_labels, cand.n)
        lookup = CandidateLookup(cand, labels)
        neg = hard_negatives_from_candidates(cand, neg_labels, noise=sigma, rng=rng, info=info, lookup=lookup)
        pos = hard_positives_from_candidates(cand, labels, noise=sigma, rng=rng) if self.hard_positives else None
        a, b = _valid(neg)
        # mined pairs the candidates do not know (residual fallback only) count at the floor
        return self._pairs(a, b, pos, lambda i, j: lookup(i, j, default=lookup.floor), t0, info)

    def _from_scores(self, scores: np.ndarray, labels, neg_labels, sigma: float, rng, t0: float,
                     info: dict) -> MinedPairs:
        label_codes(labels, scores.shape[0])  # shape check before any work
        if self.solver == "dense":
            neg = hard_negatives(scores, neg_labels, noise=sigma, rng=rng, info=info)
        else:
            neg = sparse_hard_negatives_from_scores(
                scores, neg_labels, k=self.k, noise=sigma, rng=rng, block_size=self.block_size, info=info
            )
        pos = hard_positives(scores, labels, noise=sigma, rng=rng) if self.hard_positives else None
        a, b = _valid(neg)
        return self._pairs(a, b, pos, lambda i, j: scores[i, j].astype(np.float64), t0, info)

    def _pairs(self, a, b, pos, pair_fn, t0, info) -> MinedPairs:
        neg_scores = pair_fn(a, b)
        hardness = float(np.mean(neg_scores)) if len(neg_scores) else float("nan")
        if pos is None:  # random positives: the sampler draws them
            pa = pb = np.zeros(0, dtype=np.int64)
        else:
            pa, pb = np.arange(len(pos)), pos
        two = pa != pb
        to_p = (lambda s: 1.0 / (1.0 + np.exp(-s))) if self.logits else (lambda s: s)
        boundary = 0.0 if self.logits else 0.5
        mean = lambda v: float(np.mean(v)) if len(v) else float("nan")
        return MinedPairs(
            a, b, pa, pb, hardness, time.perf_counter() - t0, info,
            neg_score=mean(to_p(neg_scores)), pos_score=mean(to_p(pair_fn(pa[two], pb[two]))),
            neg_easy=mean(neg_scores < boundary),
        )


def _valid(partner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.flatnonzero(partner >= 0)
    return a, partner[a]


def build_miner(mining_cfg: MiningConfig) -> LapMiner | None:
    """The miner a ``mining:`` config section describes (``solver`` via ``MINERS``;
    ``none`` → ``None``). Its matrices are pair-head logits (the siamese family's)."""
    c = mining_cfg
    if c.noise_floor <= 0 and c.solver != "none":
        raise ConfigError(f"mining.noise_floor must be > 0 (the assignment is never the bare argmax), "
                          f"got {c.noise_floor}")
    return MINERS.build(
        c.solver,
        k=c.k,
        every=c.every,
        block_size=c.block_size,
        hard_positives=c.hard_positives,
        logits=True,
        noise=NoiseSchedule(c.noise_start, c.noise_end, c.noise_epochs, shape=c.noise_shape,
                            floor=c.noise_floor, offset=c.start),
    )


def mining_noise(mining_cfg: MiningConfig, epoch: float) -> float:
    """The noise σ (logits) the miner of this config uses at ``epoch``: what a trial draws on
    its device when it scores the candidates of a sparse round itself."""
    miner = build_miner(mining_cfg)
    return 0.0 if miner is None else float(miner.noise(epoch))


def mining_enabled(mining_cfg: MiningConfig) -> bool:
    """Whether the config mines at all (``solver: none`` trains on random pairs only)."""
    return MINERS.get(mining_cfg.solver) is not no_miner


@MINERS.register("none")
def no_miner(**kwargs) -> None:
    """No mining: the siamese family trains on random pairs only (the ablation's control)."""
    return None


@MINERS.register("dense")
def dense_lap_miner(**kwargs) -> LapMiner:
    """Exact LAP on the full score matrix (scipy ``linear_sum_assignment``)."""
    return LapMiner(solver="dense", **kwargs)


@MINERS.register("sparse")
def sparse_lap_miner(**kwargs) -> LapMiner:
    """LAP restricted to k-NN candidates (scipy ``min_weight_full_bipartite_matching``)."""
    return LapMiner(solver="sparse", **kwargs)
