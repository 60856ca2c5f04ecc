"""A fitted box model: predict a box and a quality score for any photo; save and load it.

``BoxModel.predict(paths)`` decodes each photo in grey, letterboxes it onto the
network's canvas, predicts the box on it (and on its mirror, averaged, when the settings
say ``mirror``: twice the cost), maps it back to the photo's pixels and clamps it inside the photo; a model
fitted with ``refine_views`` (the default) then takes a second look at a crop around that box
(:mod:`whaleflow.locate.refine`: twice the cost again, mean IoU 0.764 → 0.782 on the seed-11 synthetic set). The score is
the network's own estimate of the box's IoU with the true one (0–1), so low scores
mark the crops to look at first.

A model file is a plain ``torch.save`` dict (``format: whaleflow.box_model/1``: the
weights, the network's settings, the fit's metrics) read back with
``weights_only=True``, so opening someone's model file runs no code.
"""
from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.augment import MEAN, STD
from ..data.cache import parallel_map
from ..data.images import CorruptImage, read_gray
from ..errors import DataError
from ..io import atomic_path
from .box_augment import letterbox_matrix, transform_boxes, warp
from .box_net import BoxNet
from .refine import crop_matrix

FORMAT = "whaleflow.box_model/1"
COLUMNS = ["Image", "x0", "y0", "x1", "y1", "score"]


def to_tensor(canvases: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W) → normalised float (B, 1, H, W), as whaleflow normalises every grey image."""
    x = torch.from_numpy(np.ascontiguousarray(canvases)).float().unsqueeze(1)
    return (x / 255.0 - MEAN) / STD


@dataclass
class BoxModel:
    """A :class:`BoxNet` with its canvas and the settings that rebuild it."""

    net: BoxNet
    settings: dict                       # backbone, pretrained, frozen_stages, canvas, mirror, refine
    metrics: dict = field(default_factory=dict)

    @property
    def canvas(self) -> tuple[int, int]:
        return tuple(int(v) for v in self.settings["canvas"])

    def predict_pixels(self, images: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """(n, 5): x0, y0, x1, y1 in each grey image's pixels, and the score. With ``refine`` in the
        settings, a second look on a crop around the first box (:mod:`whaleflow.locate.refine`) gives both."""
        self.net.eval()
        out = np.zeros((len(images), 5), dtype=np.float64)
        refine = self.settings.get("refine")
        for s in range(0, len(images), batch_size):
            chunk = images[s:s + batch_size]
            mats = [letterbox_matrix(im.shape[1], im.shape[0], self.canvas) for im in chunk]
            found = self._look(chunk, mats)
            if refine:
                mats = [crop_matrix(b, (im.shape[1], im.shape[0]), self.canvas, float(refine["margin"]),
                                    float(refine["max_zoom"])) for im, b in zip(chunk, found)]
                found = self._look(chunk, mats)
            out[s:s + len(chunk)] = found
        return out

    def _look(self, images: Sequence[np.ndarray], mats: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 5) boxes in image pixels (clamped inside each image) and scores, each image warped onto
        the canvas by its matrix (the mirrored canvas's box, mirrored back, averaged in when set)."""
        ch, cw = self.canvas
        canv = np.stack([warp(im, m, self.canvas) for im, m in zip(images, mats)])
        with torch.inference_mode():
            box, q = self.net(to_tensor(canv))
            q = torch.sigmoid(q)
            if self.settings.get("mirror"):
                mbox, mq = self.net(to_tensor(canv[:, :, ::-1]))
                mbox = torch.stack([1 - mbox[:, 2], mbox[:, 1], 1 - mbox[:, 0], mbox[:, 3]], dim=1)
                box, q = (box + mbox) / 2, (q + torch.sigmoid(mq)) / 2
        box = box.double().numpy() * np.array([cw, ch, cw, ch])
        out = np.zeros((len(images), 5), dtype=np.float64)
        for k, (im, m) in enumerate(zip(images, mats)):
            b = transform_boxes(box[k], np.linalg.inv(m))[0]
            h, w = im.shape[:2]
            x0, y0 = np.clip(b[0], 0, w - 1), np.clip(b[1], 0, h - 1)
            out[k] = [x0, y0, np.clip(b[2], x0 + 1, w), np.clip(b[3], y0 + 1, h), float(q[k])]
        return out

    def predict(self, paths: Sequence[str | Path], names: Sequence[str] | None = None, *, workers: int = 2,
                progress: bool = False) -> tuple[pd.DataFrame, list[dict]]:
        """(``Image,x0,y0,x1,y1,score`` per readable photo, skipped photos with the reason)."""
        return predict_files(self.predict_pixels, paths, names, workers=workers, progress=progress)

    def save(self, path: str | Path) -> Path:
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        with atomic_path(path) as tmp:
            torch.save({"format": FORMAT, "settings": dict(self.settings), "metrics": dict(self.metrics),
                        "state_dict": state}, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, saved: dict | None = None) -> BoxModel:
        saved = saved if saved is not None else read_model_file(path)
        settings = saved["settings"]
        # the saved weights replace the ImageNet ones; building with the same `pretrained` still
        # matters, as a pretrained backbone carries an input adapter whose constants are not saved
        net = build_net(settings)
        net.load_state_dict(saved["state_dict"], strict=True)
        return cls(net.eval(), settings, dict(saved.get("metrics") or {}))


def build_net(settings: dict) -> BoxNet:
    """The network the settings describe."""
    return BoxNet(backbone=settings["backbone"], pretrained=settings["pretrained"],
                  frozen_stages=int(settings["frozen_stages"]), canvas=tuple(settings["canvas"]),
                  stride=int(settings.get("stride", 16)), heads=int(settings.get("heads", 1)))


def read_model_file(path: str | Path) -> dict:
    """The saved dict of a box model file, or a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError("box model file does not exist.", file=path,
                        fix="fit one with `whaleflow boxes fit DATA --boxes CSV --out MODEL`.")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError, AttributeError) as exc:
        raise DataError(f"cannot read the box model ({type(exc).__name__}: {str(exc)[:100]}).", file=path,
                        fix="fit it again with `whaleflow boxes fit`.") from None
    if not isinstance(saved, dict) or "format" not in saved:
        raise DataError("not a whaleflow box model.", file=path, fix="fit one with `whaleflow boxes fit`.")
    return saved


def predict_files(predict_pixels, paths, names=None, *, workers: int = 2, progress: bool = False,
                  batch: int = 256) -> tuple[pd.DataFrame, list[dict]]:
    """Decode photos in chunks and run ``predict_pixels`` on them: (boxes frame, skipped)."""
    paths = [Path(p) for p in paths]
    names = list(names) if names is not None else [p.name for p in paths]

    def read(i: int):
        try:
            return read_gray(paths[i])
        except CorruptImage as exc:
            return exc

    rows, skipped = [], []
    for s in range(0, len(paths), batch):
        idx = list(range(s, min(s + batch, len(paths))))
        decoded = list(parallel_map(read, idx, workers=workers, progress=progress and s == 0,
                                    description="finding the animal"))
        ok = [(i, im) for i, im in zip(idx, decoded) if not isinstance(im, CorruptImage)]
        skipped += [{"path": str(paths[i]), "reason": str(im)} for i, im in zip(idx, decoded)
                    if isinstance(im, CorruptImage)]
        if ok:
            pred = predict_pixels([im for _, im in ok])
            rows += [(names[i], *np.round(p[:4], 1), round(float(p[4]), 4)) for (i, _), p in zip(ok, pred)]
    return pd.DataFrame(rows, columns=COLUMNS), skipped
