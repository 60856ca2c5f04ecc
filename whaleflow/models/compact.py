"""A compact ResNet-like backbone registered in timm's registry.

It is what the demo and the tests train on CPU: a deep stem and one basic block per
stage with narrow widths, so a 64² grayscale batch of 32 steps in well under a
second on two cores. Registering it with timm means configs name it like any timm
model (``backbone: wf_compactnet``) and ``timm.create_model`` builds it.
"""
from __future__ import annotations

from timm.models import register_model
from timm.models.resnet import BasicBlock, ResNet


def _compact(widths: tuple[int, ...], layers: tuple[int, ...], **kwargs) -> ResNet:
    kwargs.pop("pretrained_cfg", None)
    kwargs.pop("pretrained_cfg_overlay", None)
    kwargs.pop("cache_dir", None)
    return ResNet(
        block=BasicBlock,
        layers=layers,
        channels=widths,
        stem_width=widths[0] // 2,
        stem_type="deep",
        avg_down=True,
        **kwargs,
    )


@register_model
def wf_compactnet(pretrained: bool = False, **kwargs) -> ResNet:
    """Four stages of one basic block (24-48-96-160 channels); ~0.9M parameters."""
    if pretrained:
        raise ValueError("wf_compactnet has no published weights; use pretrained: PATH for a local file.")
    return _compact((24, 48, 96, 160), (1, 1, 1, 1), **kwargs)


@register_model
def wf_compactnet_wide(pretrained: bool = False, **kwargs) -> ResNet:
    """Two blocks per stage (32-64-128-256): a stronger CPU model, ~3M parameters."""
    if pretrained:
        raise ValueError("wf_compactnet_wide has no published weights; use pretrained: PATH for a local file.")
    return _compact((32, 64, 128, 256), (2, 2, 2, 2), **kwargs)
