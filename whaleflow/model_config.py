"""Per-model config sections: one model variant (:class:`ModelConfig`) and its parts.

A model variant is one trial of the Ray experiment; its progressive-resizing stages,
LAP mining schedule, margin-loss and ArcFace heads live here so the run-level sections
in :mod:`whaleflow.config` stay short. Every name is re-exported from
:mod:`whaleflow.config`, the import path the rest of the code uses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from .errors import ConfigError


@dataclass(frozen=True)
class StageConfig:
    """One progressive-resizing stage. ``size`` is a square side or ``[height, width]``
    (flukes are about 1:2; HWI's 2nd place trained at 256×512)."""

    size: Union[int, list[int], str] = 64  # or "auto" / "auto:N": resolved from the photos (whaleflow.auto_size)
    epochs: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.0
    dropout: float = 0.0
    eval_every: int | None = None     # validate every this many epochs of the stage (None: train.eval_every)

    def __post_init__(self):
        if isinstance(self.size, str):
            from .auto_size import auto_side

            auto_side(self.size)  # "auto" or "auto:N", else a clear error
        else:
            size_hw(self.size)
        if self.eval_every is not None and int(self.eval_every) < 1:
            raise ConfigError(f"stage eval_every must be >= 1, got {self.eval_every}. Fix: set it to a positive integer or leave it out.")


def size_hw(size) -> tuple[int, int]:
    """``64`` → (64, 64); ``[64, 128]`` → (64, 128): every image size as (height, width)."""
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
            raise ConfigError(f"image size {list(size)!r} must be one positive integer or [height, width]. "
                              "Fix: e.g. size: 64 or size: [64, 128].")
        return int(size[0]), int(size[1])
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ConfigError(f"image size {size!r} must be a positive integer or [height, width].")
    return int(size), int(size)


@dataclass(frozen=True)
class MiningConfig:
    """LAP hard-example mining for the siamese family (the config reference for ``mining:``).

    Schedule: epochs before ``start`` train on random pairs (warm-up); from ``start``
    on a round every ``every`` epochs scores all training pairs and solves the
    assignments; a round that would fall on the first epoch of a new image-size stage
    moves to the next epoch (the new size and the new pairs do not arrive together).
    In every mined epoch ``random_share`` of each batch's positives and negatives are
    still random pairs (0.5 by default: mined afresh every epoch, a model pushes one
    round's negatives apart while the previous ones drift back, and validation see-sawed
    at 0.2; ``benchmarks/mining_ablation.py``). ``solver: none`` never mines: random pairs only (the control
    of ``benchmarks/mining_ablation.py``). The sparse solver's candidates are each image's
    ``k`` best partners by head logit among its ``prefilter`` nearest images by feature cosine
    (``0``: among all, N²/2 head evaluations a round; :mod:`whaleflow.mining.cosine_prefilter`).

    Noise: Gaussian noise added to the score matrix before solving, in its units —
    the pair head's logits (a logit of 0 is probability 0.5). Its std starts at
    ``noise_start`` at the first mining round, moves to ``noise_end`` over
    ``noise_epochs`` epochs counted from ``start`` (``noise_shape``: linear or
    cosine), and never goes below ``noise_floor`` (> 0: the assignment is never the
    bare argmax, so the hardest-looking pair, often label noise, is not picked every
    round). σ = 1 lets a candidate whose logit is about 1–2 below a row's best still
    be chosen; σ ≥ 3 is close to random pairs.

    Duplicates: images of the same near-duplicate group are never each other's
    negatives; a group holding several individuals (a label conflict) keeps those
    individuals out of each other's negatives altogether, mined or random.
    ``mirror_negatives: false`` keeps an individual's flipped twin out of its *mined*
    negatives (flips stay new individuals everywhere else): on near-symmetric flukes
    the mirror twin is the hardest negative of most images and would take many of
    the mined slots for a distinction no query asks for.
    """

    solver: str = "dense"             # dense | sparse | none (random pairs only)
    every: int = 2                    # a mining round every K epochs
    start: int = 4                    # first mining epoch; before it pairs are random (warm-up)
    random_share: float = 0.5         # share of random pairs kept in every mined batch (0 ≤ x < 1)
    hard_positives: bool = True       # positives by the least-similar assignment inside each individual
    mirror_negatives: bool = True     # may an image's own individual, flipped, be mined as its negative
    k: int = 50                       # candidates per image for the sparse solver
    prefilter: int = 200              # sparse: the head scores each image's this many cosine neighbours (0: all pairs)
    noise_start: float = 2.0          # noise std (logits) at the first round
    noise_end: float = 1.0            # noise std (logits) after noise_epochs
    noise_epochs: int = 20            # epochs (from start) over which the std moves to noise_end
    noise_floor: float = 0.5          # the std never goes below this (logits, > 0)
    noise_shape: str = "linear"       # linear | cosine
    block_size: int = 1024

    def __post_init__(self):
        if int(self.prefilter) != 0 and int(self.prefilter) < int(self.k):
            raise ConfigError(f"mining prefilter {self.prefilter} is below mining k {self.k}: the head would see fewer "
                              "neighbours than it keeps. Fix: set prefilter to 0 (every pair) or at least k (e.g. 4·k).")


@dataclass(frozen=True)
class MarginConfig:
    margin: float = 0.2
    beta_init: float = 1.2
    beta_lr: float = 0.01
    nu: float = 0.0
    per_class_beta: bool = True
    cutoff: float = 0.5
    nonzero_loss_cutoff: float = 1.4


@dataclass(frozen=True)
class ArcFaceConfig:
    """Sub-center ArcFace with dynamic margins (the Happywhale 2022 winner's head).

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


@dataclass(frozen=True)
class ModelConfig:
    """One model variant: one trial in the Ray experiment."""

    name: str = "metric_compact"
    family: str = "metric"            # metric | siamese | arcface | frozen
    backbone: str = "wf_compactnet"
    # True → ImageNet weights (offline where a package ships them, e.g. efficientnet_lite0;
    # timm's hub otherwise), str → a local weights file
    pretrained: Union[bool, str] = False
    frozen_stages: int = 0            # stem + this many feature stages keep their (pretrained) weights
    embedding_dim: int = 64
    head_layers: list[int] = field(default_factory=lambda: [64, 32])
    batch_size: int = 32
    p_individuals: int = 8            # P in P×K batches (metric family)
    k_images: int = 4                 # K in P×K batches
    augment: str = "metric"
    flip_new_class: bool = True       # a horizontally flipped fluke is a new individual
    lr_step_epochs: int = 100
    lr_gamma: float = 0.1
    plateau_patience: int = 2
    plateau_factor: float = 0.2
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig()])
    margin: MarginConfig = field(default_factory=MarginConfig)
    arcface: ArcFaceConfig = field(default_factory=ArcFaceConfig)
    mining: MiningConfig = field(default_factory=MiningConfig)
    search: dict[str, Any] = field(default_factory=dict)  # Ray Tune search space
