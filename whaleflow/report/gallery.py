"""The retrieval gallery: validation queries beside the ensemble's top-5, worst misses first.

Each row shows the query photo, the five ranked predictions (a representative
training photo of each predicted individual; ``new_whale`` as a labelled placeholder
tile), and the right answer. The prediction that matches the truth is framed green.

Order (:func:`select_queries`): first the misses (truth nowhere in the top-5), the
most confidently wrong first (highest top-1 blend score: the model was sure of a
wrong individual); then late hits (truth at position 5 … 2); then a few clean hits
for contrast. That puts what most needs a person's eyes at the top.

Pixels come from the prepared image cache (what the models saw: cropped, grey,
letterboxed) when it is large enough for a thumbnail, else from the original file.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from PIL import Image

from ..labels import NEW_WHALE

THUMB = 112
MIN_CACHE_SIZE = 96  # a smaller cache looks blurry as a thumbnail; the original file is used instead


def select_queries(vp: pd.DataFrame, *, misses: int = 24, late: int = 12, hits: int = 6) -> pd.DataFrame:
    """The gallery's rows in display order, with a ``kind`` column (miss / late / hit)."""
    if vp is None or not len(vp):
        return pd.DataFrame(columns=["image", "truth", "top5", "hit_position", "kind"])
    v = vp.copy()
    v["_score"] = v["top1_score"] if "top1_score" in v else 0.0
    v["_score"] = pd.to_numeric(v["_score"], errors="coerce").fillna(-np.inf)
    miss = v[v["hit_position"] == 0].sort_values(["_score", "image"], ascending=[False, True])
    lat = v[v["hit_position"] > 1].sort_values(["hit_position", "_score", "image"], ascending=[False, False, True])
    hit = v[v["hit_position"] == 1].sort_values(["_score", "image"], ascending=[False, True])
    parts = [miss.head(misses).assign(kind="miss"), lat.head(late).assign(kind="late"),
             hit.head(hits).assign(kind="hit")]
    out = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else v.head(0)
    return out.drop(columns=["_score"])


class ImageSource:
    """Thumbnails by image name, from the prepared cache or the original files."""

    def __init__(self, prepared_dir: Path, index: Optional[pd.DataFrame], data: dict):
        self.index = index
        self.rows: dict[str, int] = {}
        self.paths: dict[str, str] = {}
        self.cache = None
        if index is not None and len(index):
            # a name in both splits maps to its training image: dict() keeps the last one, train last
            train_last = index.sort_values("split", key=lambda s: s == "train", kind="stable")
            if "row" in index:
                self.rows = dict(zip(train_last["image"], pd.to_numeric(train_last["row"], errors="coerce")))
            if "path" in index:
                self.paths = dict(zip(train_last["image"], train_last["path"]))
        cache_dir = (data.get("cache") or {}).get("dir")
        if cache_dir and (prepared_dir / cache_dir / "meta.json").is_file():
            try:
                from ..data.cache import open_cache

                self.cache = open_cache(prepared_dir / cache_dir)
            except Exception:  # an unreadable cache only costs the thumbnails their source
                self.cache = None
        self._memo: dict[str, Optional[str]] = {}

    def _pixels(self, image: str) -> Optional[Image.Image]:
        row = self.rows.get(image)
        cache_ok = self.cache is not None and row is not None and np.isfinite(row) and 0 <= row < len(self.cache.images)
        path = self.paths.get(image)
        if cache_ok and (self.cache.size >= MIN_CACHE_SIZE or not path or not Path(path).is_file()):
            arr = np.asarray(self.cache.images[int(row)])
            return Image.fromarray(arr)
        if path and Path(path).is_file():
            try:
                with Image.open(path) as im:
                    return im.convert("L") if im.mode not in ("L", "RGB") else im.copy()
            except OSError:
                return None
        return None

    def data_uri(self, image: str) -> Optional[str]:
        """A ``data:image/jpeg`` URI of the thumbnail of ``image``, or ``None`` without pixels."""
        if image not in self._memo:
            im = self._pixels(image)
            self._memo[image] = None if im is None else thumbnail_uri(im)
        return self._memo[image]

    def array(self, image: str) -> Optional[np.ndarray]:
        im = self._pixels(image)
        return None if im is None else np.asarray(im.convert("L"))


def thumbnail_uri(im: Image.Image) -> str:
    """A ``data:image/jpeg`` URI of a tile-sized copy of ``im`` (tiny images are upscaled so
    tiles are the same size)."""
    im = im.copy()
    im.thumbnail((THUMB * 2, THUMB), Image.LANCZOS if max(im.size) > THUMB else Image.BICUBIC)
    if max(im.size) < THUMB:
        s = THUMB / max(im.size)
        im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.BICUBIC)
    buf = io.BytesIO()
    im.convert("L" if im.mode == "L" else "RGB").save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def representatives(index: Optional[pd.DataFrame]) -> dict[str, str]:
    """Individual → the image shown for it: its first training-role photo (else any labelled one)."""
    if index is None or not len(index) or "id" not in index:
        return {}
    lab = index[(index["split"] != "test") & (index["id"] != "") & (index["id"] != NEW_WHALE)]
    lab = lab.assign(_pref=(lab["role"] != "train") if "role" in lab else False)
    lab = lab.sort_values(["_pref", "image"])
    return dict(lab.groupby("id", sort=False)["image"].first())


