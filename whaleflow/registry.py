"""Name → factory registries, so configs pick components by name instead of if-chains.

Backbones use timm's own registry (``timm.create_model(name)``); whaleflow registers
its compact net there too. Everything else (heads, losses, miners, augmentations,
samplers, model families, blenders) lives in a :class:`Registry` below.
"""
from __future__ import annotations

import difflib
from typing import Callable, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of factories with helpful errors for unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable[..., T]] = {}

    def register(self, name: str | None = None):
        """Decorator: ``@LOSSES.register("margin")`` (the function's name by default)."""

        def deco(fn):
            key = name or fn.__name__
            if key in self._items and self._items[key] is not fn:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._items[key] = fn
            return fn

        return deco

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._items, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(sorted(self._items))}."
            ) from None

    def build(self, name: str, **kwargs) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items


class FamilyRegistry(Registry):
    """Model families by name (each a FamilyTask class) and what each one reads of a model config.

    A family class declares ``SECTIONS`` (the names of the :data:`MODEL_SECTIONS` it reads,
    e.g. ``("mining",)``) and ``MODEL_FIELDS`` (the :class:`~whaleflow.model_config.ModelConfig`
    fields only it reads, e.g. the P×K batch sizes). A trial's fingerprint holds the shared fields
    and its own family's alone (:meth:`~whaleflow.model_config.ModelConfig.trial_settings`), so a
    change to one family's defaults retrains no other family."""

    def sections(self, name: str) -> tuple[str, ...]:
        """The config sections family ``name`` reads."""
        return tuple(getattr(self.get(name), "SECTIONS", ()))

    def model_fields(self, name: str) -> tuple[str, ...]:
        """The model fields only family ``name`` reads (among the families)."""
        return tuple(getattr(self.get(name), "MODEL_FIELDS", ()))

    def every_model_field(self) -> frozenset[str]:
        """Every field some family claims as its own: what a trial of another family leaves out."""
        return frozenset(f for name in self.names() for f in self.model_fields(name))


HEADS: Registry = Registry("pair head")
LOSSES: Registry = Registry("loss")
MINERS: Registry = Registry("miner")
AUGMENTATIONS: Registry = Registry("augmentation set")
SAMPLERS: Registry = Registry("sampler")
#: family name → its FamilyTask class: called, a task to train (FAMILIES.build); ``.for_inference``,
#: its networks alone, to score photos with an exported model (whaleflow identify)
FAMILIES: FamilyRegistry = FamilyRegistry("model family")
#: section name → the frozen dataclass of a model's ``<name>:`` config section (``mining``, ``margin``,
#: ``arcface``), registered beside what reads it; :class:`~whaleflow.model_config.ModelConfig` holds one of each
MODEL_SECTIONS: Registry = Registry("model config section")
