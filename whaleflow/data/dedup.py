"""Perceptual hashes and near-duplicate groups.

HWI holds the same photo several times (re-uploads, re-encodes, resizes), inside
train and across train and test. Left alone, those twins make validation lie and
hide free answers for the test set. Every image gets a perceptual hash (imagehash,
pHash by default); two images whose hashes differ in at most ``dup_distance`` bits
and whose aspect ratios agree are near-duplicates, and the connected components of
that relation are the duplicate groups.

Hashes are cached in a CSV keyed by (path, file size, mtime, method, hash size), so a
second ``prepare`` reads them back instead of decoding 25k images. Pairs are found
with a vectorised XOR + popcount over the hashes packed into uint64 words, one block
of rows at a time: exact, and about a second for 25k images (no Python N² loop).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import imagehash
import numpy as np
import pandas as pd
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..errors import ConfigError
from ..io import write_csv
from ..labels import NEW_WHALE
from .cache import parallel_map

HASHES = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "ahash": imagehash.average_hash,
    "whash": imagehash.whash,
}
_CACHE_COLS = ["path", "size", "mtime_ns", "method", "hash_size", "width", "height", "hash", "error"]


def hash_image(path: str | Path, method: str = "phash", hash_size: int = 8) -> tuple[int, int, str]:
    """(width, height, hex hash) of one image; raises on an unreadable file."""
    fn = HASHES[method]
    with Image.open(path) as im:
        width, height = im.size
        # JPEG DCT scaling: decode at ≥8× the hash grid instead of full size (several × faster).
        im.draft("L", (hash_size * 8, hash_size * 8))
        h = fn(im.convert("L"), hash_size=hash_size)
    bits = np.asarray(h.hash, dtype=bool).ravel()
    return width, height, np.packbits(bits).tobytes().hex()


def hash_images(
    paths: Sequence[str | Path],
    *,
    method: str = "phash",
    hash_size: int = 8,
    cache_file: str | Path | None = None,
    workers: int = 2,
    progress: bool = False,
) -> pd.DataFrame:
    """Hash every path (in parallel), reusing ``cache_file`` entries whose file is unchanged.

    Returns one row per path, in order: path, width, height, hash (hex, '' on error),
    error ('' or why the image could not be read). The cache keeps entries for other
    paths too, so one file serves the current and a previous release.
    """
    if method not in HASHES:
        raise ConfigError(f"prepare.hash: unknown hash {method!r}. Known: {', '.join(sorted(HASHES))}.")
    if hash_size < 2:
        raise ConfigError(f"prepare.hash_size must be ≥ 2, got {hash_size}.")
    paths = [str(p) for p in paths]
    stats = []
    for p in paths:
        try:
            st = os.stat(p)
            stats.append((st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append((-1, -1))
    cache = _read_cache(cache_file)
    known = {}
    if len(cache):
        mine = cache[(cache["method"] == method) & (cache["hash_size"] == hash_size)]
        known = {r.path: r for r in mine.itertuples(index=False)}

    rows: list[dict] = [{}] * len(paths)
    todo = []
    for i, (p, (size, mtime)) in enumerate(zip(paths, stats)):
        r = known.get(p)
        if r is not None and r.size == size and r.mtime_ns == mtime:
            rows[i] = {"width": r.width, "height": r.height, "hash": r.hash, "error": r.error}
        else:
            todo.append(i)

    def work(i: int) -> dict:
        try:
            w, h, hx = hash_image(paths[i], method, hash_size)
            return {"width": w, "height": h, "hash": hx, "error": ""}
        except Exception as exc:  # corrupt or unreadable: recorded, never fatal here
            return {"width": 0, "height": 0, "hash": "", "error": f"{type(exc).__name__}: {exc}"}

    for i, res in zip(todo, parallel_map(work, todo, workers=workers, progress=progress,
                                         description="hashing images")):
        rows[i] = res
    out = pd.DataFrame(rows, columns=["width", "height", "hash", "error"])
    out.insert(0, "path", paths)
    out["hash"] = out["hash"].fillna("").astype(str)
    out["error"] = out["error"].fillna("").astype(str)
    if cache_file is not None and (todo or not len(cache)):
        fresh = out.assign(size=[s for s, _ in stats], mtime_ns=[m for _, m in stats],
                           method=method, hash_size=hash_size)[_CACHE_COLS]
        keep = cache[~cache["path"].isin(set(paths)) | (cache["method"] != method)
                     | (cache["hash_size"] != hash_size)] if len(cache) else cache
        write_csv(cache_file, pd.concat([keep, fresh], ignore_index=True) if len(keep) else fresh)
    return out


def _read_cache(cache_file) -> pd.DataFrame:
    if cache_file is None or not Path(cache_file).is_file():
        return pd.DataFrame(columns=_CACHE_COLS)
    try:
        cache = pd.read_csv(cache_file, dtype={"path": str, "hash": str, "error": str, "method": str},
                            keep_default_na=False)
    except Exception:  # a damaged cache is only a cache: rebuild it
        return pd.DataFrame(columns=_CACHE_COLS)
    if list(cache.columns) != _CACHE_COLS:
        return pd.DataFrame(columns=_CACHE_COLS)
    return cache


def pack_hashes(hexes: Sequence[str]) -> np.ndarray:
    """Hex hashes (all the same length) → (n, W) uint64 words for popcount."""
    if len(hexes) == 0:
        return np.zeros((0, 1), dtype=np.uint64)
    raw = np.frombuffer(b"".join(bytes.fromhex(h) for h in hexes), dtype=np.uint8)
    raw = raw.reshape(len(hexes), -1)
    pad = (-raw.shape[1]) % 8
    if pad:
        raw = np.concatenate([raw, np.zeros((len(hexes), pad), np.uint8)], axis=1)
    return np.ascontiguousarray(raw).view(np.uint64)


def hamming_pairs(a: np.ndarray, max_distance: int, b: np.ndarray | None = None,
                  block_elems: int = 1 << 22) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs within ``max_distance`` bits: (i, j, distance).

    With ``b`` None, pairs i < j inside ``a``; otherwise every (i in a, j in b).
    """
    other = a if b is None else b
    m = len(other)
    if len(a) == 0 or m == 0:
        e = np.zeros(0, np.int64)
        return e, e, e
    step = max(1, block_elems // max(1, m * a.shape[1]))
    out_i, out_j, out_d = [], [], []
    for s in range(0, len(a), step):
        blk = a[s:s + step]
        start = s if b is None else 0  # triangle: only columns ≥ the block's first row
        dist = np.zeros((len(blk), m - start), dtype=np.uint16)
        for w in range(a.shape[1]):
            dist += np.bitwise_count(blk[:, w, None] ^ other[None, start:, w])
        ii, jj = np.nonzero(dist <= max_distance)
        jj = jj + start
        ii = ii + s
        keep = ii < jj if b is None else slice(None)
        out_i.append(ii[keep]); out_j.append(jj[keep]); out_d.append(dist[ii[keep] - s, jj[keep] - start])
    return (np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64),
            np.concatenate(out_d).astype(np.int64))


