"""One model variant (:class:`ModelConfig`) and its progressive-resizing stages.

A model variant is one trial of the Ray experiment. Its shared fields and stages live here,
so the run-level sections in :mod:`whaleflow.config` stay short; the sections a family reads
(``mining:``, ``margin:``, ``arcface:``) live beside what reads them, each registered in
:data:`whaleflow.registry.MODEL_SECTIONS`, and a model holds one of each in
:attr:`ModelConfig.sections`. Every name here is re-exported from :mod:`whaleflow.config`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Union

from .config_io import to_dict
from .errors import ConfigError
from .registry import MODEL_SECTIONS


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


def section_types() -> dict[str, type]:
    """Every model config section by name → its dataclass (importing the families registers them
    beside what reads them: looked up here lazily, since those modules import this one)."""
    from . import families  # noqa: F401  (registers the families and their sections)

    return {name: MODEL_SECTIONS.get(name) for name in MODEL_SECTIONS.names()}


def default_sections() -> dict[str, Any]:
    """One default instance of every model config section."""
    return {name: cls() for name, cls in section_types().items()}


@dataclass(frozen=True)
class ModelConfig:
    """One model variant: one trial in the Ray experiment.

    The fields are shared by the families, except those a family claims in its ``MODEL_FIELDS``
    (noted below); the family sections (``mining``, ``margin``, ``arcface``, ...) sit in
    :attr:`sections`, one of each, read as attributes (``m.mining``) and written in the YAML as
    keys of the model (``mining: {...}``). A trial's fingerprint holds only what its own family
    reads (:meth:`trial_settings`).
    """

    name: str = "metric_compact"
    family: str = "metric"            # a name in whaleflow.registry.FAMILIES: metric | siamese | arcface | frozen
    backbone: str = "wf_compactnet"
    # True → ImageNet weights (offline where a package ships them, e.g. efficientnet_lite0;
    # timm's hub otherwise), str → a local weights file
    pretrained: Union[bool, str] = False
    frozen_stages: int = 0            # stem + this many feature stages keep their (pretrained) weights
    embedding_dim: int = 64           # metric, arcface
    head_layers: list[int] = field(default_factory=lambda: [64, 32])  # siamese pair head
    batch_size: int = 32              # siamese, arcface
    p_individuals: int = 8            # P in P×K batches (metric)
    k_images: int = 4                 # K in P×K batches (metric)
    augment: str = "metric"
    flip_new_class: bool = True       # a horizontally flipped fluke is a new individual
    lr_step_epochs: int = 100         # metric: LR × lr_gamma every this many epochs
    lr_gamma: float = 0.1
    plateau_patience: int = 2         # siamese: LR × plateau_factor when validation stalls this long
    plateau_factor: float = 0.2
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig()])
    # section name → its dataclass instance; flattened into the model's keys by config_io
    sections: dict[str, Any] = field(default_factory=default_sections, metadata={"flatten": section_types})
    search: dict[str, Any] = field(default_factory=dict)  # Ray Tune search space

    def __post_init__(self):
        types = section_types()
        for name, value in self.sections.items():
            if name not in types:
                MODEL_SECTIONS.get(name)  # a ConfigError naming the known sections
            kind = types[name]
            if not isinstance(value, kind):
                raise ConfigError(f"model {self.name!r}: section {name!r} must be a {kind.__name__}, "
                                  f"got {type(value).__name__}.")
        full = {n: self.sections[n] if n in self.sections else kind() for n, kind in types.items()}
        object.__setattr__(self, "sections", full)  # every section, in one order, and a dict of our own

    def __getattr__(self, name: str):
        """``m.mining``: the model's section of that name (only called for names that are no field)."""
        sections = self.__dict__.get("sections")
        if sections is not None and name in sections:
            return sections[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def with_sections(self, **sections) -> "ModelConfig":
        """This model with the named sections replaced: ``m.with_sections(mining=MiningConfig(solver="none"))``."""
        return dataclasses.replace(self, sections={**self.sections, **sections})

    def trial_settings(self) -> dict[str, Any]:
        """What of this model decides what its trials learn (the model part of
        :func:`whaleflow.training.trial_fingerprint`): the shared fields, and of the family-specific
        ones its own family's alone (its ``SECTIONS`` and ``MODEL_FIELDS``), so a change to one
        family's defaults (say the mining section's) retrains no trial of another family."""
        from .registry import FAMILIES

        section_types()  # the families registered
        own = {*FAMILIES.sections(self.family), *FAMILIES.model_fields(self.family)}
        others = ({*self.sections} | FAMILIES.every_model_field()) - own
        return {k: v for k, v in to_dict(self).items() if k not in others}
