"""The image cache: every train and test image decoded, cropped, grey, letterboxed, once.

Training reads images thousands of times; decoding a 1000-pixel JPEG each time costs
far more than the model step on small nets. So each image is decoded once, cropped to
its box (:mod:`whaleflow.data.boxes`), converted to grey, resized with its aspect
kept and padded to the cache's (height, width) — a square or a rectangle such as
1:2 for flukes — and written into ONE uint8 ``np.memmap`` (``images.u8``, shape
(n, height, width)) with an ``index.csv`` (image, split, row, width, height, box). A
trainer then reads rows straight from the page cache.

Padding: the letterbox is filled with the mean of the resized image's border pixels
(edge-mean). A constant near the local sea colour adds no strong edge (black padding
does, and a network learns the letterbox) and copies no fluke structure into the
margin (reflect padding mirrors the fluke tips, faking edge detail — exactly what
identification looks at — and interacts badly with "flip = new individual").

The folder is named by a hash of the inputs (paths, file sizes and mtimes, the box
file's bytes, every setting), so a changed setting rebuilds and an unchanged one is
reused. It is built in a temporary folder and renamed into place, so a crash never
leaves a half-built cache that looks finished. Corrupt images are skipped and counted
(an error under ``strict``).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import size_hw
from ..io import write_csv, write_json
from .boxes import Boxes, read_boxes
from .images import CorruptImage
from .letterbox import letterbox, load_image, load_image_sizes  # noqa: F401  (letterbox, load_image: re-exported)
from .parallel_map import parallel_map

CACHE_VERSION = 2  # 2: rectangular (height, width) caches
PAD = "edge-mean"


@dataclass
class Cache:
    """An opened cache folder."""

    dir: Path
    images: np.ndarray   # uint8 memmap (n, height, width) or (n, height, width, 3)
    index: pd.DataFrame  # image, split, row, path, width, height, box
    meta: dict

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of every cached image."""
        return int(self.meta["height"]), int(self.meta["width"])

    @property
    def size(self) -> int:
        """The longer side."""
        return max(self.shape)


def cache_key(items: pd.DataFrame, *, size, boxes_digest: str | None, box_margin: float,
              grayscale: bool) -> str:
    """Hash of everything the cached pixels depend on."""
    h = hashlib.sha256()
    settings = {"version": CACHE_VERSION, "size": list(size_hw(size)), "boxes": boxes_digest,
                "margin": float(box_margin) if boxes_digest else None,
                "grayscale": bool(grayscale), "pad": PAD}
    h.update(json.dumps(settings, sort_keys=True).encode())
    for split, image, path in zip(items["split"], items["image"], items["path"]):
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{split}\0{image}\0{path}\0{stamp}\n".encode())
    return h.hexdigest()[:16]


def build_cache(items: pd.DataFrame, root: str | Path, *, size, boxes: str | Path | None = None,
                box_margin: float = 0.05, grayscale: bool = True, strict: bool = False,
                workers: int = 2, progress: bool = False, keep: int = 2) -> Cache:
    """Open the cache for ``items`` (image, split, path) under ``root``, building it if needed.

    ``size`` is a side (square) or (height, width).

    ``keep`` caches (the newest) are kept in ``root``; older ones are deleted, since at
    full HWI scale one cache is gigabytes.
    """
    return build_caches(items, root, sizes=[size], boxes=boxes, box_margin=box_margin, grayscale=grayscale,
                        strict=strict, workers=workers, progress=progress, keep=keep)[0]


def build_caches(items: pd.DataFrame, root: str | Path, *, sizes, boxes: str | Path | Boxes | None = None,
                 box_margin: float = 0.05, grayscale: bool = True, strict: bool = False,
                 workers: int = 2, progress: bool = False, keep: int = 2) -> list[Cache]:
    """One cache per size in ``sizes`` (in that order), each built as :func:`build_cache` would.

    The missing ones are built together: each image is decoded and cropped once, on
    ``workers`` threads, and letterboxed to every missing size, so a run with stages at
    384 and 672 pays one decode, not two. Caches already in ``root`` are reused; the
    caches of this call always stay, older ones go beyond ``keep`` in all. Every cache
    holds the same images in the same rows (a skip is a decode failure, whatever the size).
    ``boxes``: a box file, or a :class:`Boxes` table already read (listed + predicted boxes).
    """
    root = Path(root)
    box_table = boxes if isinstance(boxes, Boxes) else read_boxes(boxes) if boxes else None
    shapes = list(dict.fromkeys(size_hw(s) for s in sizes))
    keys = [cache_key(items, size=hw, boxes_digest=box_table.digest if box_table else None,
                      box_margin=box_margin, grayscale=grayscale) for hw in shapes]
    todo = [(hw, key) for hw, key in zip(shapes, keys) if not (root / key / "meta.json").is_file()]
    for key in set(keys) - {k for _, k in todo}:
        os.utime(root / key / "meta.json")  # most recently used: pruning keeps it
    if todo:
        root.mkdir(parents=True, exist_ok=True)
        tmps = [root / f".tmp-{key}-{os.getpid()}" for _, key in todo]
        for tmp in tmps:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
        try:
            _build(items.reset_index(drop=True), [(tmp, hw, key) for tmp, (hw, key) in zip(tmps, todo)],
                   boxes=box_table, box_margin=box_margin, grayscale=grayscale, strict=strict,
                   workers=workers, progress=progress)
            for tmp, (_, key) in zip(tmps, todo):
                try:
                    os.rename(tmp, root / key)
                except OSError:
                    if not (root / key / "meta.json").is_file():  # lost a race to an equal build: use theirs
                        raise
        finally:
            for tmp in tmps:
                shutil.rmtree(tmp, ignore_errors=True)
    _prune(root, keep=max(1, keep), current=set(keys))
    return [open_cache(root / key) for key in keys]


