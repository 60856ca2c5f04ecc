"""Run configuration: frozen dataclasses loaded from YAML, with dotted overrides.

``load_config("configs/demo.yaml", ["train.seed=3", "models.0.stages.0.epochs=2"])``
reads the YAML, applies each override to the raw tree, then builds the dataclasses,
checking every type and rejecting unknown keys with the closest valid key named. The
resolved config is written into the run folder (:func:`dump_config`) so a run can
always be reproduced from its folder alone.

This module holds the run-level sections and :class:`Config`; a model's in
:mod:`whaleflow.model_config` (its family sections beside their families, registered in
``whaleflow.registry.MODEL_SECTIONS``), the sections of what follows training (ensemble,
classifier, local-feature verification, pseudo-labelling) in :mod:`whaleflow.ensemble_config`
and the generic dict ⇄ dataclass machinery in :mod:`whaleflow.config_io`. All are
re-exported here, so ``from whaleflow.config import ModelConfig, from_dict`` keeps working.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import yaml

from . import config_io
from .config_io import _coerce, _type_name, from_dict, to_dict  # noqa: F401  (re-exported)
from .errors import ConfigError
from .ensemble_config import (  # noqa: F401  (re-exported)
    ClassifierConfig,
    EnsembleConfig,
    LocalMatchConfig,
    PseudoLabelConfig,
)
from .model_config import (  # noqa: F401  (re-exported)
    ModelConfig,
    StageConfig,
    size_hw,
)


@dataclass(frozen=True)
class SyntheticConfig:
    """The embedded data set generated when ``data.root`` is empty."""

    individuals: int = 60
    seed: int = 0
    image_width: int = 192
    image_height: int = 128
    layout: str = "kaggle"            # kaggle (HWI: Image,Id) | happywhale (image,species,individual_id)


@dataclass(frozen=True)
class DataConfig:
    root: str | None = None          # Kaggle/Happywhale-layout folder; None → synthetic
    previous_root: str | None = None  # an earlier labelled release, for label mapping
    # box CSV (Image,x0,y0,x1,y1): listed photos are cropped to their box, the others to a box the
    # box model learns from the listed ones (section boxes:); "auto": every photo to a box found
    # without labels (whaleflow.locate.auto_box); None: whole frames
    boxes: str | None = None
    box_margin: float = 0.05          # fraction of the box size added on each side
    strict: bool = False              # corrupt images are an error instead of skipped
    # a folder on this node's local disk for copies: with an s3:// or gs:// output.dir each node's
    # working copy of the run (prepared cache included); with a path output.dir (a network
    # filesystem) the prepared image caches, copied once per node and read from there.
    # None → a URI run mirrors under $TMPDIR/whaleflow, a path run reads the caches in place
    local_cache_dir: str | None = None
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass(frozen=True)
class BoxesConfig:
    """The box model (:mod:`whaleflow.locate`): learned from ``data.boxes`` when it lists at least
    ``min_train`` photos but not all, then used for the rest (and by ``identify``)."""

    min_train: int = 100              # fewer listed boxes: unlisted photos stay whole frames
    learn: bool = True                # false: never learn a box model (unlisted photos stay whole)
    backbone: str = "efficientnet_lite0"
    pretrained: Union[bool, str] = True
    frozen_stages: int = 5            # 5: the whole backbone frozen (head only); 4: the stride-32 stages train
    canvas: list[int] = field(default_factory=lambda: [128, 192])  # [height, width] the photo is letterboxed to
    views: int = 12                   # augmented views of each listed photo (the first one plain)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.001
    holdout: float = 0.2              # share of listed photos kept out to measure the model's IoU
    mirror: bool = True               # also predict on the mirrored photo and average (twice the predict cost)
    # crops around the jittered true box per listed photo, so the model learns its second look (a crop
    # around its first box: mean IoU 0.764 -> 0.782 on synth seed 11); 0: one look only
    refine_views: int = 6
    stride: int = 16                  # 8: a finer head grid (+0.003 IoU at twice the CPU)
    heads: int = 3                    # heads trained on the same frozen features, their boxes averaged
    refit: bool = True                # after the held-out photos measured it, fit again on every listed photo
    seed: int = 0

    def __post_init__(self):
        if self.refine_views < 0 or self.stride not in (8, 16) or self.heads < 1:
            raise ConfigError(f"boxes: refine_views must be ≥ 0, stride 8 or 16 and heads ≥ 1; got refine_views="
                              f"{self.refine_views}, stride={self.stride}, heads={self.heads}.")
        if self.min_train < 2 or not 0.0 <= self.holdout < 1.0 or self.views < 1 or len(self.canvas) != 2:
            raise ConfigError(f"boxes: min_train must be ≥ 2, holdout in [0, 1), views ≥ 1 and canvas "
                              f"[height, width]; got min_train={self.min_train}, holdout={self.holdout}, "
                              f"views={self.views}, canvas={self.canvas}.")


@dataclass(frozen=True)
class PrepareConfig:
    hash: str = "phash"               # imagehash function: phash, dhash, ahash, whash
    hash_size: int = 8
    dup_distance: int = 4             # Hamming distance ≤ this → near-duplicates
    val_fraction: float = 0.2         # of known individuals with ≥2 images
    new_whale_val_fraction: float = 0.28  # share of new_whale in validation (test prior)
    folds: int = 1
    seed: int = 0
    # where new_whale photos cannot fill that share (Happywhale-like data has none), hold out
    # whole individuals (fewest photos first) as new ones in validation
    hold_out_new: bool = True
    # proportional: each spare group equally likely (individuals validate in proportion to their photos,
    # as test queries come); round_robin: one group per individual per round (the most individuals)
    val_sampling: str = "proportional"
    grayscale: bool = True
    # one cache [height, width] (an int is a square) every stage reads, resized; None → one
    # cache per distinct stage size, so no stage pays a resize. Each crop keeps its aspect,
    # letterboxed to the cache's.
    cache_size: Union[int, list[int], None] = None


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    device: str = "auto"              # auto | cpu | cuda
    eval_every: int = 1
    checkpoint_every: int = 1
    max_train_images: int | None = None
    workers: int | None = None        # loader worker processes; None → the trial's CPUs − 1 (0: in-process)
    prefetch: int = 4                 # batches each worker keeps ready
    # after each validated trial, retrain it on train + val for its best epoch count and predict the
    # test set with that fit (whaleflow.final_fit); validation scores stay the validated trial's
    final_fit: bool = False
    # clip the gradients' global L2 norm to this before each optimizer step (None: off)
    grad_clip: float | None = None

    def __post_init__(self):
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"train.grad_clip must be a positive number or null (off), got {self.grad_clip!r}. "
                              "Fix: e.g. train.grad_clip=1.0, or remove the key.")


@dataclass(frozen=True)
class PredictConfig:
    new_whale_threshold: float | None = None  # None → tuned on validation
    # the expected share of new individuals among queries: when set, the threshold puts "new" first
    # for that share of the test queries (the Happywhale winner's rule) instead of a tuned threshold
    new_prior: float | None = None
    flip_tta: bool = True
    use_duplicates: bool = True
    class_agg: str = "max"            # how image scores become class scores: max | mean
    store_topk: int = 100             # above store_topk_above classes, score files keep each query's top this many
    store_topk_above: int = 2000      # (float16 values, int32 ids: 17 MB instead of 1.7 GB at Happywhale scale)
    # the siamese pair head scores each query's best this many classes by cosine, the rest get a floor
    # (whaleflow.families.pair_shortlist); exact up to this many classes; 0: every gallery photo (Q·G)
    pair_shortlist: int = 200
    # the gallery of the validation scores the ensemble blends: test_like = train + the labelled
    # validation photos of the other chunks (as large as the test gallery, which holds every labelled
    # photo), train = training photos only (smaller than test's: a pessimistic figure, a wrong threshold)
    val_gallery: str = "test_like"
    val_chunks: int = 4

    def __post_init__(self):
        if self.new_prior is not None and not 0.0 <= self.new_prior < 1.0:
            raise ConfigError(f"predict.new_prior must be in [0, 1), got {self.new_prior}. "
                              "Fix: the expected share of new individuals among test queries, e.g. 0.3.")
        if self.new_prior is not None and self.new_whale_threshold is not None:
            raise ConfigError("predict.new_prior and predict.new_whale_threshold both set. "
                              "Fix: keep one (the prior sets the threshold from the test queries).")
        if isinstance(self.pair_shortlist, bool) or not isinstance(self.pair_shortlist, int) or self.pair_shortlist < 0:
            raise ConfigError(f"predict.pair_shortlist must be an integer ≥ 0, got {self.pair_shortlist!r}. "
                              "Fix: e.g. 200 (0 scores every gallery photo with the pair head).")


@dataclass(frozen=True)
class RayConfig:
    address: str | None = None        # None → local Ray; "auto" → running cluster
    gpus_per_trial: float = 1.0
    cpus_per_trial: float = 1.0
    max_concurrent_trials: int | None = None
    num_samples: int = 1
    searcher: str = "none"            # none | optuna
    scheduler: str = "none"           # none | asha
    max_failures: int = 2
    object_store_memory: int | None = None
    mining_actor_cpus: float = 0.0
    mining_actor_memory_gb: float = 1.0   # Ray `memory` the MiningActor asks for (sparse at HWI: well under 1)
    mining_timeout_s: float = 120.0
    ensemble_memory_gb: float | None = None  # Ray `memory` of the ensemble task; None: estimated from the score files


@dataclass(frozen=True)
class OutputConfig:
    dir: str = "runs/latest"
    quiet: bool = False


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    boxes: BoxesConfig = field(default_factory=BoxesConfig)
    models: list[ModelConfig] = field(default_factory=lambda: [ModelConfig()])
    train: TrainConfig = field(default_factory=TrainConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    pseudo_label: PseudoLabelConfig = field(default_factory=PseudoLabelConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)


# ----------------------------------------------------------------------------- loading


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read YAML (or start from defaults), apply ``key.sub=value`` overrides, build."""
    raw: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist. Fix: pass an existing YAML file to --config.")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc}).") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections.")
        source = str(path)
    for item in overrides:
        apply_override(raw, item)
    return from_dict(Config, raw, where=source)


