"""``--format catalog``: one folder per individual with its photos, cropped to their boxes, and a CSV.

``OUT/<individual>/<image>``: the photo cropped to its box when one is known (the run's
box file for its own photos, ``--boxes`` for enrolled ones), else the whole photo, as
JPEG; ``OUT/catalog.csv``: ``individual, image, file`` (relative to ``OUT``),
``source`` (training / enrolled), ``cropped``, the box, ``date`` and ``path`` (the
original). An individual's name is used as its folder name with any character that
is not a letter, digit, ``-``, ``_`` or ``.`` replaced by ``_``. An unreadable photo
is left out and counted.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import write_bytes, write_csv
from . import register


def folder_name(ident: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", str(ident)).strip(".")
    return safe or "_"


def _crop(path: str, box) -> tuple[bytes, bool]:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        cropped = not np.isnan(box).any()
        if cropped:
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            im = im.crop((max(0, x0), max(0, y0), min(im.width, x1), min(im.height, y1)))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=95)
        return buf.getvalue(), cropped


@register("catalog")
def write_catalog(records: pd.DataFrame, out: Path, options) -> str:
    rows, skipped = [], 0
    for rec in records.to_dict("records"):
        box = np.array([rec["x0"], rec["y0"], rec["x1"], rec["y1"]], float)
        try:
            data, cropped = _crop(rec["path"], box)
        except OSError:
            skipped += 1
            continue
        rel = Path(folder_name(rec["id"])) / (Path(rec["image"]).stem + ".jpg")
        write_bytes(out / rel, data)
        rows.append({"individual": rec["id"], "image": rec["image"], "file": rel.as_posix(), "source": rec["source"],
                     "cropped": cropped, "x0": rec["x0"], "y0": rec["y0"], "x1": rec["x1"], "y1": rec["y1"],
                     "date": "" if pd.isna(rec["date"]) else pd.Timestamp(rec["date"]).isoformat(),
                     "path": rec["path"]})
    table = pd.DataFrame(rows, columns=["individual", "image", "file", "source", "cropped", "x0", "y0", "x1", "y1",
                                        "date", "path"])
    write_csv(out / "catalog.csv", table)
    return (f"catalogue of {table['individual'].nunique()} individual(s), {len(table)} photo(s) "
            f"({int(table['cropped'].sum())} cropped to their box) → {out}"
            + (f"; {skipped} unreadable photo(s) left out" if skipped else ""))
