"""What to search: each model's ``search:`` YAML → Ray Tune domains, and back to a config.

A model's search space is a mapping of dotted keys inside that model's config to a
sampler, e.g.::

    search:
      stages.0.lr: {loguniform: [1.0e-4, 1.0e-2]}
      batch_size: {choice: [32, 64]}
      mining.every: {grid_search: [2, 4]}
      margin.margin: 0.3            # a plain value is a constant override

Samplers: ``choice``, ``uniform``, ``quniform`` (lo, hi, q), ``loguniform``,
``randint`` (lo inclusive, hi exclusive, as in Tune) and ``grid_search``. Every key
and every bound is checked against ``ModelConfig`` before Ray starts, so a typo fails
in a second with the model and key named, not in a trial an hour later.

A trial's config is ``{"variant": {"model": NAME, "params": {dotted: value}}}``;
:func:`model_for_trial` turns it back into a ``ModelConfig``. The experiment's
``param_space`` (:func:`param_space`) is one ``grid_search`` over the variants, so
every model gets its own trials (and its own search dimensions) in one experiment.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from typing import Any

from whaleflow.config import Config, ModelConfig, from_dict, to_dict
from whaleflow.errors import ConfigError

SAMPLERS = ("choice", "uniform", "quniform", "loguniform", "randint", "grid_search")
FORBIDDEN = {"name", "family", "search"}
RESERVED_NAMES = {"classifier"}  # the ensemble's own trial folder
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def sampler_of(spec: Any) -> str | None:
    """The sampler a spec names (``{loguniform: [a, b]}`` → 'loguniform'), None for a constant."""
    if isinstance(spec, dict) and len(spec) == 1:
        key = next(iter(spec))
        if key in SAMPLERS:
            return key
        if key == "grid":
            return "grid_search"
    return None


def _values(spec: Any) -> list:
    return list(next(iter(spec.values())))


def to_domain(spec: Any, where: str):
    """One YAML spec → a Tune domain (or the constant itself)."""
    from ray import tune

    kind = sampler_of(spec)
    if kind is None:
        return spec
    args = _values(spec)
    try:
        if kind == "choice":
            return tune.choice(args)
        if kind == "grid_search":
            return tune.grid_search(args)
        if kind == "randint":
            return tune.randint(int(args[0]), int(args[1]))
        lo, hi = float(args[0]), float(args[1])
        if kind == "uniform":
            return tune.uniform(lo, hi)
        if kind == "quniform":
            return tune.quniform(lo, hi, float(args[2]))
        return tune.loguniform(lo, hi)
    except (IndexError, TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"{where}: {spec!r} is not a valid {kind} ({exc}).") from None


def _probe_values(spec: Any, where: str) -> list:
    """Values that must fit the config for a spec to be valid (each choice, both bounds)."""
    kind = sampler_of(spec)
    if kind is None:
        return [spec]
    args = _values(spec) if isinstance(next(iter(spec.values())), (list, tuple)) else None
    if not args:
        raise ConfigError(f"{where}: {kind} needs a non-empty list, e.g. {{{kind}: [a, b]}}.")
    if kind in ("choice", "grid_search"):
        return args
    need = 3 if kind == "quniform" else 2
    if len(args) != need or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise ConfigError(f"{where}: {kind} takes {need} numbers, got {args!r}.")
    if args[0] >= args[1]:
        raise ConfigError(f"{where}: {kind} needs low < high, got {args!r}.")
    if kind == "loguniform" and args[0] <= 0:
        raise ConfigError(f"{where}: loguniform needs a positive lower bound, got {args[0]!r}.")
    if kind == "randint":
        return [int(args[0]), int(args[1]) - 1]
    return [args[0], args[1]]


def plain(value: Any) -> Any:
    """numpy scalars (as samplers return them) → Python values the config's type checks accept."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def set_dotted(raw: dict, key: str, value: Any, where: str) -> None:
    """Set ``a.0.b`` inside a raw config tree (lists by index), in place."""
    parts = key.split(".")
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{where}: {'.'.join(parts[:i]) or 'the model'} has {len(node)} entries; "
                                  f"{part!r} is not a valid index.")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node:
                raise ConfigError(f"{where}: {'.'.join(parts[: i + 1])!r} is not a model setting. "
                                  f"Valid here: {', '.join(sorted(node))}.")
            if last:
                node[part] = value
            else:
                node = node[part]
        else:
            raise ConfigError(f"{where}: {'.'.join(parts[:i])!r} is a value, it has no {part!r}.")


def apply_params(model_cfg: ModelConfig, params: dict[str, Any]) -> ModelConfig:
    """``model_cfg`` with the trial's sampled ``params`` (dotted keys) applied and type-checked."""
    raw = to_dict(model_cfg)
    where = f"models[{model_cfg.name}].search"
    for key, value in params.items():
        set_dotted(raw, key, plain(value), f"{where}.{key}")
    return from_dict(ModelConfig, raw, where=where)


