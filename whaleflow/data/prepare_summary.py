"""What ``prepare`` reports: ``prepared/summary.json`` (every count, the settings, the
timings), its printed form (``summary.txt``) and the warning when validation's share of
new individuals will not carry a threshold over to test."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from ..config import Config
from ..labels import NEW_WHALE
from ..locate.box_source import box_model_line
from .cache import cache_bytes
from .split_report import split_summary

__all__ = ["PRIOR_TOLERANCE", "format_summary", "prepare_summary", "prior_warnings"]

log = logging.getLogger("whaleflow.data")

#: prepare warns when validation's share of new individuals and the expected prior differ by more
PRIOR_TOLERANCE = 0.10


def prepare_summary(cfg: Config, catalog, index: pd.DataFrame, split: pd.DataFrame, dups, test_dups: dict,
                    skipped_df: pd.DataFrame, relabel_summary: dict | None, caches: list, existing: set,
                    box_model, pdir: Path, clock: dict[str, float]) -> dict:
    """``summary.json``: images, skips, duplicates, leaks, split counts (with the prior
    warnings, also logged), boxes, caches, the settings and each step's seconds (``clock``:
    when each step ended, from ``start``)."""
    pc = cfg.prepare
    is_test = index["split"] == "test"
    train_idx = index[~is_test]
    cache = caches[0]  # the largest: what the report's thumbnails read
    split_counts = split_summary(split)
    prior = cfg.predict.new_prior if cfg.predict.new_prior is not None else pc.new_whale_val_fraction
    warnings = prior_warnings(split_counts, prior, "predict.new_prior" if cfg.predict.new_prior is not None
                              else "prepare.new_whale_val_fraction")
    for w in warnings:
        log.warning("%s", w)
    t0, now = clock["start"], time.perf_counter()
    return {
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
        "cache": {"dir": str(cache.dir.relative_to(pdir)), "size": list(cache.shape), "images": int(cache.meta["n"]),
                  "reused": cache.dir.name in existing, "bytes": cache_bytes(cache)},
        "caches": [{"dir": str(c.dir.relative_to(pdir)), "size": list(c.shape), "bytes": cache_bytes(c),
                    "reused": c.dir.name in existing} for c in caches],
        "settings": {"hash": pc.hash, "hash_size": pc.hash_size, "dup_distance": pc.dup_distance,
                     "val_fraction": pc.val_fraction, "new_whale_val_fraction": pc.new_whale_val_fraction,
                     "hold_out_new": pc.hold_out_new, "val_sampling": pc.val_sampling,
                     "folds": pc.folds, "seed": pc.seed, "grayscale": pc.grayscale},
        "seconds": {"hash": round(clock["hash"] - t0, 3), "dedup": round(clock["dedup"] - clock["hash"], 3),
                    "boxes": round(clock["boxes"] - clock["dedup"], 3), "cache": round(clock["cache"] - clock["boxes"], 3),
                    "split": round(now - clock["cache"], 3), "total": round(now - t0, 3)},
    }


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