def _build(items: pd.DataFrame, targets: list[tuple[Path, tuple[int, int], str]], *, boxes, box_margin,
           grayscale, strict, workers, progress) -> None:
    """Fill one cache folder per (folder, (height, width), key) target from one decode per image."""
    n = len(items)
    sizes = [hw for _, hw, _ in targets]
    shapes = [(n, h, w) if grayscale else (n, h, w, 3) for h, w in sizes]
    # Raw files (no .npy header): the shape lives in meta.json.
    arrays = [np.memmap(folder / "images.u8", dtype=np.uint8, mode="w+", shape=shape) if n else None
              for (folder, _, _), shape in zip(targets, shapes)]
    records = items[["image", "split", "path"]].to_dict("records")

    def work(i: int):
        rec = records[i]
        try:
            return load_image_sizes(rec["path"], rec["image"], sizes=sizes, boxes=boxes,
                                    box_margin=box_margin, grayscale=grayscale)
        except CorruptImage as exc:
            if strict:
                raise
            return exc

    meta_rows, skipped, problems = [], [], []
    counts = {"box": 0, "predicted": 0, "clamped": 0, "missing": 0, "invalid": 0, "none": 0}
    ok = np.zeros(n, dtype=bool)
    what = "caching images" + (f" at {', '.join(f'{h}×{w}' for h, w in sizes)}" if len(sizes) > 1 else "")
    for i, res in enumerate(parallel_map(work, range(n), workers=workers, progress=progress, description=what)):
        rec = records[i]
        if isinstance(res, CorruptImage):
            skipped.append({"image": rec["image"], "split": rec["split"], "path": rec["path"],
                            "reason": str(res)})
            continue
        pixels, w, h, status, problem = res
        for images, px in zip(arrays, pixels):
            images[i] = px
        ok[i] = True
        counts[status] += 1
        if problem:
            problems.append(problem)
        meta_rows.append({"image": rec["image"], "split": rec["split"], "path": rec["path"],
                          "width": w, "height": h, "box": status})
    n_ok = int(ok.sum())
    for j, ((folder, _, _), shape) in enumerate(zip(targets, shapes)):
        images, arrays[j] = arrays[j], None  # the last reference goes before the file shrinks
        if images is not None:
            if n_ok < n:  # compact in place: kept rows move down, never over an unread row
                for dst, src in enumerate(np.flatnonzero(ok)):
                    if dst != src:
                        images[dst] = images[src]
            images.flush()
            del images
            os.truncate(folder / "images.u8", n_ok * int(np.prod(shape[1:])))
        else:
            (folder / "images.u8").write_bytes(b"")
    index = pd.DataFrame(meta_rows, columns=["image", "split", "path", "width", "height", "box"])
    index.insert(2, "row", np.arange(len(index), dtype=np.int64))
    if boxes is not None:
        problems = boxes.problems + problems
    for folder, (height, width), key in targets:
        write_csv(folder / "index.csv", index)
        write_csv(folder / "skipped.csv", pd.DataFrame(skipped, columns=["image", "split", "path", "reason"]))
        write_csv(folder / "box_problems.csv", pd.DataFrame(problems, columns=["image", "row", "message"]))
        write_json(folder / "meta.json", {
            "key": key, "version": CACHE_VERSION, "n": n_ok, "size": max(height, width), "height": height,
            "width": width, "channels": 1 if grayscale else 3,
            "grayscale": grayscale, "pad": PAD, "box_margin": box_margin,
            "boxes_file": boxes.file if boxes else None, "boxes": counts, "box_problems": len(problems),
            "skipped": len(skipped)})


def cache_bytes(cache: Cache) -> int:
    """Disk use of one cache folder."""
    return sum(p.stat().st_size for p in cache.dir.iterdir() if p.is_file())


def open_cache(folder: str | Path) -> Cache:
    """Open a finished cache folder read-only."""
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    index = pd.read_csv(folder / "index.csv", dtype={"image": str, "split": str, "path": str,
                                                     "box": str}, keep_default_na=False)
    h, w = int(meta.get("height", meta["size"])), int(meta.get("width", meta["size"]))
    meta.setdefault("height", h)
    meta.setdefault("width", w)
    c = int(meta["channels"])
    shape = (int(meta["n"]), h, w) if c == 1 else (int(meta["n"]), h, w, c)
    if meta["n"]:
        images = np.memmap(folder / "images.u8", dtype=np.uint8, mode="r", shape=shape)
    else:
        images = np.zeros(shape, dtype=np.uint8)
    return Cache(folder, images, index, meta)


def _prune(root: Path, keep: int, current: set[str]) -> None:
    """Delete all but the ``keep`` most recently used caches; those in ``current`` always stay."""
    caches = [p for p in root.iterdir() if p.is_dir() and len(p.name) == 16 and (p / "meta.json").is_file()]
    caches.sort(key=lambda p: (p.name in current, (p / "meta.json").stat().st_mtime), reverse=True)
    for old in caches[max(keep, len(current)):]:
        shutil.rmtree(old, ignore_errors=True)
