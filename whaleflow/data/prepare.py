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

import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Config, cache_sizes
from ..errors import DataError
from ..io import write_csv, write_json, write_text
from ..labels import NEW_WHALE
from ..storage import is_uri
from .cache import build_caches, cache_bytes
from .local_cache import on_network_filesystem
from .dedup import find_duplicates, hash_images, write_reports
from .prepared import Prepared, load_prepared, open_prepared  # noqa: F401  (load_prepared: re-exported)
from .relabel import map_labels, write_mapping
from .run_photos import write_run_photos
from ..locate.box_source import box_model_line, resolve_boxes
from .split import split_summary, split_train, write_split

log = logging.getLogger("whaleflow.data")

#: prepare warns when validation's share of new individuals and the expected prior differ by more
PRIOR_TOLERANCE = 0.10


def prepare(cfg: Config, out_dir: str | Path, *, catalog=None, progress: bool = True) -> Prepared:
    """Prepare ``cfg.data.root`` (or ``catalog``) into ``out_dir/prepared`` and open it."""
    t0 = time.perf_counter()
    pdir = Path(out_dir) / "prepared"
    pdir.mkdir(parents=True, exist_ok=True)
    pc = cfg.prepare
    if catalog is None:
        catalog = _load_catalog(cfg, Path(out_dir), progress)
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
    t_hash = time.perf_counter()

    dups = find_duplicates(items, max_distance=pc.dup_distance)
    items["group"] = dups.images["group"].to_numpy()
    write_reports(dups, pdir)

    relabel_summary, prefer = None, set()
    if cfg.data.previous_root:
        prev = catalog_for(cfg.data.previous_root, cfg, progress)
        ph = hash_images(prev.train["path"].astype(str), method=pc.hash, hash_size=pc.hash_size,
                         cache_file=pdir / "hashes.csv", progress=progress)
        prev_frame = pd.concat([prev.train[["image", "id"]].reset_index(drop=True),
                                ph[["width", "height", "hash"]]], axis=1)
        rel = map_labels(items[items["split"] == "train"], prev_frame, max_distance=pc.dup_distance)
        write_mapping(rel, pdir)
        relabel_summary, prefer = rel.summary, rel.preferred

    t_dedup = time.perf_counter()
    sizes = cache_sizes(cfg)
    cache_root = pdir / "cache"
    existing = {p.name for p in cache_root.iterdir()} if cache_root.is_dir() else set()
    boxes, box_model = resolve_boxes(cfg, items, _boxes_path(cfg, catalog.root), Path(out_dir), pdir,
                                     progress=progress)
    t_boxes = time.perf_counter()
    _write_crop_boxes(pdir / "crop_boxes.csv", boxes)
    caches = build_caches(items[["image", "split", "path"]], cache_root, sizes=sizes,
                          boxes=boxes, box_margin=cfg.data.box_margin,
                          grayscale=pc.grayscale, strict=cfg.data.strict, progress=progress,
                          workers=_threads(), keep=2 * len(sizes))
    cache = caches[0]  # the largest: what the report's thumbnails read
    size = cache.shape
    cache_skipped = pd.read_csv(cache.dir / "skipped.csv", dtype=str, keep_default_na=False)
    if len(cache_skipped):
        skipped.append(cache_skipped)
    t_cache = time.perf_counter()

    # Split what the cache holds, so no val individual loses its training images to a skip.
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
    # Drop leak entries for test images the cache skipped: nothing can be predicted for them.
    cached_test = set(index.loc[is_test, "image"])
    test_dups = {k: v for k, v in dups.test_duplicates.items() if k in cached_test}
    write_json(pdir / "test_duplicates.json", test_dups)
    skipped_df = pd.concat(skipped, ignore_index=True) if skipped else \
        pd.DataFrame(columns=["image", "split", "path", "reason"])
    write_csv(pdir / "skipped.csv", skipped_df)

    train_idx = index[~is_test]
    split_counts = split_summary(split)
    prior = cfg.predict.new_prior if cfg.predict.new_prior is not None else pc.new_whale_val_fraction
    warnings = prior_warnings(split_counts, prior, "predict.new_prior" if cfg.predict.new_prior is not None
                              else "prepare.new_whale_val_fraction")
    for w in warnings:
        log.warning("%s", w)
    summary = {
        "data_root": str(catalog.root),
        "layout": catalog.layout,
        "images": {"train": int((~is_test).sum()), "test": int(is_test.sum()),
                   "individuals": int(train_idx.loc[train_idx["id"] != NEW_WHALE, "id"].nunique()),
                   "new_whale_train": int((train_idx["id"] == NEW_WHALE).sum())},
        "skipped": {"total": int(len(skipped_df)),
                    "by_split": {k: int(v) for k, v in skipped_df["split"].value_counts().items()}},
        "duplicates": dups.summary,
        "conflicts": int(len(dups.conflicts)),
        "leaks": int(len(test_dups)),
        "split": split_counts,
        "new_prior": prior,
        "warnings": warnings,
        "relabel": relabel_summary,
        "boxes": {**cache.meta["boxes"], "problems": cache.meta["box_problems"],
                  "file": cache.meta["boxes_file"], "margin": cache.meta["box_margin"], "model": box_model},
        "cache": {"dir": str(cache.dir.relative_to(pdir)), "size": list(size), "images": int(cache.meta["n"]),
                  "reused": cache.dir.name in existing, "bytes": cache_bytes(cache)},
        "caches": [{"dir": str(c.dir.relative_to(pdir)), "size": list(c.shape), "bytes": cache_bytes(c),
                    "reused": c.dir.name in existing} for c in caches],
        "settings": {"hash": pc.hash, "hash_size": pc.hash_size, "dup_distance": pc.dup_distance,
                     "val_fraction": pc.val_fraction, "new_whale_val_fraction": pc.new_whale_val_fraction,
                     "hold_out_new": pc.hold_out_new, "val_sampling": pc.val_sampling,
                     "folds": pc.folds, "seed": pc.seed, "grayscale": pc.grayscale},
        "seconds": {"hash": round(t_hash - t0, 3), "dedup": round(t_dedup - t_hash, 3),
                    "boxes": round(t_boxes - t_dedup, 3), "cache": round(t_cache - t_boxes, 3), "split": round(time.perf_counter() - t_cache, 3),
                    "total": round(time.perf_counter() - t0, 3)},
    }
    write_csv(pdir / "box_problems.csv", pd.read_csv(cache.dir / "box_problems.csv", dtype=str,
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


def _threads() -> int:
    """Decode threads for building the caches: this process's CPUs (cv2 and PIL release the GIL)."""
    return max(1, min(16, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def format_summary(s: dict, pdir: Path | None = None) -> str:
    """The short printed summary: counts, duplicates, leaks, split sizes, boxes, cache."""
    im, d, f0 = s["images"], s["duplicates"], s["split"]["fold_0"]
    lines = [
        f"prepared {im['train']} train images ({im['individuals']} individuals, {im['new_whale_train']} "
        f"new_whale) + {im['test']} test images" + (f" → {pdir}" if pdir else ""),
        f"skipped: {s['skipped']['total']} unreadable images" if s["skipped"]["total"] else "skipped: none",
        f"duplicates: {d['groups']} groups ({d['images_in_groups']} images; {d['train_groups']} in train, "
        f"{d['train_test_groups']} train+test), {s['conflicts']} with conflicting labels"
        + (f", {d['new_whale_with_known_groups']} new_whale photos duplicating a labelled one"
           if d.get("new_whale_with_known_groups") else ""),
        f"leaks: {s['leaks']} test images duplicate a train image (see leaks.csv)",
        f"split (fold 0 of {s['split']['folds']}): {f0['train_images']} train / {f0['val_images']} val "
        f"({f0['val_individuals']} individuals, {f0['val_new_whale']} new"
        + (f", of them {f0['val_held_out']} photos of {f0['val_held_out_individuals']} individuals held out as new"
           if f0.get("val_held_out") else "")
        + f"; {100 * f0.get('val_new_share', 0.0):.0f} % new), {f0['unused']} unused",
    ]
    lines += [f"warning: {w}" for w in s.get("warnings", [])]
    b = s["boxes"]
    if b.get("file"):
        lines.append(f"boxes: {b['box']} cropped, {b.get('predicted', 0)} to a predicted box, {b['clamped']} clamped, "
                     f"{b['missing']} without a box, {b['invalid']} impossible ({b['problems']} listed in "
                     "box_problems.csv)")
    if b.get("model"):
        lines.append(box_model_line(b["model"]))
    c = s["cache"]
    parts = []
    for e in s.get("caches") or [c]:
        h, w = e["size"] if isinstance(e["size"], list) else (e["size"], e["size"])
        disk = f"{_gb(e['bytes'])}, " if "bytes" in e else ""
        parts.append(f"{h}×{w} ({disk}{'reused' if e['reused'] else 'built'})")
    total = sum(e.get("bytes", 0) for e in s.get("caches") or [c])
    lines.append(f"cache: {c['images']} images at {', '.join(parts)} (height × width)"
                 + (f", {_gb(total)} on disk" if total else "") + f"; prepare took {s['seconds']['total']:.1f} s")
    if s.get("relabel"):
        r = s["relabel"]
        lines.append(f"relabel: {r['matched_images']} of {r['previous_images']} previous images matched, "
                     f"{r['mapped_ids']} old ids mapped ({r['renamed_ids']} renamed), "
                     f"{r['preferred_val_images']} images preferred for validation")
    return "\n".join(lines)


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def prior_warnings(split_counts: dict, prior: float, key: str) -> list[str]:
    """One line per fold whose validation share of new individuals is more than
    :data:`PRIOR_TOLERANCE` away from the prior the threshold assumes."""
    out = []
    for f in range(int(split_counts.get("folds", 1))):
        c = split_counts.get(f"fold_{f}", {})
        if not c.get("val_images"):
            continue
        share = float(c.get("val_new_share", 0.0))
        if abs(share - prior) > PRIOR_TOLERANCE:
            out.append(f"fold {f}: validation holds {100 * share:.0f} % new individuals but {key} expects "
                       f"{100 * prior:.0f} %; a threshold tuned on it will not carry over to test. Fix: set "
                       f"{key} to the share you expect, or allow prepare.hold_out_new, or add new-individual photos")
    return out


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
