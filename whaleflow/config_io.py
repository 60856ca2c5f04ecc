"""Generic config machinery: raw YAML trees ⇄ frozen dataclasses, and dotted overrides.

Nothing here knows the sections of a run: :func:`from_dict` builds any dataclass from a
raw mapping, checking every type and rejecting unknown keys with the closest valid key
named; :func:`to_dict` turns one back into plain data; :func:`apply_override` edits a raw
tree from one ``a.b.0.c=value`` string. Kept apart from :mod:`whaleflow.config` (the
sections themselves), which re-exports these names and supplies the run's defaults to
:func:`apply_override`.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Union

import yaml

from .errors import ConfigError


def apply_override(raw: dict, item: str, defaults: Any = None) -> None:
    """Apply one ``a.b.0.c=value`` override to a raw config tree in place. A section
    missing from ``raw`` starts from its value in ``defaults`` (the default root
    dataclass, e.g. ``Config()``), so ``models.0.x=`` works without YAML."""
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
                nxt = _default_subtree(defaults, parts[: i + 1])
                node[part] = nxt
            node = nxt


def _default_subtree(defaults: Any, parts: list[str]):
    """The raw default at ``parts`` under ``defaults`` (a list-valued section's entries
    included); ``{}`` where there is none."""
    if defaults is None:
        return {}
    obj: Any = defaults
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
    flat = _flattened(cls)  # key → (the mapping field holding it, its dataclass)
    names = [key for f in dataclasses.fields(cls)
             for key in ([k for k, (owner, _) in flat.items() if owner == f.name] if _flattens(f) else [f.name])]
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}.{hint} Valid keys: {', '.join(names)}.")
        here = f"{where}.{key}" if where != "config" else key
        if key in flat:
            owner, kind = flat[key]
            kwargs.setdefault(owner, {})[key] = from_dict(kind, value, here)
        else:
            kwargs[key] = _coerce(hints[key], value, here)
    return cls(**kwargs)


def _flattens(f: dataclasses.Field) -> bool:
    """Whether field ``f`` is a mapping whose entries are written as keys of its dataclass (its
    metadata ``flatten`` gives their names → dataclasses): ``ModelConfig.sections`` (``mining: {...}``)."""
    return "flatten" in f.metadata


def _flattened(cls) -> dict[str, tuple[str, Any]]:
    """The keys of ``cls``'s flattened fields: key → (field name, dataclass of the key's value)."""
    return {key: (f.name, kind) for f in dataclasses.fields(cls) if _flattens(f)
            for key, kind in f.metadata["flatten"]().items()}


def _coerce(tp, value, where: str):
    """``value`` checked against (and where lossless, converted to) type hint ``tp``."""
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
    """``int | None`` → ``int``: a Union's members, for error messages."""
    args = [a.__name__ if isinstance(a, type) else str(a) for a in typing.get_args(tp) if a is not type(None)]
    return " or ".join(args)


def to_dict(obj) -> Any:
    """A dataclass tree as plain lists, dicts and scalars (what YAML and Ray carry)."""
    if dataclasses.is_dataclass(obj):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = to_dict(getattr(obj, f.name))
            if _flattens(f):
                out.update(value)
            else:
                out[f.name] = value
        return out
    if isinstance(obj, list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