def aspect_ok(w1, h1, w2, h2, max_ratio: float) -> np.ndarray:
    """Aspect ratios agree within ``max_ratio`` (a resize keeps it; a different shot rarely does)."""
    a1 = np.asarray(w1, float) / np.maximum(np.asarray(h1, float), 1)
    a2 = np.asarray(w2, float) / np.maximum(np.asarray(h2, float), 1)
    return np.maximum(a1, a2) / np.maximum(np.minimum(a1, a2), 1e-9) <= max_ratio


@dataclass
class Duplicates:
    """Near-duplicate groups and what they reveal."""

    images: pd.DataFrame      # input rows + group, group_size
    duplicates: pd.DataFrame  # images in groups of ≥2: group, kind, conflict, image, split, id
    conflicts: pd.DataFrame   # group, ids, images — train groups with ≥2 known ids
    leaks: pd.DataFrame       # test image, group, train images, train ids
    test_duplicates: dict[str, list[str]] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


def find_duplicates(frame: pd.DataFrame, *, max_distance: int = 4, max_aspect_ratio: float = 1.2,
                    new_whale: str = NEW_WHALE) -> Duplicates:
    """Group near-duplicates of ``frame`` (image, split, id, hash, width, height).

    ``split`` is 'train' or 'test'; test rows have id ''. Rows without a hash (corrupt
    images) form groups of their own.
    """
    df = frame.reset_index(drop=True).copy()
    df["id"] = df["id"].fillna("").astype(str)
    ok = (df["hash"].astype(str) != "").to_numpy()
    idx = np.flatnonzero(ok)
    words = pack_hashes(df["hash"].to_numpy()[idx].tolist())
    i, j, _ = hamming_pairs(words, max_distance)
    i, j = idx[i], idx[j]
    w, h = df["width"].to_numpy(), df["height"].to_numpy()
    good = aspect_ok(w[i], h[i], w[j], h[j], max_aspect_ratio)
    i, j = i[good], j[good]
    n = len(df)
    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    df["group"] = labels.astype(np.int64)
    df["group_size"] = df.groupby("group")["image"].transform("size").astype(np.int64)

    multi = df[df["group_size"] > 1].copy()
    kinds, conflicts, leaks, test_dups, mixed = {}, [], [], {}, 0
    for g, sub in multi.groupby("group", sort=True):
        splits = set(sub["split"])
        kinds[g] = "train+test" if len(splits) == 2 else next(iter(splits))
        train = sub[sub["split"] == "train"]
        known = sorted(set(train["id"]) - {new_whale})
        mixed += int(bool(known) and (train["id"] == new_whale).any())
        if len(known) > 1:
            conflicts.append({"group": g, "ids": " ".join(known), "images": " ".join(train["image"])})
        if len(train) and (sub["split"] == "test").any():
            counts = train["id"].value_counts()
            labels_sorted = sorted(counts.index, key=lambda k: (-counts[k], k == new_whale, k))
            for img in sub.loc[sub["split"] == "test", "image"]:
                test_dups[img] = list(labels_sorted)
                leaks.append({"image": img, "group": g, "train_images": " ".join(train["image"]),
                              "train_ids": " ".join(labels_sorted)})
    conflict_groups = {c["group"] for c in conflicts}
    multi["kind"] = multi["group"].map(kinds)
    multi["conflict"] = multi["group"].isin(conflict_groups)
    dup_cols = ["group", "kind", "conflict", "image", "split", "id"] + \
        [c for c in ("hash", "width", "height") if c in multi.columns]
    duplicates = multi[dup_cols].sort_values(["group", "split", "image"], kind="stable")
    conflicts_df = pd.DataFrame(conflicts, columns=["group", "ids", "images"])
    leaks_df = pd.DataFrame(leaks, columns=["image", "group", "train_images", "train_ids"])
    summary = {
        "groups": int(len(kinds)),
        "images_in_groups": int(len(multi)),
        "train_groups": int(sum(1 for k in kinds.values() if k == "train")),
        "test_groups": int(sum(1 for k in kinds.values() if k == "test")),
        "train_test_groups": int(sum(1 for k in kinds.values() if k == "train+test")),
        "conflicting_groups": int(len(conflicts_df)),
        "new_whale_with_known_groups": int(mixed),  # a new_whale photo that duplicates a labelled one
        "leaked_test_images": int(len(leaks_df)),
        "max_distance": int(max_distance),
        "unhashed": int((~ok).sum()),
    }
    return Duplicates(df, duplicates.reset_index(drop=True), conflicts_df, leaks_df, test_dups, summary)


def write_reports(dups: Duplicates, folder: str | Path) -> None:
    """``duplicates.csv``, ``conflicts.csv`` and ``leaks.csv`` in ``folder``."""
    folder = Path(folder)
    write_csv(folder / "duplicates.csv", dups.duplicates)
    write_csv(folder / "conflicts.csv", dups.conflicts)
    write_csv(folder / "leaks.csv", dups.leaks)
