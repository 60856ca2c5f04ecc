"""Synthetic sightings: several photos per encounter, with EXIF times, of a synthetic set's individuals.

The field workflow's test set. Given a folder written by
:func:`whaleflow.data.synthetic.generate_synthetic` (its ``synthetic.json`` says the seed,
the individual count and the photo size), this draws ``sightings`` encounters: most of
a known individual (one with labelled training photos), a share ``new_share`` of
individuals the set never showed (truth ``new_whale``). A known individual is drawn with a chance
proportional to its training photos (``weighting="photos"``, as the generator draws its
test photos and as resightings go: the often-photographed are often seen again) or
uniformly (``"uniform"``: mostly individuals with one photo, a harder set). Each encounter has 2 to
``max_photos`` photos drawn by the same generator (``_individual``, ``_texture``,
``_photo``: the same animal, a fresh random view each; new random streams, so no photo
repeats a training photo) and stamped with an EXIF ``DateTimeOriginal``: encounters
start hours apart, the photos of one are ``burst`` seconds apart at most.

Caveat, stated where it is measured: the views of one encounter are independent
draws (pose, light, sea, blur), more varied than a real burst, so they carry more
independent evidence than a real encounter's photos do.

Written into ``out_dir``: ``photos/`` (JPEGs with EXIF), ``boxes.csv``
(``Image,x0,y0,x1,y1``), ``encounters.csv`` (``image,encounter``) and ``answers.csv``
(``image,Id,encounter``).
"""
from __future__ import annotations

import json
import struct
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import DataError
from ..io import write_csv
from ..labels import NEW_WHALE
from . import synthetic as syn
from .synthetic_fluke import draw_individual, draw_photo, draw_texture

#: a random-stream role no part of synthetic.py uses, so sighting photos are new draws
ROLE = 7
NEW_OFFSET = 10**6   # individual indices of never-seen individuals start here


def with_exif_time(jpeg: bytes, when: datetime) -> bytes:
    """The JPEG with an APP1 EXIF segment holding ``DateTimeOriginal`` (pixels untouched)."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = when.strftime("%Y:%m:%d %H:%M:%S")
    blob = exif.tobytes()
    app1 = b"\xff\xe1" + struct.pack(">H", len(blob) + 2) + blob
    return jpeg[:2] + app1 + jpeg[2:]


def _known_individuals(summary: dict) -> tuple[list[tuple[int, str]], np.ndarray]:
    """(generator index, id) of every individual with labelled training photos, as
    :func:`~whaleflow.data.synthetic.generate_synthetic` planned them, and their photo counts."""
    plan = syn._plan(np.random.default_rng([summary["seed"], 0]), summary["individuals"])
    counts: dict[tuple[int, str], int] = {}
    for who, split, label in plan:
        if split == "train" and label != NEW_WHALE:
            counts[(who, label)] = counts.get((who, label), 0) + 1
    known = sorted(counts)
    return known, np.array([counts[k] for k in known], float)


def generate_sightings(data_dir: str | Path, out_dir: str | Path, *, sightings: int = 60, max_photos: int = 4,
                       new_share: float = 0.25, burst: float = 20.0, seed: int = 0, weighting: str = "photos",
                       start: datetime = datetime(2026, 7, 1, 8, 0, 0)) -> dict:
    """Write ``sightings`` synthetic encounters of ``data_dir``'s individuals into ``out_dir``
    (see the module docstring); returns counts."""
    marker = Path(data_dir) / "synthetic.json"
    if not marker.is_file():
        raise DataError("not a synthetic data set (no synthetic.json).", file=data_dir,
                        fix="point at a folder written by `whaleflow synth` or a demo run's data folder.")
    summary = json.loads(marker.read_text(encoding="utf-8"))
    if summary.get("layout", "kaggle") != "kaggle":
        raise DataError("sightings are drawn for the kaggle layout only.", file=marker, fix="use a kaggle-layout set.")
    known, counts = _known_individuals(summary)
    if weighting not in ("photos", "uniform"):
        raise DataError(f"unknown weighting {weighting!r}.", fix="use photos or uniform.")
    chance = counts / counts.sum() if weighting == "photos" else np.full(len(known), 1 / len(known))
    rng = np.random.default_rng([summary["seed"], ROLE, seed])
    out = Path(out_dir)
    (out / "photos").mkdir(parents=True, exist_ok=True)
    w, h = summary["width"], summary["height"]
    rows, boxes, when = [], [], start
    for s in range(sightings):
        if rng.random() < new_share:
            who, truth = NEW_OFFSET + seed * sightings + s, NEW_WHALE
        else:
            who, truth = known[int(rng.choice(len(known), p=chance))]
        ind = draw_individual(np.random.default_rng([summary["seed"], 1, who]))
        tex = draw_texture(ind, w)
        enc = f"s{s:04d}"
        when = when + timedelta(hours=float(rng.uniform(1, 6)))
        t = when
        for j in range(int(rng.integers(2, max_photos + 1))):
            jpeg, box = draw_photo(ind, tex, np.random.default_rng([summary["seed"], ROLE, seed, s, j]), w, h)
            name = f"{enc}_{j}.jpg"
            (out / "photos" / name).write_bytes(with_exif_time(jpeg, t))
            rows.append({"image": name, "Id": truth, "encounter": enc})
            boxes.append((name, *box))
            t = t + timedelta(seconds=float(rng.uniform(1, burst)))
    answers = pd.DataFrame(rows)
    write_csv(out / "answers.csv", answers)
    write_csv(out / "encounters.csv", answers[["image", "encounter"]])
    write_csv(out / "boxes.csv", pd.DataFrame(boxes, columns=["Image", "x0", "y0", "x1", "y1"]))
    return {"sightings": sightings, "photos": len(answers), "new_sightings": int(
        answers.drop_duplicates("encounter")["Id"].eq(NEW_WHALE).sum()), "out_dir": str(out)}
