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


HEADS: Registry = Registry("pair head")
LOSSES: Registry = Registry("loss")
MINERS: Registry = Registry("miner")
AUGMENTATIONS: Registry = Registry("augmentation set")
SAMPLERS: Registry = Registry("sampler")
#: family name → its FamilyTask class: called, a task to train (FAMILIES.build); ``.for_inference``,
#: its networks alone, to score photos with an exported model (whaleflow identify)
FAMILIES: Registry = Registry("model family")
