"""``whaleflow prepare``: a raw photo folder → what every trial reads, once.

Steps: catalog → perceptual hashes (cached) → near-duplicate groups (in-train groups,
label conflicts, train↔test leaks) → optional cross-release label mapping → leak-free
split → cropped grey letterboxed cache. Everything lands in ``out_dir/prepared``:

* ``index.csv``       one row per cached image: image, split, id, role, fold, group, row, path
* ``split.csv``       the split, readable (role, fold, reason per training image)
* ``duplicates.csv``, ``conflicts.csv``, ``leaks.csv``  the dedup report
* ``label_map.csv``   old → new labels (only with ``data.previous_root``)
* ``skipped.csv``     images left out and why; ``summary.json`` all the counts,
  ``summary.txt`` the printed summary (for the run's report)
* ``hashes.csv``      the hash cache; ``cache/<key>/`` the image memmaps, one per
  distinct stage size (:func:`whaleflow.config.cache_sizes`), built from one decode
  per image; with ``data.local_cache_dir`` they are read from a copy on local disk

Beside the folder, ``out_dir/photos.csv`` lists every photo with its crop box and hash: what
``whaleflow identify`` reads of them (:mod:`whaleflow.data.run_photos`), so a run folder copied
without ``prepared/`` still identifies photos. Every file is written atomically. A second call
on unchanged data reads the hashes back and reuses the cache folder, so it takes seconds. Opening the folder again
(:class:`Prepared`, :func:`load_prepared`) is :mod:`whaleflow.data.prepared`.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Config, cache_sizes
from ..errors import DataError
from ..io import write_csv, write_json, write_text
from ..storage import is_uri
from .cache import build_caches
from .local_cache import on_network_filesystem
from .dedup import find_duplicates, hash_images, write_reports
from .prepared import Prepared, load_prepared, open_prepared  # noqa: F401  (load_prepared: re-exported)
from .relabel import map_labels, write_mapping
from .run_photos import write_run_photos
from ..locate.box_source import resolve_boxes
from .split import split_train
from .split_report import write_split
from .prepare_summary import PRIOR_TOLERANCE, format_summary, prepare_summary, prior_warnings  # noqa: F401  (re-exported)



def prepare(cfg: Config, out_dir: str | Path, *, catalog=None, progress: bool = True) -> Prepared:
    """Prepare ``cfg.data.root`` (or ``catalog``) into ``out_dir/prepared`` and open it."""
    clock = {"start": time.perf_counter()}
    pdir = Path(out_dir) / "prepared"
    pdir.mkdir(parents=True, exist_ok=True)
    if catalog is None:
        catalog = _load_catalog(cfg, Path(out_dir), progress)
    items, skipped = hashed_items(cfg, catalog, pdir, progress)
    clock["hash"] = time.perf_counter()
    dups = find_duplicates(items, max_distance=cfg.prepare.dup_distance)
    items["group"] = dups.images["group"].to_numpy()
    write_reports(dups, pdir)
    relabel_summary, prefer = _relabel(cfg, items, pdir, progress)
    clock["dedup"] = time.perf_counter()
    cache_root = pdir / "cache"
    existing = {p.name for p in cache_root.iterdir()} if cache_root.is_dir() else set()
    boxes, box_model = resolve_boxes(cfg, items, _boxes_path(cfg, catalog.root), Path(out_dir), pdir,
                                     progress=progress)
    clock["boxes"] = time.perf_counter()
    caches = cropped_caches(cfg, items, boxes, pdir, skipped, progress)
    clock["cache"] = time.perf_counter()
    split, index = split_and_index(cfg, caches[0], items, prefer, pdir)
    is_test = index["split"] == "test"
    # Drop leak entries for test images the cache skipped: nothing can be predicted for them.
    cached_test = set(index.loc[is_test, "image"])
    test_dups = {k: v for k, v in dups.test_duplicates.items() if k in cached_test}
    write_json(pdir / "test_duplicates.json", test_dups)
    skipped_df = pd.concat(skipped, ignore_index=True) if skipped else \
        pd.DataFrame(columns=["image", "split", "path", "reason"])
    write_csv(pdir / "skipped.csv", skipped_df)
    summary = prepare_summary(cfg, catalog, index, split, dups, test_dups, skipped_df, relabel_summary, caches,
                              existing, box_model, pdir, clock)
    write_csv(pdir / "box_problems.csv", pd.read_csv(caches[0].dir / "box_problems.csv", dtype=str,
                                                     keep_default_na=False))
    write_json(pdir / "summary.json", summary)
    write_run_photos(out_dir)  # what identify needs of these photos, kept outside prepared/
    text = format_summary(summary, pdir)
    write_text(pdir / "summary.txt", text + "\n")
    if progress:
        print(text)
        if not cfg.data.local_cache_dir and not is_uri(cfg.output.dir) and on_network_filesystem(cache_root):
            print(f"note: {cache_root} is on a network filesystem; set data.local_cache_dir to a folder on "
                  "each node's local disk and trials read the caches from a copy there")
    local = None if is_uri(cfg.output.dir) else cfg.data.local_cache_dir  # a URI run's mirror is local already
    return open_prepared(pdir, index, summary, test_dups, local)


def hashed_items(cfg: Config, catalog, pdir: Path, progress: bool) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Every train and test photo with its size and perceptual hash (cached in ``hashes.csv``),
    and the frames of photos left out so far (the catalog's, then those that do not decode:
    an error under ``data.strict``)."""
    pc = cfg.prepare
    train = catalog.train[["image", "id", "path"]].assign(split="train")
    test = catalog.test[["image", "path"]].assign(split="test", id="")
    items = pd.concat([train, test], ignore_index=True)[["image", "split", "id", "path"]]
    items["path"] = items["path"].astype(str)
    items["id"] = items["id"].astype(str)
    hashes = hash_images(items["path"], method=pc.hash, hash_size=pc.hash_size,
                         cache_file=pdir / "hashes.csv", progress=progress)
    items = pd.concat([items, hashes[["width", "height", "hash", "error"]]], axis=1)
    skipped = [catalog.skipped[["image", "split", "path", "reason"]]] if len(catalog.skipped) else []
    bad = items[items["error"] != ""]
    if len(bad):
        if cfg.data.strict:
            first = bad.iloc[0]
            raise DataError(f"cannot decode image ({first['error']}).", file=first["path"],
                            fix="re-export or remove it, or run without --strict to skip corrupt images.")
        skipped.append(bad[["image", "split", "path"]].assign(reason=bad["error"]))
        items = items[items["error"] == ""].reset_index(drop=True)
    return items, skipped