def check_search(model_cfg: ModelConfig) -> None:
    """Fail early on a bad search space: unknown keys, bad bounds, values of the wrong type."""
    where = f"models[{model_cfg.name}].search"
    if not isinstance(model_cfg.search, dict):
        raise ConfigError(f"{where}: expected a mapping of dotted keys to samplers.")
    for key, spec in model_cfg.search.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{where}: keys are dotted setting names, got {key!r}.")
        if key.split(".")[0] in FORBIDDEN:
            raise ConfigError(f"{where}.{key}: {key.split('.')[0]!r} cannot be searched.")
        for value in _probe_values(spec, f"{where}.{key}"):
            apply_params(model_cfg, {key: value})
        to_domain(spec, f"{where}.{key}")


def check_models(cfg: Config) -> None:
    """Model names become folder names and trial names: unique, plain, not reserved."""
    if not cfg.models:
        raise ConfigError("models: the config lists no model to train.")
    seen = set()
    for m in cfg.models:
        if not _SAFE_NAME.match(m.name):
            raise ConfigError(f"models: name {m.name!r} must be letters, digits, '_', '-' or '.'.")
        if m.name in RESERVED_NAMES:
            raise ConfigError(f"models: the name {m.name!r} is reserved for the ensemble's classifier.")
        if m.name in seen:
            raise ConfigError(f"models: two models are named {m.name!r}; names must be unique.")
        seen.add(m.name)
        check_search(m)


def grid_points(model_cfg: ModelConfig) -> int:
    """How many configurations the model's ``grid_search`` keys make (1 without any)."""
    n = 1
    for spec in model_cfg.search.values():
        if sampler_of(spec) == "grid_search":
            n *= len(_values(spec))
    return n


def param_space(cfg: Config) -> dict:
    """Tune's ``param_space``: one grid entry per model, its own domains nested inside."""
    from ray import tune

    check_models(cfg)
    return {"variant": tune.grid_search([
        {"model": m.name, "params": {k: to_domain(v, f"models[{m.name}].search.{k}") for k, v in m.search.items()}}
        for m in cfg.models
    ])}


def get_dotted(raw: Any, key: str) -> Any:
    """The value at ``a.0.b`` inside a raw config tree (keys already checked by :func:`check_search`)."""
    for part in key.split("."):
        raw = raw[int(part)] if isinstance(raw, list) else raw[part]
    return raw


def recipe_point(model_cfg: ModelConfig, domains: dict[str, Any]) -> dict[str, Any] | None:
    """The model's own values at its sampled keys, when each lies in its domain: the first point
    an Optuna study evaluates, so ``num_samples: 1`` trains the config's recipe, not a random draw."""
    raw = to_dict(model_cfg)
    point = {key: get_dotted(raw, key) for key in domains}
    if not point or not all(domain.is_valid(point[key]) for key, domain in domains.items()):
        return None
    return point


def expanded_variants(cfg: Config) -> list[dict]:
    """Per model, one entry per grid point: ``{"model", "constants", "domains", "recipe"}`` (for
    searchers that cannot grid search, such as Optuna: each grid point gets its own study;
    ``recipe`` is :func:`recipe_point`, or None)."""
    check_models(cfg)
    out = []
    for m in cfg.models:
        grids = {k: _values(v) for k, v in m.search.items() if sampler_of(v) == "grid_search"}
        domains = {k: to_domain(v, f"models[{m.name}].search.{k}") for k, v in m.search.items()
                   if sampler_of(v) not in (None, "grid_search")}
        constants = {k: v for k, v in m.search.items() if sampler_of(v) is None}
        keys = sorted(grids)
        for point in itertools.product(*(grids[k] for k in keys)) if keys else [()]:
            out.append({"model": m.name, "constants": {**constants, **dict(zip(keys, point))}, "domains": domains,
                        "recipe": recipe_point(m, domains)})
    return out


def model_for_trial(cfg: Config, variant: dict) -> ModelConfig:
    """The ``ModelConfig`` a trial trains: the named model with its sampled params applied."""
    by_name = {m.name: m for m in cfg.models}
    if variant["model"] not in by_name:
        raise ConfigError(f"trial asks for model {variant['model']!r}, which the config no longer lists.")
    return apply_params(by_name[variant["model"]], variant.get("params") or {})


def params_digest(params: dict) -> str:
    text = json.dumps(plain(params), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:6]


class TrialNamer:
    """Tune's ``trial_name_creator``/``trial_dirname_creator``: the trial's folder name.

    A model trained once keeps its name (``trials/metric_r50``), even when its one
    configuration is sampled; a model with several trials (``num_samples`` > 1 or a
    ``grid_search``) gets ``-<n>-<params hash>`` (``trials/metric_r50-3-9f2c1a``): the counter
    keeps duplicates apart, the hash keeps a rerun from reusing a folder that was
    trained with other values.
    """

    def __init__(self, multi: set[str] | frozenset[str]):
        self.multi = frozenset(multi)

    def __call__(self, trial) -> str:
        variant = trial.config["variant"]
        name = variant["model"]
        if name not in self.multi:
            return name
        counter = str(trial.experiment_tag).split("_", 1)[0] or trial.trial_id
        return f"{name}-{counter}-{params_digest(variant.get('params') or {})}"


def trial_namer(cfg: Config) -> TrialNamer:
    """Suffixes only for models with more than one trial (samples × grid points)."""
    return TrialNamer({m.name for m in cfg.models if cfg.ray.num_samples * grid_points(m) > 1})
