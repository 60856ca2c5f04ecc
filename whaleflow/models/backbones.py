"""Backbones: any timm model (plus whaleflow's compact nets) with grayscale input.

``build_backbone("resnet34", pretrained=False)`` returns a module mapping
(B, 1, H, W) images to pooled (B, F) features: timm's ``num_classes=0`` drops the
classifier and global average pooling makes the input size free, which is what
progressive resizing needs.

``pretrained``: ``False`` (random init: tests and the demo, which must stay offline),
``True`` (timm's published weights; needs the network) or a path to a local weights
file, loaded through timm's own loader so the RGB→gray stem adaptation is the same.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

import timm
import torch.nn as nn

from ..errors import ConfigError
from . import compact  # noqa: F401  (registers wf_compactnet in timm)


def build_backbone(name: str, pretrained: Union[bool, str] = False, in_chans: int = 1, drop_rate: float = 0.0) -> nn.Module:
    """A timm feature extractor with ``num_features`` pooled outputs."""
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:5]
        raise ConfigError(
            f"unknown backbone {name!r}. Fix: use a timm model name"
            + (f" (similar: {', '.join(close)})" if close else "")
            + " or wf_compactnet."
        )
    kwargs = dict(in_chans=in_chans, num_classes=0, drop_rate=drop_rate)
    if isinstance(pretrained, str) and pretrained.lower() not in ("true", "false"):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"pretrained weights file {path} does not exist. Fix: give an existing .pth/.safetensors path, "
                "true for timm's weights, or false."
            )
        # timm maps the file through its pretrained pipeline: RGB stems are summed to
        # one channel and classifier weights are dropped when num_classes=0.
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs)
    if isinstance(pretrained, str):
        pretrained = pretrained.lower() == "true"
    return timm.create_model(name, pretrained=bool(pretrained), **kwargs)
