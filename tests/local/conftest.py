"""Textured photos of a few "individuals": each a fixed random pattern of blobs and edges,
photographed again under a known perspective change, shift and brightness change."""
from __future__ import annotations

import cv2
import numpy as np
import pytest


def pattern(seed: int, h: int = 160, w: int = 240) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 90, np.uint8)
    for _ in range(60):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(img, c, int(rng.integers(2, 9)), int(rng.integers(0, 256)), -1)
    for _ in range(12):
        p = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(2)]
        cv2.line(img, p[0], p[1], int(rng.integers(0, 256)), int(rng.integers(1, 4)))
    return cv2.GaussianBlur(img, (3, 3), 0)


def reshoot(img: np.ndarray, seed: int, strength: float = 0.06) -> np.ndarray:
    """The same animal again: a random homography (corners moved by ``strength`` of the size)."""
    rng = np.random.default_rng(seed)
    h, w = img.shape
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + rng.uniform(-strength, strength, (4, 2)).astype(np.float32) * np.float32([w, h])
    out = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (w, h), borderValue=90)
    return np.clip(out.astype(np.int16) + int(rng.integers(-20, 20)), 0, 255).astype(np.uint8)


@pytest.fixture
def photo_dir(tmp_path):
    """Factory: photos(n_individuals, per_individual) → {image: (path, individual)} on disk."""

    def make(n: int = 4, per: int = 2):
        out = {}
        for k in range(n):
            base = pattern(100 + k)
            for j in range(per):
                name = f"w{k}_{j}.png"
                cv2.imwrite(str(tmp_path / name), reshoot(base, 1000 * k + j))
                out[name] = (str(tmp_path / name), f"w{k}")
        return out

    return make
