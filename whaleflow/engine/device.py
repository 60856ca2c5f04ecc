"""Device choice and mixed precision: CUDA + bf16 autocast + channels_last when there is a GPU."""
from __future__ import annotations

import contextlib
import os

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → the first visible CUDA device if any (Ray sets CUDA_VISIBLE_DEVICES per trial), else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"train.device={name} but no CUDA device is visible (CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}). Fix: use train.device=auto or cpu."
        )
    return torch.device(name)


def autocast(device: torch.device):
    """bf16 autocast on CUDA (no loss scaling needed, unlike fp16); a no-op on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device_images(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move an image batch; a uint8 batch is normalised there (it travels at a quarter of
    float32's bytes, and the device does the arithmetic); channels_last on CUDA, where
    convolutions run faster in NHWC."""
    images = images.to(device, non_blocking=True)
    if images.dtype == torch.uint8:
        images = normalize_images(images)
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    return images


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 → float32 ``(x / 255 - MEAN) / STD``, the same operations as
    :func:`whaleflow.data.augment.normalize` does on the CPU."""
    from ..data.augment import MEAN, STD

    x = images.to(torch.float32).mul_(1.0 / 255.0)
    return x.sub_(MEAN).mul_(1.0 / STD)


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model
