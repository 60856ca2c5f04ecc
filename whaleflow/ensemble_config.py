"""The config sections of what follows training: the ensemble (blend tuning), its classifier
on embeddings, local-feature verification, and pseudo-labelling rounds.

Re-exported by :mod:`whaleflow.config`, which assembles them into :class:`~whaleflow.config.Config`;
kept apart so that module holds the run-level sections only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ConfigError

__all__ = ["ClassifierConfig", "EnsembleConfig", "LocalMatchConfig", "PseudoLabelConfig"]


@dataclass(frozen=True)
class ClassifierConfig:
    enabled: bool = True
    pca_dim: int = 64
    whiten: bool = False
    hidden: int = 256
    dropout: float = 0.3
    epochs: int = 200
    lr: float = 1e-3


@dataclass(frozen=True)
class LocalMatchConfig:
    """Local-feature verification as a model of the blend (whaleflow.local.blend_stage): each
    query's shortlisted classes matched keypoint for keypoint (SIFT/ORB + RANSAC inliers)."""

    enabled: bool = False
    kind: str = "sift"                # sift | orb
    shortlist: int = 10               # each model's best classes per query that are verified
    photos_per_class: int = 3         # gallery photos matched per shortlisted class (a seeded choice)
    n_features: int = 400             # keypoints per photo
    max_side: int = 384               # crops shrunk to this longer side first
    ratio: float = 0.8                # Lowe's ratio test
    workers: int | None = None        # matching threads; None → 2

    def __post_init__(self):
        if self.kind not in ("sift", "orb"):
            raise ConfigError(f"ensemble.local_match.kind must be sift or orb, got {self.kind!r}.")
        if self.shortlist < 1 or self.photos_per_class < 1 or self.n_features < 8 or self.max_side < 32:
            raise ConfigError("ensemble.local_match: shortlist and photos_per_class must be ≥ 1, n_features ≥ 8, "
                              f"max_side ≥ 32 (got {self.shortlist}, {self.photos_per_class}, {self.n_features}, "
                              f"{self.max_side}).")
        if not 0.0 < self.ratio < 1.0:
            raise ConfigError(f"ensemble.local_match.ratio must be in (0, 1), got {self.ratio}.")


@dataclass(frozen=True)
class EnsembleConfig:
    trials: int = 60                  # Optuna trials for blend weights + threshold
    folds: int = 3
    # outer folds for the expected test MAP@5: the whole blend choice is repeated on all folds but
    # one and scored on that one (0 or 1: no estimate; costs outer_folds × trials more Optuna trials)
    outer_folds: int = 5
    seed: int = 0
    # gallery: validation queries weighted to the test queries' expected mix of gallery sizes
    # (whaleflow.ensemble.gallery_mix), for the blend choice and the expected test MAP@5;
    # validation: every query weighs 1
    test_mix: str = "gallery"
    weigh_choice: bool = False  # the weights also choose the blend and the threshold (not only the estimate)
    # best: the best Optuna trial's weights; within_se: the mean weights of every trial within one
    # standard error of it (whaleflow.ensemble.tune). within_se moved the panel's mean test MAP@5 by
    # +0.002 only (within noise) and can leave the blend below a single model on validation, so best
    # stays the default
    choice: str = "best"
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    local_match: LocalMatchConfig = field(default_factory=LocalMatchConfig)

    def __post_init__(self):
        if self.test_mix not in ("gallery", "validation"):
            raise ConfigError(f"ensemble.test_mix must be gallery or validation, got {self.test_mix!r}.")
        if self.choice not in ("best", "within_se"):
            raise ConfigError(f"ensemble.choice must be best or within_se, got {self.choice!r}.")


@dataclass(frozen=True)
class PseudoLabelConfig:
    """Pseudo-labelling rounds (whaleflow.pseudo_label): confident test predictions join
    training for the next round's trials. ``min_score`` is on the normalised blend scale (the
    scale of the new-individual threshold: about 0 is a typical top-5 score, 1 one standard
    deviation above it); ``max_share`` caps the pseudo-labelled share of the test images."""

    rounds: int = 0
    min_score: float = 1.0
    max_share: float = 0.5
    # the score floor is raised until the validation queries at or above it had their best known
    # individual right this often (their top-1 precision); null: min_score alone
    min_precision: float | None = 0.9

    def __post_init__(self):
        if self.rounds < 0 or not 0.0 < self.max_share <= 1.0:
            raise ConfigError(f"pseudo_label: rounds must be ≥ 0 and max_share in (0, 1], got rounds={self.rounds}, "
                              f"max_share={self.max_share}.")
        if self.min_precision is not None and not 0.0 < self.min_precision <= 1.0:
            raise ConfigError(f"pseudo_label.min_precision must be in (0, 1] or null, got {self.min_precision}.")
