"""Run configuration: frozen dataclasses loaded from YAML, with dotted overrides.

``load_config("configs/demo.yaml", ["train.seed=3", "models.0.stages.0.epochs=2"])``
reads the YAML, applies each override to the raw tree, then builds the dataclasses,
checking every type and rejecting unknown keys with the closest valid key named. The
resolved config is written into the run folder (:func:`dump_config`) so a run can
always be reproduced from its folder alone.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from .errors import ConfigError


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
    boxes: str | None = None          # box CSV: Image,x0,y0,x1,y1
    box_margin: float = 0.05          # fraction of the box size added on each side
    strict: bool = False              # corrupt images are an error instead of skipped
    # a folder on this node's local disk for copies: with an s3:// or gs:// output.dir each node's
    # working copy of the run (prepared cache included); with a path output.dir (a network
    # filesystem) the prepared image caches, copied once per node and read from there.
    # None → a URI run mirrors under $TMPDIR/whaleflow, a path run reads the caches in place
    local_cache_dir: str | None = None
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


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
class StageConfig:
    """One progressive-resizing stage. ``size`` is a square side or ``[height, width]``
    (flukes are about 1:2; HWI's 2nd place trained at 256×512)."""

    size: Union[int, list[int]] = 64
    epochs: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.0
    dropout: float = 0.0
    eval_every: int | None = None     # validate every this many epochs of the stage (None: train.eval_every)

    def __post_init__(self):
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
    still random pairs. ``solver: none`` never mines: random pairs only (the control
    of ``benchmarks/mining_ablation.py``).

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
    random_share: float = 0.2         # share of random pairs kept in every mined batch (0 ≤ x < 1)
    hard_positives: bool = True       # positives by the least-similar assignment inside each individual
    mirror_negatives: bool = True     # may an image's own individual, flipped, be mined as its negative
    k: int = 50                       # candidates per image for the sparse solver
    noise_start: float = 2.0          # noise std (logits) at the first round
    noise_end: float = 1.0            # noise std (logits) after noise_epochs
    noise_epochs: int = 20            # epochs (from start) over which the std moves to noise_end
    noise_floor: float = 0.5          # the std never goes below this (logits, > 0)
    noise_shape: str = "linear"       # linear | cosine
    block_size: int = 1024


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
    family: str = "metric"            # metric | siamese | arcface
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
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    def __post_init__(self):
        if self.test_mix not in ("gallery", "validation"):
            raise ConfigError(f"ensemble.test_mix must be gallery or validation, got {self.test_mix!r}.")


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
    """Apply one ``a.b.0.c=value`` override to a raw config tree in place."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} has no '='. Fix: write it as key.sub=value, e.g. train.seed=3.")
    key, _, text = item.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"override {item!r} names no key.")
    value = yaml.safe_load(text) if text.strip() else None
    parts = key.split(".")
    node: Any = raw
    trail: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        trail.append(part)
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"override {key!r}: {'.'.join(trail[:-1])} has {len(node)} entries; "
                                  f"{part!r} is not a valid index.")
            if last:
                node[int(part)] = value
            else:
                if node[int(part)] is None:
                    node[int(part)] = {}
                node = node[int(part)]
            continue
        if last:
            node[part] = value
        else:
            nxt = node.get(part)
            if nxt is None:
                nxt = _default_subtree(parts[: i + 1])
                node[part] = nxt
            node = nxt


def _default_subtree(parts: list[str]):
    """The raw default of a list-valued section, so ``models.0.x=`` works without YAML."""
    obj: Any = Config()
    for p in parts:
        obj = obj[int(p)] if isinstance(obj, list) else getattr(obj, p, None)
        if obj is None:
            return {}
    return to_dict(obj) if dataclasses.is_dataclass(obj) or isinstance(obj, list) else {}


def from_dict(cls, raw: Any, where: str = "config"):
    """Build dataclass ``cls`` from a raw mapping, checking keys and types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(raw).__name__}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}.{hint} Valid keys: {', '.join(names)}.")
        kwargs[key] = _coerce(hints[key], value, f"{where}.{key}" if where != "config" else key)
    return cls(**kwargs)


def _coerce(tp, value, where: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        # bool before str so `true` stays a bool for Union[bool, str]
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} does not fit {_type_name(tp)}.")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}.")
        return [_coerce(args[0], v, f"{where}.{i}") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}.")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}.")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}.")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}.")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}.")
    return value


def _type_name(tp) -> str:
    args = [a.__name__ if isinstance(a, type) else str(a) for a in typing.get_args(tp) if a is not type(None)]
    return " or ".join(args)


def to_dict(obj) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


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