def _tile(label: str, uri: Optional[str], *, caption: str = "", correct: bool = False, extra: str = "") -> str:
    cls = "tile" + (" correct" if correct else "") + (f" {extra}" if extra else "")
    cap = f'<div class="cap">{html.escape(caption)}</div>' if caption else ""
    if label == NEW_WHALE:
        body = '<div class="ph newwhale"><span>new_whale</span><small>not a known individual</small></div>'
    elif uri is None:
        body = '<div class="ph missing"><span>no image</span></div>'
    else:
        body = f'<img src="{uri}" alt="{html.escape(label)}">'
    lab = html.escape(label)
    return f'<div class="{cls}">{body}<div class="lab" title="{lab}">{lab}</div>{cap}</div>'


def gallery_html(rows: pd.DataFrame, source: ImageSource, reps: dict[str, str]) -> str:
    """The gallery's markup: one row per query (query | top-5 | truth)."""
    titles = {"miss": "missed: the truth is not in the top-5", "late": "found late", "hit": "found first"}
    out, last_kind = [], None
    for r in rows.itertuples(index=False):
        if r.kind != last_kind:
            n = int((rows["kind"] == r.kind).sum())
            out.append(f'<h3 class="gk gk-{r.kind}">{titles[r.kind]} ({n} shown)</h3>')
            last_kind = r.kind
        top = str(r.top5).split()
        pos = int(r.hit_position)
        badge = "miss" if pos == 0 else f"hit at {pos}"
        score = getattr(r, "top1_score", None)
        score_s = f" · top-1 score {float(score):.3g}" if score is not None and np.isfinite(float(score)) else ""
        tiles = [_tile(lab, None if lab == NEW_WHALE else source.data_uri(reps.get(lab, "")),
                       caption=f"#{i + 1}", correct=(lab == r.truth)) for i, lab in enumerate(top)]
        truth_uri = None if r.truth == NEW_WHALE else source.data_uri(reps.get(r.truth, ""))
        truth_caption = "truth" if r.truth == NEW_WHALE or r.truth in reps else "truth (no training photo)"
        out.append(
            f'<div class="grow grow-{r.kind}"><div class="ghead"><span class="badge b-{r.kind}">{badge}</span> '
            f'<b>{html.escape(str(r.image))}</b> · AP {0 if pos == 0 else 1 / pos:.2f}{score_s}</div>'
            f'<div class="gtiles">{_tile(str(r.image), source.data_uri(str(r.image)), caption="query", extra="query")}'
            f'<div class="arrow">→</div>{"".join(tiles)}<div class="sep"></div>'
            f'{_tile(str(r.truth), truth_uri, caption=truth_caption, extra="truth")}</div></div>')
    return "\n".join(out)


def gallery_figure(rows: pd.DataFrame, source: ImageSource, reps: dict[str, str], max_rows: int = 10):
    """The first ``max_rows`` gallery rows as one PNG-able figure (query, top-5, truth)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = rows.head(max_rows)
    if not len(rows):
        return None
    fig = Figure(figsize=(10.5, 1.55 * len(rows) + 0.3), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), 7, squeeze=False)
    for i, r in enumerate(rows.itertuples(index=False)):
        labels = [str(r.image)] + str(r.top5).split()[:5]
        labels += [""] * (6 - len(labels)) + [str(r.truth)]
        for j, ax in enumerate(axes[i]):
            lab = labels[j]
            ax.set_xticks([])
            ax.set_yticks([])
            img = source.array(lab if j == 0 else reps.get(lab, "")) if lab and lab != NEW_WHALE else None
            if img is not None:
                ax.imshow(img, cmap="gray", vmin=0, vmax=255)
            else:
                ax.set_facecolor("#eef3f8" if lab == NEW_WHALE else "#f4f4f4")
                ax.text(0.5, 0.5, lab.replace("_", "\n") if lab == NEW_WHALE else (lab and "no image"),
                        ha="center", va="center", fontsize=8, transform=ax.transAxes, color="#335")
            correct = 1 <= j <= 5 and lab == r.truth
            for sp in ax.spines.values():
                sp.set_color("#2e8b57" if correct else "#cccccc")
                sp.set_linewidth(4 if correct else 0.8)
            head = "query" if j == 0 else ("truth" if j == 6 else f"#{j}")
            ax.set_title(f"{head}: {lab}" if lab else head, fontsize=7)
    fig.suptitle("Worst validation misses first (green frame = correct individual)", fontsize=10, x=0.01,
                 ha="left")
    return fig
