"""Intersection over union of axis-aligned boxes ``(x0, y0, x1, y1)``.

The box model is judged by it (mean IoU of its boxes against listed ones on held-out
photos, and its quality score is trained to predict it), so it is one small function
with a brute-force test (``tests/locate/test_iou.py`` counts pixels).
"""
from __future__ import annotations

import numpy as np


def box_iou(a, b) -> np.ndarray:
    """Row-wise IoU of two (n, 4) arrays of boxes (or two single boxes): shape (n,).

    An empty or inverted box has area 0, so its IoU is 0 (never NaN).
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
