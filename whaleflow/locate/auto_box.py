"""Boxes without a single labelled box: where a pretrained network's features are strongest.

``data.boxes: auto``. The frozen ImageNet trunk of :class:`~whaleflow.locate.box_net.BoxNet`
(EfficientNet-Lite0 to stride 16) looks at the letterboxed photo; each cell's distance
from the mean feature vector of the map's border cells (the border is mostly background)
is an "objectness" map. The map is upsampled to the canvas, scaled to [0, 1],
thresholded, and the box is the bounding rectangle of the largest connected region,
mapped back to the photo. The score is the contrast between the mean activation inside
the box and outside it (0–1): a low score is a photo where nothing stood out.

It is opt-in: on the synthetic panel it has not been shown to beat whole frames on
identification accuracy (see the README).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from ..io import atomic_path
from .box_augment import letterbox_matrix, transform_boxes, warp
from .box_model import predict_files, to_tensor
from .box_net import BoxNet

FORMAT = "whaleflow.auto_box/1"


@dataclass
class ActivationBoxer:
    """Box = largest region of the pretrained trunk's activation above ``threshold`` × its range."""

    backbone: str = "efficientnet_lite0"
    canvas: tuple[int, int] = (128, 192)
    threshold: float = 0.5
    net: BoxNet | None = None

    @property
    def settings(self) -> dict:
        return {"backbone": self.backbone, "canvas": list(self.canvas),
                "threshold": self.threshold}

    def _trunk(self) -> BoxNet:
        if self.net is None:
            self.net = BoxNet(backbone=self.backbone, pretrained=True, frozen_stages=5,
                              canvas=tuple(self.canvas)).eval()
        return self.net

    def box_from_map(self, act: np.ndarray) -> tuple[np.ndarray, float]:
        """(canvas box, score) from one activation map already at canvas size."""
        ch, cw = act.shape
        lo, hi = float(act.min()), float(act.max())
        a = (act - lo) / (hi - lo) if hi > lo else np.zeros_like(act)
        mask = (a >= self.threshold).astype(np.uint8)
        n, _labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if n <= 1:
            return np.array([0, 0, cw, ch], float), 0.0
        k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        x, y, w, h = (int(v) for v in stats[k, :4])
        inside = np.zeros_like(mask, dtype=bool)
        inside[y:y + h, x:x + w] = True
        score = float(a[inside].mean() - a[~inside].mean()) if (~inside).any() else 0.0
        return np.array([x, y, x + w, y + h], float), float(np.clip(score, 0.0, 1.0))

    @staticmethod
    def activation(f: torch.Tensor) -> torch.Tensor:
        """(B, 1, h, w): how far each cell's features are from the mean of the border cells.

        The border of a wildlife photo is mostly background (sea, sky, grass); its mean
        feature vector is a background model, and the animal is what differs from it.
        (The plain feature norm fires on waves and glints too: its largest region was the
        whole frame on synthetic flukes.)
        """
        border = torch.cat([f[:, :, 0], f[:, :, -1], f[:, :, 1:-1, 0], f[:, :, 1:-1, -1]], dim=2)
        return (f - border.mean(dim=2)[:, :, None, None]).norm(dim=1, keepdim=True)

    def predict_pixels(self, images: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """(n, 5): x0, y0, x1, y1 in each grey image's pixels, and the score."""
        net, ch, cw = self._trunk(), *self.canvas
        out = np.zeros((len(images), 5))
        for s in range(0, len(images), batch_size):
            chunk = images[s:s + batch_size]
            mats = [letterbox_matrix(im.shape[1], im.shape[0], tuple(self.canvas)) for im in chunk]
            canv = np.stack([warp(im, m, tuple(self.canvas)) for im, m in zip(chunk, mats)])
            with torch.inference_mode():
                act = self.activation(net.features(to_tensor(canv))[0])
                act = torch.nn.functional.interpolate(act, size=(ch, cw), mode="bilinear", align_corners=False)
            for k, (im, m) in enumerate(zip(chunk, mats)):
                box, score = self.box_from_map(act[k, 0].numpy())
                b = transform_boxes(box, np.linalg.inv(m), (im.shape[0], im.shape[1]))[0]
                out[s + k] = [*b, score]
        return out

    def predict(self, paths, names=None, *, workers: int = 2, progress: bool = False) -> tuple[pd.DataFrame, list]:
        return predict_files(self.predict_pixels, paths, names, workers=workers, progress=progress)

    def save(self, path: str | Path) -> Path:
        with atomic_path(path) as tmp:
            torch.save({"format": FORMAT, "settings": self.settings}, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, saved: dict) -> ActivationBoxer:
        s = saved["settings"]
        return cls(backbone=s["backbone"], canvas=tuple(s["canvas"]),
                   threshold=float(s["threshold"]))
