"""The report's last sections: what went in (the data, its duplicates and leaks) and how it ran
(timings, the resolved configuration, missing pieces). Same contract as :mod:`.sections`:
a missing input becomes a note, never a failure.
"""
from __future__ import annotations

from typing import Optional

import pandas as pd

from .artifacts import RunArtifacts
from .boxes_section import predicted_boxes_html
from .html import esc, figure, fmt, key_values, note, notes_list, section, seconds, table


def data_section(art: RunArtifacts, figs: dict[str, str]) -> str:
    d = art.data
    if not d:
        return section("data", "Data", note("No data summary (prepared/summary.json is missing)."))
    im, dup, f0 = d.get("images", {}), d.get("duplicates", {}), (d.get("split") or {}).get("fold_0", {})
    blocks = [
        ("Images", [("training images", fmt(im.get("train"))), ("known individuals", fmt(im.get("individuals"))),
                    ("new_whale training images", fmt(im.get("new_whale_train"))),
                    ("test images", fmt(im.get("test"))),
                    ("skipped (unreadable)", fmt((d.get("skipped") or {}).get("total", 0)))]),
        ("Duplicates and leaks", [("near-duplicate groups", fmt(dup.get("groups"))),
                                  ("images in those groups", fmt(dup.get("images_in_groups"))),
                                  ("groups spanning train and test", fmt(dup.get("train_test_groups"))),
                                  ("groups with conflicting labels", fmt(d.get("conflicts", 0))),
                                  ("test images leaking a training label", fmt(d.get("leaks", 0)))]),
        (f"Split (fold 0 of {(d.get('split') or {}).get('folds', 1)})",
         [("training images", fmt(f0.get("train_images"))), ("training individuals", fmt(f0.get("train_individuals"))),
          ("validation images", fmt(f0.get("val_images"))), ("validation individuals", fmt(f0.get("val_individuals"))),
          ("validation new_whale", fmt(f0.get("val_new_whale"))), ("unused", fmt(f0.get("unused")))]),
    ]
    b, c = d.get("boxes") or {}, d.get("cache") or {}
    extra = [("image cache", f"{fmt(c.get('images'))} images at {c.get('size', '?')} px")]
    if b.get("file"):
        extra += [("cropped to a box", fmt(b.get("box"))), ("cropped to a predicted box", fmt(b.get("predicted", 0))),
                  ("without a box", fmt(b.get("missing"))), ("impossible boxes", fmt(b.get("invalid")))]
    m = b.get("model") or {}
    if m.get("learned"):
        extra.append(("box model: mean IoU on held-out listed boxes",
                      f"{fmt(m.get('held_out_iou'), 3)} ({fmt(m.get('held_out'))} photos)"))
    extra.append(("prepare took", seconds((d.get("seconds") or {}).get("total"))))
    blocks.append(("Boxes and cache", extra))
    parts = ['<div class="grid2">' + "".join(f"<div><h3>{esc(t)}</h3>{key_values(kv)}</div>" for t, kv in blocks)
             + "</div>"]
    if "data" in figs:
        parts.append(figure(figs["data"], "data split", width=860))
    parts.append(predicted_boxes_html(art.prepared_dir, art.index))
    for title, frame in (("Leaks: test images that duplicate a training image", art.leaks),
                         ("Near-duplicate groups", art.duplicates), ("Label conflicts", art.conflicts)):
        parts.append(_frame_details(title, frame))
    root = art.summary.get("data_root") or d.get("data_root")
    return section("data", "Data", "".join(parts), f"Data root: <code>{esc(root)}</code>" if root else "")


def _frame_details(title: str, frame: Optional[pd.DataFrame], limit: int = 20) -> str:
    if frame is None or not len(frame):
        return ""
    rows = [[esc(v) for v in r] for r in frame.head(limit).itertuples(index=False)]
    more = f" (first {limit} of {len(frame)})" if len(frame) > limit else f" ({len(frame)})"
    return f"<details><summary>{esc(title)}{more}</summary>{table([esc(c) for c in frame.columns], rows)}</details>"


def run_section(art: RunArtifacts) -> str:
    parts = []
    timings = art.summary.get("timings") or {}
    if timings:
        pairs = [(_timing_label(k), seconds(v)) for k, v in timings.items()]
        parts.append(f"<h3>Timings</h3><div style=\"max-width:520px\">{key_values(pairs)}</div>")
    if art.config_text is not None:
        lines = art.config_text.count("\n") + 1
        parts.append(f"<details><summary>Resolved configuration (config.yaml, {lines} lines)</summary>"
                     f"<pre>{esc(art.config_text)}</pre></details>")
    if art.notes:
        parts.append("<h3>Missing pieces</h3>" + notes_list(art.notes))
    return section("run", "Run and configuration", "".join(parts) or note("No configuration found."))


def _timing_label(key: str) -> str:
    """``train_metric_compact_s`` → ``train metric_compact`` (model names kept whole)."""
    key = key.removesuffix("_s")
    step, _, rest = key.partition("_")
    return f"{step} {rest}" if step == "train" and rest else key.replace("_", " ")
