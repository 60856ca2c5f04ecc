"""Backbones: any timm model (plus whaleflow's compact nets) with grayscale input.

``build_backbone("resnet34", pretrained=False)`` returns a module mapping
(B, 1, H, W) images to pooled (B, F) features: timm's ``num_classes=0`` drops the
classifier and global pooling makes the input size free, which is what progressive
resizing (and rectangular inputs) need. ``forward_features`` gives the last feature
map, for families that pool it themselves (GeM in the arcface family).

``pretrained``:

* ``False``: random init (tests; nets with no published weights).
* ``True``: ImageNet weights. Names whose weights ship inside a package of the index
  (:mod:`whaleflow.models.pretrained`, e.g. ``efficientnet_lite0``) load offline;
  any other timm name uses timm's hub (needs the network once).
* a path: a local weights file, loaded through timm's own loader.

RGB stems are summed to one channel for grey input. A pretrained network also gets an
input adapter (:class:`InputNorm`): whaleflow normalises every image one way
(:data:`whaleflow.data.augment.MEAN`/``STD``), and the adapter maps that, exactly, to
the normalisation the weights were trained with, so a frozen pretrained net sees the
inputs it knows.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import timm
import torch
import torch.nn as nn
from timm.models import adapt_input_conv

from ..errors import ConfigError
from . import compact  # noqa: F401  (registers wf_compactnet in timm)
from .pretrained import packaged_weights


class InputNorm(nn.Module):
    """``model(x * scale + shift)``: whaleflow's normalisation → the weights' own.

    Everything else (``num_features``, ``forward_features``, submodules) is the wrapped
    model's, so callers never see the adapter.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], in_chans: int = 1):
        super().__init__()
        from ..data.augment import MEAN, STD

        mean = torch.as_tensor(mean, dtype=torch.float32)
        std = torch.as_tensor(std, dtype=torch.float32)
        if in_chans == 1:  # a grey pixel stands for R = G = B: the summed stem sees the channel average
            mean, std = mean.mean().reshape(1), std.mean().reshape(1)
        # x = (p - MEAN) / STD on pixels p in [0, 1]; the weights want (p - mean) / std
        self.register_buffer("scale", (STD / std).reshape(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", ((MEAN - mean) / std).reshape(1, -1, 1, 1), persistent=False)
        self.model = model

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self.__dict__["_modules"].get("model")
            if inner is None:
                raise
            return getattr(inner, name)

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self._adapt(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(self._adapt(x))


def _pretrained_norm(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return tuple(cfg.get("mean", (0.485, 0.456, 0.406))), tuple(cfg.get("std", (0.229, 0.224, 0.225)))


def adapt_state_dict(state: dict[str, torch.Tensor], model: nn.Module, in_chans: int) -> dict[str, torch.Tensor]:
    """ImageNet weights (3-channel stem, 1000 classes) for ``model``: the stem adapted to
    ``in_chans`` the way timm does it (summed for grey), the classifier dropped when
    ``model`` has none."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    state = dict(state)
    first = cfg.get("first_conv")
    if first and f"{first}.weight" in state:
        state[f"{first}.weight"] = adapt_input_conv(in_chans, state[f"{first}.weight"])
    own = model.state_dict()
    head = cfg.get("classifier")
    if head:
        for key in (f"{head}.weight", f"{head}.bias"):
            if key in state and key not in own:
                del state[key]
    return state


def freeze_stages(model: nn.Module, stages: int) -> list[str]:
    """Freeze the stem and the first ``stages`` feature stages (timm's ``feature_info``):
    weights fixed and batch norms turned into frozen ones (running statistics kept).

    Early layers of an ImageNet network are generic edges and textures; on a few hundred
    photos, training them mostly costs time (their backward pass at full resolution is
    the most expensive part on a CPU) and invites overfitting. Returns the frozen modules.
    """
    if stages <= 0:
        return []
    info = getattr(model, "feature_info", None)
    names = [f["module"] for f in info] if info is not None else []
    if not names:
        raise ConfigError(f"{type(model).__name__} lists no feature stages; freeze_stages needs a timm backbone.")
    boundary = names[min(stages, len(names)) - 1]
    params = [n for n, _ in model.named_parameters()]
    last = max(i for i, n in enumerate(params) if n.startswith(boundary + "."))
    modules = list(dict.fromkeys(n.rsplit(".", 1)[0] for n in params[: last + 1]))
    from timm.utils import freeze

    freeze(model, modules)
    return modules


def build_backbone(name: str, pretrained: Union[bool, str] = False, in_chans: int = 1, drop_rate: float = 0.0,
                   frozen_stages: int = 0, *, load_weights: bool = True) -> nn.Module:
    """A timm feature extractor with ``num_features`` pooled outputs.

    ``load_weights=False``: the network ``pretrained`` would give (architecture and input
    normalisation, :class:`InputNorm` included) without reading its weights, for a trained
    model's own (``whaleflow identify``): nothing is fetched, no weights file need exist."""
    model = _build(name, pretrained, in_chans, drop_rate) if load_weights else _skeleton(name, pretrained, in_chans,
                                                                                         drop_rate)
    if frozen_stages:
        freeze_stages(model.model if isinstance(model, InputNorm) else model, frozen_stages)
    return model


def _check_name(name: str) -> None:
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:5]
        raise ConfigError(
            f"unknown backbone {name!r}. Fix: use a timm model name"
            + (f" (similar: {', '.join(close)})" if close else "")
            + " or wf_compactnet."
        )


def _skeleton(name: str, pretrained: Union[bool, str], in_chans: int, drop_rate: float) -> nn.Module:
    """:func:`_build`'s network with untrained weights: the same wrapper and normalisation (a weights
    file and timm's hub weights are normalised by the model's default config, packaged weights by
    their own), which :class:`InputNorm` keeps out of the state dict."""
    _check_name(name)
    model = timm.create_model(name, pretrained=False, in_chans=in_chans, num_classes=0, drop_rate=drop_rate)
    if isinstance(pretrained, str) and pretrained.lower() in ("true", "false"):
        pretrained = pretrained.lower() == "true"
    if not pretrained:
        return model
    packaged = packaged_weights(name) if pretrained is True else None
    norm = (packaged.mean, packaged.std) if packaged is not None else _pretrained_norm(model)
    return InputNorm(model, *norm, in_chans=in_chans)


def _build(name: str, pretrained: Union[bool, str], in_chans: int, drop_rate: float) -> nn.Module:
    _check_name(name)
    kwargs = dict(in_chans=in_chans, num_classes=0, drop_rate=drop_rate)
    if isinstance(pretrained, str) and pretrained.lower() not in ("true", "false"):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"pretrained weights file {path} does not exist. Fix: give an existing .pth/.safetensors path, "
                "true for ImageNet weights, or false."
            )
        # timm maps the file through its pretrained pipeline: RGB stems are summed to
        # one channel and classifier weights are dropped when num_classes=0.
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs)
        return InputNorm(model, *_pretrained_norm(model), in_chans=in_chans)
    if isinstance(pretrained, str):
        pretrained = pretrained.lower() == "true"
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    packaged = packaged_weights(name)
    if packaged is not None:
        model = timm.create_model(name, pretrained=False, **kwargs)
        model.load_state_dict(adapt_state_dict(packaged.state_dict, model, in_chans), strict=True)
        return InputNorm(model, packaged.mean, packaged.std, in_chans=in_chans)
    try:
        model = timm.create_model(name, pretrained=True, **kwargs)
    except Exception as exc:  # the hub is unreachable offline: say what works instead
        raise ConfigError(
            f"could not fetch ImageNet weights for {name!r} ({type(exc).__name__}: {str(exc)[:120]}). Fix: use a "
            "backbone whose weights ship in a package (efficientnet_lite0), give pretrained: /path/to/weights.pth, "
            "or pretrained: false."
        ) from None
    return InputNorm(model, *_pretrained_norm(model), in_chans=in_chans)
