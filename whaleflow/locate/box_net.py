"""The box network: a pretrained backbone cut in two, a box-regression head and a quality head.

The backbone (a timm EfficientNet/MobileNet: ``conv_stem``, ``bn1``, ``blocks``) is cut
after its stride-16 stage. The **trunk** before the cut stays frozen; the **tail** after
it (the stride-32 stages) trains or stays frozen too (``frozen_stages`` 4 or 5). On a CPU
the frozen part is most of the cost, and since it never changes its features of each
augmented view are computed once (:mod:`whaleflow.locate.fitting`), so an epoch costs
only what trains.

Both the trunk's last map (stride 16) and the tail's (stride 32) keep *where* things
are; global pooling would throw that away, so the head (:class:`CellHead`) lets every
cell of the stride-16 map (or, finer, the stride-8 one) vote for a box and averages the votes. It outputs the box in
canvas fractions and a quality logit trained to predict the IoU of the box it gives, so
the worst crops can be shown first.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..models.backbones import InputNorm, build_backbone


def _conv(cin: int, cout: int, k: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class CellHead(nn.Module):
    """Every cell of the finest map votes for a box; the votes are averaged by weight.

    Each cell predicts a weight logit, its distances to the box's four edges (softplus,
    canvas fractions) and a quality logit. The box is the softmax-weighted mean of the
    cells' boxes, and the quality the same mean of theirs. The same small convolution
    runs at every cell (translation-equivariant), which is what lets it learn from a few
    hundred boxes where a dense layer over the whole map overfits.
    """

    def __init__(self, near: int, far: int, width: int = 32, dropout: float = 0.2, mid: int = 0):
        super().__init__()
        # whole feature channels dropped while training: a few hundred photos are memorised
        # otherwise (fit IoU 0.98 against 0.75 held out without it)
        self.drop = nn.Dropout2d(dropout)
        self.near_in = _conv(near, width, 1)
        self.far_in = _conv(far, width, 1)
        # a finer grid (stride 8) also hears the stride-16 map between it and the stride-32 one
        self.mid_in = _conv(mid, width, 1) if mid else None
        self.body = nn.Sequential(_conv((3 if mid else 2) * width, width, 3), _conv(width, width, 3))
        self.out = nn.Conv2d(width, 6, 1)

    def forward(self, f: torch.Tensor, g: torch.Tensor, m: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [self.near_in(self.drop(f))]
        for conv, x in ((self.mid_in, m), (self.far_in, g)):
            if conv is not None:
                parts.append(nn.functional.interpolate(conv(self.drop(x)), size=f.shape[2:], mode="nearest"))
        o = self.out(self.body(torch.cat(parts, dim=1))).flatten(2)  # (B, 6, cells)
        h, w = f.shape[2:]
        ys, xs = torch.meshgrid((torch.arange(h, device=f.device) + 0.5) / h,
                                (torch.arange(w, device=f.device) + 0.5) / w, indexing="ij")
        cx, cy = xs.flatten(), ys.flatten()
        d = nn.functional.softplus(o[:, 1:5]) * 0.25
        cells = torch.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], dim=1)  # (B, 4, cells)
        p = torch.softmax(o[:, 0], dim=1).unsqueeze(1)
        return (cells * p).sum(dim=2).clamp(0, 1), (o[:, 5:6] * p).sum(dim=2)[:, 0]


class BoxNet(nn.Module):
    """(B, 1, H, W) normalised grey canvases → boxes (B, 4) as (x0, y0, x1, y1) in [0, 1]
    canvas fractions, and quality logits (B,).

    ``frozen_stages``: 5 freezes the whole backbone (only the head trains: the cheapest fit,
    the stride-16 and stride-32 maps are both computed once per view); 4 trains the
    stride-32 stages too (better features, each epoch runs them).
    """

    def __init__(self, *, backbone: str = "efficientnet_lite0", pretrained: bool | str = True,
                 frozen_stages: int = 5, canvas: tuple[int, int] = (128, 192), width: int = 32, stride: int = 16,
                 heads: int = 1):
        super().__init__()
        if frozen_stages not in (4, 5):
            raise ConfigError(f"boxes.frozen_stages must be 4 or 5, got {frozen_stages}.")
        if stride not in (8, 16):
            raise ConfigError(f"the box head's stride must be 8 or 16, got {stride}.")
        if heads < 1:
            raise ConfigError(f"the box model needs at least one head, got {heads}.")
        net = build_backbone(backbone, pretrained=pretrained)
        # a pretrained net's input adapter, kept as two constants (not the whole wrapped net)
        adapted = isinstance(net, InputNorm)
        self.register_buffer("in_scale", net.scale.clone() if adapted else torch.ones(1, 1, 1, 1), persistent=False)
        self.register_buffer("in_shift", net.shift.clone() if adapted else torch.zeros(1, 1, 1, 1), persistent=False)
        inner = net.model if adapted else net
        if not all(hasattr(inner, a) for a in ("conv_stem", "bn1", "blocks", "feature_info")):
            raise ConfigError(f"boxes.backbone {backbone!r} is not an EfficientNet/MobileNet-style timm model "
                              "(conv_stem, bn1, blocks). Fix: use efficientnet_lite0.")
        names = [f["module"] for f in inner.feature_info]
        cut = int(names[-2].split(".")[1]) + 1  # after the stride-16 stage
        fine = int(names[-3].split(".")[1]) + 1 if stride == 8 else cut  # after the stride-8 stage
        self.trunk = nn.Sequential(inner.conv_stem, inner.bn1, *inner.blocks[:fine])
        self.mid = nn.Sequential(*inner.blocks[fine:cut])  # empty (identity) at stride 16
        self.tail = nn.Sequential(*inner.blocks[cut:])
        self.tail_frozen = frozen_stages == 5
        self.stride = stride
        for p in [*self.trunk.parameters(), *self.mid.parameters(),
                  *(self.tail.parameters() if self.tail_frozen else [])]:
            p.requires_grad_(False)
        with torch.no_grad():
            f = self.trunk.eval()(torch.zeros(1, 1, *canvas))
            m = self.mid.eval()(f)
            g = self.tail.eval()(m)
        make = lambda: CellHead(f.shape[1], g.shape[1], width, mid=m.shape[1] if stride == 8 else 0)  # noqa: E731
        self.head = make()
        # more heads on the same frozen features, each trained on its own: their boxes are averaged
        # (a head costs little next to the features, and a few hundred photos leave each one noisy)
        self.more_heads = nn.ModuleList(make() for _ in range(heads - 1))

    def train(self, mode: bool = True):
        super().train(mode)
        self.trunk.eval()  # frozen: its batch norms keep their ImageNet statistics
        self.mid.eval()
        if self.tail_frozen:
            self.tail.eval()
        return self

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What does not train, for normalised canvases: the stride-16 map (at stride 8, the stride-8
        map first), and the stride-32 map last when the tail is frozen (fitting computes these once per view)."""
        f = self.trunk(x * self.in_scale + self.in_shift)
        maps = (f, self.mid(f)) if self.stride == 8 else (f,)
        return (*maps, self.tail(maps[-1])) if self.tail_frozen else maps

    def head_outputs(self, feats: tuple[torch.Tensor, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each head's boxes and quality logits from :meth:`features` (each is trained on its own)."""
        n = 2 if self.stride == 8 else 1  # the maps before the tail
        g = feats[n] if len(feats) > n else self.tail(feats[n - 1])
        mid = feats[1] if self.stride == 8 else None
        return [h(feats[0], g, mid) for h in (self.head, *self.more_heads)]

    def head_forward(self, feats: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Boxes and quality logits from :meth:`features`: the heads' mean."""
        outs = self.head_outputs(feats)
        if len(outs) == 1:
            return outs[0]
        return torch.stack([b for b, _ in outs]).mean(0), torch.stack([q for _, q in outs]).mean(0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head_forward(self.features(x))


def box_loss(pred: torch.Tensor, quality: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 on the corners + generalised-IoU loss for the box, and binary cross-entropy of the
    quality logit against the box's own (detached) IoU."""
    from torchvision.ops import box_iou, generalized_box_iou_loss

    giou = generalized_box_iou_loss(pred, target, reduction="mean")
    l1 = (pred - target).abs().sum(dim=1).mean()
    with torch.no_grad():
        iou = box_iou(pred, target).diagonal()
    return l1 + giou + 0.5 * nn.functional.binary_cross_entropy_with_logits(quality, iou)