def _relabel(cfg: Config, items: pd.DataFrame, pdir: Path, progress: bool) -> tuple[dict | None, set]:
    """With ``data.previous_root``: map an earlier release's labels onto this one's photos by
    hash (``label_map.csv``); returns the mapping's summary and the images it prefers for
    validation (None and none without it)."""
    if not cfg.data.previous_root:
        return None, set()
    pc = cfg.prepare
    prev = catalog_for(cfg.data.previous_root, cfg, progress)
    ph = hash_images(prev.train["path"].astype(str), method=pc.hash, hash_size=pc.hash_size,
                     cache_file=pdir / "hashes.csv", progress=progress)
    prev_frame = pd.concat([prev.train[["image", "id"]].reset_index(drop=True),
                            ph[["width", "height", "hash"]]], axis=1)
    rel = map_labels(items[items["split"] == "train"], prev_frame, max_distance=pc.dup_distance)
    write_mapping(rel, pdir)
    return rel.summary, rel.preferred


def cropped_caches(cfg: Config, items: pd.DataFrame, boxes, pdir: Path, skipped: list, progress: bool) -> list:
    """The cropped grey letterboxed image caches, one per stage size (largest first), from one
    decode per photo; ``crop_boxes.csv`` beside them. Photos the cache could not hold join
    ``skipped``."""
    sizes = cache_sizes(cfg)
    _write_crop_boxes(pdir / "crop_boxes.csv", boxes)
    caches = build_caches(items[["image", "split", "path"]], pdir / "cache", sizes=sizes,
                          boxes=boxes, box_margin=cfg.data.box_margin,
                          grayscale=cfg.prepare.grayscale, strict=cfg.data.strict, progress=progress,
                          workers=_threads(), keep=2 * len(sizes))
    cache_skipped = pd.read_csv(caches[0].dir / "skipped.csv", dtype=str, keep_default_na=False)
    if len(cache_skipped):
        skipped.append(cache_skipped)
    return caches


