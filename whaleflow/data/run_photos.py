"""``RUN_DIR/photos.csv``: every photo a run prepared, with what identify needs of it.

``whaleflow identify`` scores new photos with a run's exported models and galleries
(``trials/<name>/model.pt`` and ``gallery.npz``). A few of its steps need the run's own
photos beyond their vectors: the near-duplicate shortcut compares a new photo's perceptual
hash with the training photos' (as ``prepare`` found the test set's leaks), local-feature
verification reads gallery photos again cropped to the box the run cropped them to, and the
review page shows them. ``prepared/`` holds all of that, next to image caches that can be
gigabytes; this one table keeps it outside, so a run folder shipped without ``prepared/``
(nor ``tune/`` or checkpoints) still identifies photos as its submission did.

One row per photo of ``prepared/index.csv`` (train, validation and test): ``image``,
``split``, ``id`` (the catalogue's), ``role``, ``held_out``, ``group``, ``path``; the crop box
``x0, y0, x1, y1`` (empty: the whole frame); ``hash``, ``width``, ``height`` by the run's hash
settings (empty hash: none). ``prepare`` writes it; a run prepared before it existed gets it
from its ``prepared/`` on first read (:func:`read_run_photos`).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..io import write_csv

__all__ = ["RUN_PHOTOS", "write_run_photos", "read_run_photos"]

RUN_PHOTOS = "photos.csv"
COLUMNS = ["image", "split", "id", "role", "held_out", "group", "path", "x0", "y0", "x1", "y1",
           "hash", "width", "height"]


def write_run_photos(run_dir: str | Path) -> Path:
    """Write ``RUN_DIR/photos.csv`` from ``RUN_DIR/prepared`` (its index, crop boxes and hash cache,
    the hashes by the settings ``summary.json`` records)."""
    run_dir = Path(run_dir)
    pdir = run_dir / "prepared"
    settings = json.loads((pdir / "summary.json").read_text(encoding="utf-8")).get("settings", {})
    index = pd.read_csv(pdir / "index.csv", dtype=str, keep_default_na=False)
    if "held_out" not in index:
        index["held_out"] = "False"
    if "group" not in index:
        index["group"] = index["image"]
    boxes = pd.read_csv(pdir / "crop_boxes.csv", dtype={"image": str}) if (pdir / "crop_boxes.csv").is_file() \
        else pd.DataFrame(columns=["image", "x0", "y0", "x1", "y1"])
    hashes = pd.read_csv(pdir / "hashes.csv", dtype=str, keep_default_na=False) if (pdir / "hashes.csv").is_file() \
        else pd.DataFrame(columns=["path", "method", "hash_size", "hash", "width", "height"])
    hashes = hashes[(hashes["method"] == str(settings.get("hash", "phash")))
                    & (hashes["hash_size"] == str(settings.get("hash_size", 8))) & (hashes["hash"] != "")]
    table = index.merge(boxes.drop_duplicates("image"), on="image", how="left")
    table = table.merge(hashes.drop_duplicates("path")[["path", "hash", "width", "height"]], on="path", how="left")
    return write_csv(run_dir / RUN_PHOTOS, table[COLUMNS])


def read_run_photos(run_dir: str | Path) -> pd.DataFrame:
    """``RUN_DIR/photos.csv`` (written from ``prepared/`` first when the run predates it). Empty crop
    boxes are NaN, empty hashes ''."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_PHOTOS
    if not path.is_file():
        if not (run_dir / "prepared" / "summary.json").is_file():
            raise DataError("the run folder lists none of its photos (photos.csv), nor has a prepared/ folder.",
                            file=path, fix="copy photos.csv with the run folder, or run `whaleflow prepare` for it.")
        write_run_photos(run_dir)
    table = pd.read_csv(path, dtype={c: str for c in ("image", "split", "id", "role", "held_out", "group", "path",
                                                      "hash")}, keep_default_na=False, na_values={"x0": [""],
                        "y0": [""], "x1": [""], "y1": [""], "width": [""], "height": [""]})
    missing = [c for c in COLUMNS if c not in table]
    if missing:
        raise DataError(f"photos.csv lacks the columns {', '.join(missing)}.", file=path,
                        fix="delete it; the next identify writes it again from prepared/.")
    return table
