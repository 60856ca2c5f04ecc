"""Geometric verification of two photos: descriptor matches that one homography explains.

Matches pass Lowe's ratio test (nearest descriptor clearly closer than the second), then a
RANSAC homography keeps those consistent with one view change; their count is the evidence.
Two photos of different animals still share a few chance matches (sea texture, the fluke's
outline), which the blend learns to discount: it only sees ``log1p(inliers)`` through a
weight and a normaliser fitted on validation.
"""
from __future__ import annotations

import cv2
import numpy as np

from .features import Features

__all__ = ["count_inliers", "MIN_MATCHES"]

#: fewer ratio-test matches than this cannot fit a homography meaningfully: their count is the evidence
MIN_MATCHES = 5


def count_inliers(a: Features, b: Features, *, norm: int = cv2.NORM_L2, ratio: float = 0.8,
                  reproj_px: float = 8.0) -> int:
    """RANSAC inliers among the ratio-test matches of ``a``'s descriptors in ``b``'s."""
    if len(a) < 2 or len(b) < 2:
        return 0
    pairs = cv2.BFMatcher(norm).knnMatch(a.desc, b.desc, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < ratio * m[1].distance]
    if len(good) < MIN_MATCHES:
        return len(good) // 2  # too few to verify: half credit, never above a verified pair
    src = a.xy[[m.queryIdx for m in good]]
    dst = b.xy[[m.trainIdx for m in good]]
    # RANSAC samples with OpenCV's per-thread generator: seeded per pair, so a count depends on
    # the two photos alone (not on what the thread matched before), and identify reproduces it
    cv2.setRNGSeed(0)
    _, mask = cv2.findHomography(src, dst, cv2.RANSAC, reproj_px)
    return int(np.count_nonzero(mask)) if mask is not None else 0
