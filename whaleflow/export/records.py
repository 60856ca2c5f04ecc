"""The catalogue a run holds, as one table of photos: who, where the file is, its box, when.

Rows: every photo of the run's prepared index labelled with an individual (train and
validation; ``new_whale`` photos name no individual and are left out), then every
photo ``enroll`` added (``gallery/enroll_log.csv``). Columns: ``image``, ``id``,
``path``, ``source`` (``training`` or ``enrolled``), ``decided`` (the enrolment time,
empty for training labels), ``x0,y0,x1,y1`` (the box, empty when none is known: the
run's box file for its photos, ``--boxes`` for enrolled ones) and ``date`` (a
``datetime`` or NaT: from ``--dates`` (``image,date``, any ISO date or date-time), else
the photo's EXIF DateTimeOriginal).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..labels import NEW_WHALE


def _boxes(path):
    from ..data.boxes import read_boxes

    return read_boxes(path) if path and Path(path).is_file() else None


def _dates(path: str | Path | None, records: pd.DataFrame) -> pd.Series:
    from ..identify.encounters import exif_time
    from ..submission import read_csv_columns

    if path is None:
        return pd.Series([exif_time(p) for p in records["path"]], index=records.index, dtype="datetime64[ns]")
    frame = read_csv_columns(Path(path), {"image", "date"})
    out = {}
    for row, (im, text) in enumerate(zip(frame["image"], frame["date"]), start=2):
        when = pd.to_datetime(text, errors="coerce")
        if pd.isna(when):
            raise DataError(f"date {text!r} of {im!r} is not a date.", file=path, row=row,
                            fix="write ISO dates, e.g. 2026-07-01 or 2026-07-01T10:15:00.")
        out[str(im)] = when.tz_localize(None) if when.tzinfo else when
    return pd.Series([out.get(im, pd.NaT) for im in records["image"]], index=records.index, dtype="datetime64[ns]")


def load_records(run_dir: str | Path, *, dates: str | Path | None = None, boxes: str | Path | None = None) -> pd.DataFrame:
    """The run's catalogue as photo rows (see the module docstring)."""
    from ..config import load_config

    run_dir = Path(run_dir)
    index_path = run_dir / "prepared" / "index.csv"
    if not (run_dir / "config.yaml").is_file() or not index_path.is_file():
        raise DataError("not a prepared run folder (no config.yaml or prepared/index.csv).", file=run_dir,
                        fix="pass the output.dir of a finished run.")
    cfg = load_config(run_dir / "config.yaml")
    idx = pd.read_csv(index_path, dtype=str, keep_default_na=False)
    own = idx[(idx["split"] == "train") & (idx["id"] != "") & (idx["id"] != NEW_WHALE)]
    frames = [pd.DataFrame({"image": own["image"], "id": own["id"], "path": own["path"], "source": "training",
                            "decided": ""})]
    log = run_dir / "gallery" / "enroll_log.csv"
    if log.is_file():
        e = pd.read_csv(log, dtype=str, keep_default_na=False)
        frames.append(pd.DataFrame({"image": e["image"], "id": e["id"], "path": e["path"], "source": "enrolled",
                                    "decided": e["time"]}))
    rec = pd.concat(frames, ignore_index=True)
    run_boxes = None
    if cfg.data.boxes and cfg.data.root:
        run_boxes = _boxes(Path(cfg.data.root) / cfg.data.boxes)
    extra = _boxes(boxes) if boxes else None
    coords = []
    for im, src in zip(rec["image"], rec["source"]):
        table = run_boxes if src == "training" else extra
        b = table.get(im) if table is not None else None
        coords.append(tuple(b[:4]) if b is not None else (np.nan,) * 4)
    rec[["x0", "y0", "x1", "y1"]] = np.array(coords, float).reshape(-1, 4)
    rec["date"] = _dates(dates, rec)
    return rec
