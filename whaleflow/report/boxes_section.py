"""The report's look at predicted boxes: each drawn on its photo, the lowest scores first.

A box model (or ``data.boxes: auto``) crops photos nobody drew a box for; before trusting
a run a user should see where those crops went wrong. The box model's score estimates
the IoU of its own box, so sorting by it puts the likely failures on top.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, UnidentifiedImageError

from .gallery import _tile, thumbnail_uri
from .html import esc, note

#: how many predicted boxes the report draws
SHOWN = 16


def _drawn(path: str, box) -> Image.Image | None:
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError):  # a photo moved since prepare: the tile says "no image", the report still builds
        return None
    width = max(2, round(max(im.size) / 150))
    ImageDraw.Draw(im).rectangle([float(v) for v in box], outline=(255, 64, 32), width=width)
    return im


def predicted_boxes_html(prepared_dir: Path, index: pd.DataFrame | None, shown: int = SHOWN) -> str:
    """Tiles of the ``shown`` lowest-scoring predicted boxes, or '' when the run predicted none."""
    path = Path(prepared_dir) / "boxes_predicted.csv"
    if not path.is_file():
        return ""
    pred = pd.read_csv(path, dtype={"Image": str}, keep_default_na=False)
    if not len(pred):
        return ""
    paths = dict(zip(index["image"], index["path"])) if index is not None and "path" in index else {}
    worst = pred.sort_values(["score", "Image"]).head(shown)
    tiles = []
    for r in worst.itertuples(index=False):
        im = _drawn(paths[r.Image], (r.x0, r.y0, r.x1, r.y1)) if r.Image in paths else None
        tiles.append(_tile(r.Image, thumbnail_uri(im) if im is not None else None, caption=f"score {r.score:.2f}"))
    lead = (f"The {len(worst)} lowest-scoring of {len(pred)} predicted boxes (the score estimates the box's IoU "
            "with the true one). A box that misses the animal means a crop the models never saw it in: fix it in "
            "the box file (or add boxes like it) and prepare again.")
    return (f"<h3>Predicted boxes, lowest scores first</h3>{note(esc(lead), info=True)}"
            f'<div class="tiles">{"".join(tiles)}</div>')