def apply_override(raw: dict, item: str) -> None:
    """Apply one ``a.b.0.c=value`` override to a raw config tree in place; a section the
    tree lacks starts from :class:`Config`'s defaults, so ``models.0.x=`` works without YAML."""
    config_io.apply_override(raw, item, defaults=Config())


def dump_config(cfg: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically) so the run folder reproduces it."""
    from .io import write_text

    return write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def cache_shape(cfg: Config) -> tuple[int, int]:
    """(height, width) of the image cache: ``prepare.cache_size``, or the largest height and
    the largest width any model trains at, so no stage reads upscaled pixels."""
    if cfg.prepare.cache_size is not None:
        return size_hw(cfg.prepare.cache_size)
    shapes = [size_hw(s.size) for m in cfg.models for s in m.stages]
    return max(h for h, _ in shapes), max(w for _, w in shapes)


def cache_sizes(cfg: Config) -> list[tuple[int, int]]:
    """The (height, width) of every image cache ``prepare`` builds, largest first:
    ``prepare.cache_size`` alone when set, else each distinct size of any model's stages
    (a stage then reads pixels at its own size, with no resize per read)."""
    if cfg.prepare.cache_size is not None:
        return [size_hw(cfg.prepare.cache_size)]
    shapes = {size_hw(s.size) for m in cfg.models for s in m.stages}
    return sorted(shapes, key=lambda hw: (hw[0] * hw[1], hw), reverse=True)