def split_and_index(cfg: Config, cache, items: pd.DataFrame, prefer: set, pdir: Path):
    """The leak-free split (``split.csv``) of what the cache holds — so no validation individual
    loses its training images to a skip — and ``index.csv``, one row per cached photo."""
    pc = cfg.prepare
    index = cache.index.merge(items[["image", "split", "id", "group"]], on=["image", "split"], how="left")
    tr = index[index["split"] == "train"]
    split = split_train(tr[["image", "id", "group"]], val_fraction=pc.val_fraction,
                        new_whale_val_fraction=pc.new_whale_val_fraction, folds=pc.folds,
                        seed=pc.seed, prefer_val=prefer, hold_out_new=pc.hold_out_new,
                        sampling=pc.val_sampling)
    write_split(split, pdir / "split.csv")
    index = index.merge(split[["image", "role", "fold", "held_out"]].assign(split="train"),
                        on=["image", "split"], how="left")
    is_test = index["split"] == "test"
    index.loc[is_test, "role"] = "test"
    index["fold"] = index["fold"].fillna(-1).astype(np.int64)
    index["id"] = index["id"].fillna("").astype(str)
    index["held_out"] = index["held_out"].fillna(False).astype(bool)
    index = index[["image", "split", "id", "role", "fold", "held_out", "group", "row", "path", "box"]]
    write_csv(pdir / "index.csv", index)
    return split, index


def _threads() -> int:
    """Decode threads for building the caches: this process's CPUs (cv2 and PIL release the GIL)."""
    return max(1, min(16, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def catalog_for(root, cfg: Config, progress: bool):
    """The catalog of ``root`` (images are checked by hashing and caching, not twice here)."""
    from .catalog import load_catalog

    return load_catalog(root, strict=cfg.data.strict, check_images=False, progress=progress)


def _load_catalog(cfg: Config, out_dir: Path, progress: bool):
    root = cfg.data.root
    if root is None:  # the embedded default: a synthetic set in the same layout
        from .synthetic import generate_synthetic

        syn = cfg.data.synthetic
        root = out_dir / "data"
        if not (root / "train.csv").is_file():
            generate_synthetic(root, individuals=syn.individuals, seed=syn.seed,
                               width=syn.image_width, height=syn.image_height, layout=syn.layout)
    return catalog_for(root, cfg, progress)


def _write_crop_boxes(path: Path, boxes) -> None:
    """The box every photo is cropped to (listed or predicted; none: whole frames), for the
    stages that read the original photos again (local-feature verification)."""
    rows = [(im, *b[:4]) for im, b in sorted(boxes.boxes.items())] if boxes is not None else []
    write_csv(path, pd.DataFrame(rows, columns=["image", "x0", "y0", "x1", "y1"]))


def _boxes_path(cfg: Config, root) -> Path | None:
    """``data.boxes`` as given, or relative to the data root when it is not found as given."""
    if not cfg.data.boxes:
        return None
    p = Path(cfg.data.boxes)
    if not p.is_absolute() and not p.exists() and (Path(root) / p).exists():
        return Path(root) / p
    return p
