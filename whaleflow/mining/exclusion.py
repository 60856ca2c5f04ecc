"""Which images may be each other's negatives: individuals and near-duplicate groups.

A negative pair must show two individuals, and never two near-duplicate photos: an
identical photo filed under another label is the "hardest negative" in every round,
and training it as "different" teaches the net to separate identical images.

Within training, a near-duplicate group holding two labels is a label conflict (in
HWI mostly one whale filed under two ids). Such groups are *kept* in training, and
their individuals are merged for negatives: :func:`negative_codes` joins labels
that share a group (transitively, union–find), and the miners and the random-pair
sampler forbid negatives inside a merged code exactly as inside one individual.
Positives still use the labels. Why not drop them: the conflict is more likely a
duplicate id than two look-alike whales, every photo of both ids stays useful as a
positive and as a gallery image, and nothing pushes the two ids apart.
"""
from __future__ import annotations

import numpy as np


def negative_codes(labels, groups=None) -> np.ndarray:
    """int64 codes (0..m-1): images with equal codes must never be paired as negatives.

    ``labels``: individual per image; ``groups``: near-duplicate group per image (None:
    every image its own group). Two labels get one code when some group holds both.
    """
    labels = np.asarray(labels)
    lab = np.unique(labels, return_inverse=True)[1].reshape(-1)
    if groups is None:
        return lab.astype(np.int64)
    grp = np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1)
    if len(grp) != len(lab):
        raise ValueError(f"labels ({len(lab)}) and groups ({len(grp)}) differ in length")
    parent = np.arange(lab.max(initial=-1) + 1)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first = {}
    for g, c in zip(grp.tolist(), lab.tolist()):
        if g in first:
            a, b = find(first[g]), find(c)
            if a != b:
                parent[max(a, b)] = min(a, b)
        else:
            first[g] = c
    roots = np.array([find(c) for c in range(len(parent))], dtype=np.int64)
    return np.unique(roots, return_inverse=True)[1].reshape(-1).astype(np.int64)[lab]


def virtual_codes(codes: np.ndarray, flip_new_class: bool) -> np.ndarray:
    """Codes of the virtual images (originals, then flips as codes of their own)."""
    codes = np.asarray(codes, dtype=np.int64)
    if not flip_new_class:
        return codes
    return np.concatenate([codes, codes + (codes.max(initial=-1) + 1)])
