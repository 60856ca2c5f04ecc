"""The pixels of a gallery photo by name, for the review page's candidate tiles.

A run's own photos come from its image cache while the run folder still has ``prepared/``
(a memory map: no decode), else from the photo file listed in ``photos.csv``, prepared as
the cache prepared it (cropped to the same box, grey, letterboxed to the largest cache
size); enrolled photos from ``gallery/enrolled.npz``. A photo whose file is gone has no
pixels: the page shows its name without a thumbnail.
"""
from __future__ import annotations

import numpy as np

from ..data.boxes import Boxes
from ..data.images import CorruptImage
from ..errors import DataError

__all__ = ["GalleryPixels"]


class GalleryPixels:
    """``get(image)`` → (H, W[, 3]) uint8 pixels or None; decoded files are kept."""

    def __init__(self, run):
        self.run = run
        e = run.enrolled
        self.enrolled = {im: i for i, im in enumerate(e.images)} if len(e) else {}
        self.enrolled_pixels = e.pixels
        train = run.photos[run.photos["split"] == "train"]
        self.paths = dict(zip(train["image"], train["path"]))
        boxed = train.dropna(subset=["x0", "y0", "x1", "y1"])
        self.boxes = Boxes(str(run.run_dir / "photos.csv"),
                           {str(r.image): (r.x0, r.y0, r.x1, r.y1, 0) for r in boxed.itertuples(index=False)})
        self.rows, self.cache = self._open_cache()
        self.decoded: dict[str, np.ndarray | None] = {}

    def _open_cache(self) -> tuple[dict[str, int], np.ndarray | None]:
        """Cache row of every training photo and the largest cache, when ``prepared/`` is there."""
        pdir = self.run.run_dir / "prepared"
        if not (pdir / "summary.json").is_file():
            return {}, None
        from ..data.prepared import load_prepared

        try:
            prepared = load_prepared(pdir)
        except (DataError, OSError, ValueError):  # a partial copy of prepared/: the photo files still serve
            return {}, None
        idx = prepared.index
        train = idx[idx["split"] == "train"]
        return dict(zip(train["image"], train["row"].astype(int))), prepared.images

    def _from_file(self, image: str) -> np.ndarray | None:
        from ..data.cache import load_image_sizes

        if image not in self.decoded:
            cfg = self.run.cfg
            try:
                px = load_image_sizes(self.paths[image], image, sizes=[self.run.size], boxes=self.boxes,
                                      box_margin=cfg.data.box_margin, grayscale=cfg.prepare.grayscale)[0][0]
            except (CorruptImage, OSError):
                px = None
            self.decoded[image] = px
        return self.decoded[image]

    def get(self, image: str) -> np.ndarray | None:
        if image in self.enrolled:
            return self.enrolled_pixels[self.enrolled[image]]
        row = self.rows.get(image)
        if self.cache is not None and row is not None and row < len(self.cache):
            return self.cache[row]
        return self._from_file(image) if image in self.paths else None
