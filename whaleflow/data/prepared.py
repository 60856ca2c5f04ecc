"""Opening a prepared folder: :class:`Prepared` and :func:`load_prepared`.

Every trial, the ensemble and ``whaleflow identify`` read what ``whaleflow prepare``
wrote (:mod:`whaleflow.data.prepare`) through this module: the index, the image caches
(memory-mapped, from a node-local copy when asked) and the reports. Kept apart from the
writing side, which is long and which readers never need; both names are re-exported
from :mod:`whaleflow.data.prepare`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .cache import open_cache
from .local_cache import local_copy
from .split import query_ids, roles_for_fold


@dataclass
class Prepared:
    """A prepared folder, opened: the index, the image memmap and the reports."""

    dir: Path
    index: pd.DataFrame     # image, split, id, role, fold, held_out, group, row, path
    images: np.ndarray      # uint8 memmap (n, height, width): the largest cache
    size: tuple[int, int]   # (height, width) of the largest cache
    summary: dict
    test_duplicates: dict[str, list[str]] = field(default_factory=dict)
    # every cache by (height, width), the same rows in each; a stage reads its own size's
    caches: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        if not self.caches:
            self.caches = {tuple(self.images.shape[1:3]): self.images}

    def _roles(self, fold: int | None) -> np.ndarray:
        if fold is None or fold == 0:
            return self.index["role"].to_numpy()
        train = self.index["split"] == "train"
        roles = self.index["role"].to_numpy().copy()
        roles[train.to_numpy()] = roles_for_fold(self.index[train], fold)
        return roles

    def rows(self, role: str, fold: int | None = None) -> np.ndarray:
        """Rows into ``images`` of one role ('train', 'val', 'test', 'unused'), for ``fold``."""
        return self.index["row"].to_numpy()[self._roles(fold) == role].astype(np.int64)

    def labels(self, role: str, fold: int | None = None) -> np.ndarray:
        """The ids of :meth:`rows` (same order) as queries see them ('' for test images): an
        individual held out as a new one is ``NEW_WHALE`` in validation."""
        return query_ids(self.index)[self._roles(fold) == role].astype(str)

    @property
    def layout(self) -> str:
        """The data's layout (kaggle, happywhale, individual): it decides the submission format."""
        return str(self.summary.get("layout") or "kaggle")


def load_prepared(prepared_dir: str | Path, local_cache_dir: str | Path | None = None) -> Prepared:
    """Open a folder written by :func:`~whaleflow.data.prepare.prepare` (``out_dir/prepared``), reading its caches from
    copies under ``local_cache_dir`` when given (made on first use on this node)."""
    pdir = Path(prepared_dir)
    if not (pdir / "summary.json").is_file() and (pdir / "prepared" / "summary.json").is_file():
        pdir = pdir / "prepared"
    if not (pdir / "summary.json").is_file():
        raise DataError("not a prepared folder (no summary.json).", file=pdir,
                        fix="run `whaleflow prepare --config C` first.")
    summary = json.loads((pdir / "summary.json").read_text(encoding="utf-8"))
    index = pd.read_csv(pdir / "index.csv", dtype={"image": str, "split": str, "id": str, "role": str,
                                                   "path": str, "box": str}, keep_default_na=False)
    held = index["held_out"] if "held_out" in index.columns else pd.Series(False, index=index.index)
    index["held_out"] = held.astype(str).str.lower().isin(("true", "1"))  # folders from before held_out
    test_dups = json.loads((pdir / "test_duplicates.json").read_text(encoding="utf-8"))
    return open_prepared(pdir, index, summary, test_dups, local_cache_dir)


def open_prepared(pdir: Path, index: pd.DataFrame, summary: dict, test_dups: dict,
            local_cache_dir: str | Path | None) -> Prepared:
    """Map every cache of ``summary`` (from its local copy under ``local_cache_dir`` if set)."""
    entries = summary.get("caches") or [summary["cache"]]
    caches = {}
    for entry in entries:
        folder = pdir / entry["dir"]
        if local_cache_dir:
            folder = local_copy(folder, local_cache_dir)
        c = open_cache(folder)
        caches[c.shape] = c
    first = next(iter(caches.values()))
    for c in caches.values():
        if not c.index["image"].equals(first.index["image"]):
            raise DataError(f"the image caches {first.dir.name} and {c.dir.name} hold different images.",
                            file=pdir / "cache", fix="delete the prepared/cache folder and run prepare again.")
    largest = max(caches.values(), key=lambda c: c.shape[0] * c.shape[1])
    return Prepared(pdir, index, largest.images, largest.shape, summary, test_dups,
                    caches={shape: c.images for shape, c in caches.items()})
