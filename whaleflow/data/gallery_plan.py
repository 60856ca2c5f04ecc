"""Which labelled photos each query searches: the galleries of validation and test queries.

A test query searches every labelled photo (train + val; individuals held out as new in
validation under their own ids). A validation query with ``val_gallery: test_like`` searches
the training photos plus the known validation photos of the *other* chunks (whole
near-duplicate groups per chunk, :func:`~whaleflow.data.split.val_chunks`), so its gallery is
as large as a test query's and never holds the query or its twins; with ``train`` it searches
the training photos only. Held-out and new individuals never enter a validation gallery.
This is the plan the families score validation with (``FamilyTask.test_like_val_scores``),
written once for the stages that match photos outside a family (local-feature verification).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..labels import NEW_WHALE
from .split import query_ids, val_chunks

__all__ = ["GalleryPlan"]


def _known(ids: np.ndarray) -> np.ndarray:
    return (ids != NEW_WHALE) & (ids != "")


@dataclass
class GalleryPlan:
    """Galleries over a prepared ``index.csv`` frame (image, id, role, held_out, group, path)."""

    index: pd.DataFrame
    val_gallery: str = "test_like"
    chunks: int = 4
    seed: int = 0

    def __post_init__(self):
        if self.val_gallery not in ("test_like", "train"):
            raise ValueError(f"val_gallery must be test_like or train, got {self.val_gallery!r}")
        idx = self.index.fillna({"id": ""})
        self._train = idx[idx["role"] == "train"]
        self._val = idx[idx["role"] == "val"]
        self._val_qids = query_ids(self._val)
        groups = self._val["group"].to_numpy() if "group" in self._val else self._val["image"].to_numpy()
        self._chunk = val_chunks(groups, self.chunks, self.seed) if len(self._val) else np.zeros(0, np.int64)
        self._chunk_of = dict(zip(self._val["image"].astype(str), self._chunk))
        labelled = idx[idx["role"].isin(["train", "val"])]
        keep = _known(labelled["id"].astype(str).to_numpy())
        self._test = (labelled["image"].astype(str).to_numpy()[keep], labelled["id"].astype(str).to_numpy()[keep])

    def test_gallery(self) -> tuple[np.ndarray, np.ndarray]:
        """(images, ids) every test query searches."""
        return self._test

    def val_chunk(self, image: str) -> int:
        """The chunk of a validation query (0 with a train-only gallery)."""
        return int(self._chunk_of[image]) if self.val_gallery == "test_like" else 0

    def val_gallery_of(self, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        """(images, ids) the validation queries of ``chunk`` search."""
        t_ids = self._train["id"].astype(str).to_numpy()
        t_keep = _known(t_ids)
        images = [self._train["image"].astype(str).to_numpy()[t_keep]]
        ids = [t_ids[t_keep]]
        if self.val_gallery == "test_like":
            other = _known(self._val_qids) & (self._chunk != chunk)
            images.append(self._val["image"].astype(str).to_numpy()[other])
            ids.append(self._val_qids[other])
        return np.concatenate(images), np.concatenate(ids)
