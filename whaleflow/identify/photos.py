"""New photos → the pixels a trained run's models saw in training.

A photo is prepared exactly as ``prepare`` prepared the run's images for its image
cache (:func:`whaleflow.data.cache.load_image`): decoded in full, cropped to its box
when a box file lists it (with the run's margin), converted to grey, letterboxed to
the cache's (height, width) with the edge-mean fill. The families then read these
pixels like cache rows (resize to the model's size, flip for TTA), so a photo of the
training set identified here gets the very numbers its cached copy got.

An unreadable photo is reported and skipped with a count, never a stop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.boxes import Boxes, read_boxes
from ..data.cache import load_image_sizes, parallel_map
from ..data.images import CorruptImage, is_image_name
from ..errors import DataError


@dataclass
class Photos:
    """Prepared photos: names (unique), paths, pixels (n, H, W[, 3]) and the skipped ones."""

    images: list[str]
    paths: list[str]
    pixels: np.ndarray
    boxes: list[str]                      # box status per photo: box, clamped, missing, invalid, none
    skipped: list[dict] = field(default_factory=list)  # path, reason
    # the pixels at every size the run has a cache of, {(height, width): (n, h, w)}: a model
    # reads its own size's, letterboxed from the crop as that cache was (not resized from pixels)
    by_size: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)


def list_photos(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders searched (recursively) for photos by extension, in order."""
    if not inputs:
        raise DataError("no photos given.", fix="pass photo files or folders, e.g. `whaleflow identify RUN_DIR photos/`.")
    out: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and is_image_name(p.name))
            if not found:
                raise DataError("folder holds no images (.jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp, .gif).",
                                file=item, fix="point at the folder that holds the photos.")
            out.extend(found)
        elif item.is_file():
            out.append(item)
        else:
            raise DataError("no such file or folder.", file=item, fix="check the path.")
    seen, unique = set(), []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def photo_names(paths: Sequence[Path]) -> list[str]:
    """The file name of each photo, or its path where two photos share a name."""
    names = [p.name for p in paths]
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return [str(p) if counts[n] > 1 else n for p, n in zip(paths, names)]


def open_boxes(path: str | Path | None, run_dir: str | Path | None = None, photos: Sequence[Path] = ()) -> Boxes | None:
    """The box file (or None), plus, when ``run_dir`` holds a box model (``box_model/model.pt``,
    written by ``prepare``), a predicted box for each of ``photos`` the file does not list: new
    photos are cropped as the run's own unlisted photos were."""
    table = read_boxes(path) if path else None
    if run_dir is None:
        return table
    from ..locate.boxer import with_run_boxes

    return with_run_boxes(run_dir, photos, table)


def prepare_photos(paths: Sequence[Path], *, size: tuple[int, int], boxes: Boxes | None, box_margin: float,
                   grayscale: bool = True, workers: int = 2, progress: bool = False,
                   sizes: Sequence[tuple[int, int]] = ()) -> Photos:
    """Decode, crop, grey and letterbox every photo (see the module docstring) to ``size`` and
    to each of ``sizes`` (:attr:`Photos.by_size`), from one decode."""
    every = list(dict.fromkeys([tuple(size), *(tuple(s) for s in sizes)]))
    paths = [Path(p) for p in paths]
    names = photo_names(paths)
    # boxes are looked up by file name, as in the run's box file
    lookup = [p.name for p in paths]

    def work(i: int):
        try:
            return load_image_sizes(paths[i], lookup[i], sizes=every, boxes=boxes, box_margin=box_margin,
                                    grayscale=grayscale)
        except CorruptImage as exc:
            return exc

    kept_names, kept_paths, pixels, status, skipped = [], [], [], [], []
    for i, res in enumerate(parallel_map(work, range(len(paths)), workers=workers, progress=progress,
                                         description="reading photos")):
        if isinstance(res, CorruptImage):
            skipped.append({"path": str(paths[i]), "reason": str(res)})
            continue
        px, _w, _h, box, _problem = res
        kept_names.append(names[i])
        kept_paths.append(str(paths[i]))
        pixels.append(px)
        status.append(box)
    by_size = {}
    for k, (h, w) in enumerate(every):
        shape = (0, h, w) if grayscale else (0, h, w, 3)
        by_size[(h, w)] = np.stack([px[k] for px in pixels]).astype(np.uint8) if pixels else np.zeros(shape, np.uint8)
    return Photos(kept_names, kept_paths, by_size[tuple(size)], status, skipped, by_size)
