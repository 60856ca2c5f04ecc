"""Synthetic humpback flukes in the Kaggle HWI layout (or Happywhale's), so the pipeline runs anywhere.

Each individual is a procedural fluke: two lobes, a notch, a jagged trailing edge
(teeth, ripples, bites, a clipped tip) and a pigment pattern (thresholded blobs with
partial left/right symmetry, spots, scars) — identity lives only in that edge and
that pigment. Each photo is a random view: pose (rotation, scale, yaw, shear,
perspective), a sea background (gradient, waves, glints, sometimes a horizon),
light (exposure, gamma, a ramp), colour cast, foam at the stem and spray, blur,
noise, sometimes greyscale, and a random JPEG quality. Shots per individual follow a
capped Zipf law as in HWI (:data:`~.synthetic_style.SHOT_LAWS`); ``new_whale`` marks train photos of individuals seen once
and test photos of individuals absent from train (``answers.csv``). ``boxes.csv``
(``Image,x0,y0,x1,y1``) gives each fluke's box as a detector would, a few percent off.

``layout="happywhale"`` writes the same photos as Happywhale did: ``train.csv`` with
``image,species,individual_id`` in which every photo is labelled (the individuals HWI
calls new_whale get ids of their own), ``train_images/``, ``test_images/``, and
``answers.csv`` (``image,individual_id``) with ``new_individual`` for the test photos
of individuals absent from train; ``sample_submission.csv`` is ``image,predictions``.

Every random draw comes from numpy generators seeded by (seed, role, index), and
Pillow's JPEG encoder is deterministic: the same arguments give the same bytes.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..io import write_csv, write_text
from ..labels import NEW_WHALE, new_label
from .synthetic_fluke import draw_individual, draw_photo, draw_texture
from .synthetic_style import SHOT_LAWS, SynthStyle

#: layout → (train folder, test folder); the photos are the same in each
LAYOUT_FOLDERS = {"kaggle": ("train", "test"), "happywhale": ("train_images", "test_images")}

TRAIN_NEW_WHALE = 0.25  # share of train photos labelled new_whale
TEST_PER_SHOT = 0.3     # Poisson mean of test photos per train photo of a known individual
TEST_NEW_WHALE = 0.28   # share of test photos showing individuals absent from train


def _plan(rng: np.random.Generator, individuals: int, style: SynthStyle = SynthStyle()) -> list[tuple[int, str, str]]:
    """(individual index, split, true label) per photo; unseen individuals get new_whale."""
    ids = _unique_hex(rng, individuals, 7)
    zipf_a, cap = SHOT_LAWS[style.shots]
    train_n = np.minimum(rng.zipf(zipf_a, individuals), cap)
    test_n = rng.poisson(TEST_PER_SHOT * train_n)
    if style.test_mix == "one_per_individual":  # every known individual asked about once
        test_n = np.ones_like(test_n)
    photos = [(i, "train", ids[i]) for i in range(individuals) for _ in range(train_n[i])]
    photos += [(i, "test", ids[i]) for i in range(individuals) for _ in range(test_n[i])]
    n_new_train = int(round(TRAIN_NEW_WHALE / (1 - TRAIN_NEW_WHALE) * train_n.sum()))
    photos += [(individuals + j, "train", NEW_WHALE) for j in range(n_new_train)]
    n_unseen = int(round(TEST_NEW_WHALE / (1 - TEST_NEW_WHALE) * test_n.sum()))
    again = rng.random(n_unseen) < 0.2  # some train new_whale individuals are photographed again
    nxt = individuals + n_new_train
    for j in range(n_unseen):
        who = individuals + int(rng.integers(n_new_train)) if again[j] and n_new_train else nxt + j
        photos.append((who, "test", NEW_WHALE))
    return photos


def _label_everyone(plan: list[tuple[int, str, str]], rng: np.random.Generator) -> list[str]:
    """Happywhale labels every training photo: an individual HWI calls new_whale in train gets
    an id of its own (and keeps it in test); test photos of individuals never in train stay new."""
    in_train = sorted({who for who, split, label in plan if split == "train" and label == NEW_WHALE})
    fresh = dict(zip(in_train, _unique_hex(rng, len(in_train), 7)))
    return [label if label != NEW_WHALE else fresh.get(who, NEW_WHALE) for who, _, label in plan]


def _unique_hex(rng: np.random.Generator, n: int, digits: int) -> list[str]:
    out: dict[str, None] = {}
    while len(out) < n:
        for x in rng.integers(0, 16 ** digits, n - len(out)):
            out.setdefault(f"{int(x):0{digits}x}", None)
    return [("w_" if digits == 7 else "") + s for s in out]


def generate_synthetic(out_dir: str | Path, *, individuals: int = 60, seed: int = 0, width: int = 192,
                       height: int = 128, progress: bool = False, layout: str = "kaggle",
                       style: SynthStyle | None = None) -> dict:
    """Write a synthetic HWI-layout data set into ``out_dir`` and return its counts.

    ``individuals`` is the number of labelled (known) individuals; new_whale photos
    and unseen test individuals come on top in HWI-like proportions. A folder that
    already holds a set made here (``synthetic.json``) is replaced; any other
    non-empty ``train/`` or ``test/`` is refused rather than mixed with. ``layout`` is
    ``kaggle`` (HWI) or ``happywhale`` (see the module notes); ``style`` sets the knobs of
    :mod:`.synthetic_style` (None: the demo's).
    """
    style = style or SynthStyle()
    if layout not in LAYOUT_FOLDERS:
        raise DataError(f"unknown synthetic layout {layout!r}.", fix=f"use one of {', '.join(LAYOUT_FOLDERS)}.")
    if individuals < 1 or width < 32 or height < 32:
        raise DataError(f"cannot generate {individuals} individuals at {width}x{height}.",
                        fix="use at least 1 individual and images of at least 32x32 pixels.")
    start = time.perf_counter()
    out = Path(out_dir)
    marker = out / "synthetic.json"
    folders = _empty_folders(out, layout, marker)
    rng = np.random.default_rng([seed, 0])
    plan = _plan(rng, individuals, style)
    names = [n + ".jpg" for n in _unique_hex(rng, len(plan), 8)]
    boxes = _write_photos(out, folders, plan, names, seed, width, height, style, progress)
    rows = pd.DataFrame({"Image": names, "Id": [p[2] for p in plan], "split": [p[1] for p in plan]})
    if layout == "happywhale":
        rows["Id"] = _label_everyone(plan, rng)
    train = rows[rows.split == "train"][["Image", "Id"]].sort_values("Image")
    answers = rows[rows.split == "test"][["Image", "Id"]].sort_values("Image")
    known = train[train.Id != NEW_WHALE].Id.value_counts()
    summary = {
        "individuals": individuals, "seed": seed, "width": width, "height": height,
        "train_images": len(train), "train_new_whale": int((train.Id == NEW_WHALE).sum()),
        "train_individuals": int(len(known)), "max_shots": int(known.max()),
        "singletons": int((known == 1).sum()),
        "test_images": len(answers), "test_new_whale": int((answers.Id == NEW_WHALE).sum()),
    }
    summary["layout"] = layout
    if style != SynthStyle():
        summary["style"] = style.to_dict()
    write_csv(out / "boxes.csv", pd.DataFrame(
        [(n, *boxes[n]) for n in sorted(boxes)], columns=["Image", "x0", "y0", "x1", "y1"]))
    train = _write_answers(out, layout, train, answers, known)
    write_text(marker, json.dumps(summary, indent=2) + "\n")
    write_csv(out / "train.csv", train)
    return {**summary, "out_dir": str(out), "seconds": round(time.perf_counter() - start, 3)}


def _empty_folders(out: Path, layout: str, marker: Path) -> dict[str, str]:
    """The layout's train and test folders, emptied of an earlier synthetic set's photos;
    a folder holding other images is refused rather than mixed with."""
    folders = dict(zip(("train", "test"), LAYOUT_FOLDERS[layout]))
    for split in ("train", "test"):
        folder = out / folders[split]
        if folder.is_dir() and any(folder.iterdir()):
            if not marker.is_file():
                raise DataError("folder already holds images not made by the synthetic generator.",
                                file=folder, fix="pick an empty output folder.")
            for old in folder.glob("*.jpg"):
                old.unlink()
        folder.mkdir(parents=True, exist_ok=True)
    return folders


def _write_photos(out: Path, folders: dict[str, str], plan, names: list[str], seed: int, width: int, height: int,
                  style: SynthStyle, progress: bool) -> dict[str, tuple[int, ...]]:
    """Draw and write every planned photo (individual by individual, so each texture is drawn
    once); returns each photo's fluke box."""
    order = sorted(range(len(plan)), key=lambda k: plan[k][0])
    cache: dict[int, tuple[dict, np.ndarray]] = {}
    from ..progress import progress as _progress

    steps = _progress(order, total=len(order), description="synthetic flukes", quiet=not progress, unit="photos")
    boxes: dict[str, tuple[int, ...]] = {}
    for k in steps:
        who, split, _ = plan[k]
        if who not in cache:
            cache.clear()
            ind = draw_individual(np.random.default_rng([seed, 1, who]))
            cache[who] = (ind, draw_texture(ind, width))
        ind, tex = cache[who]
        jpeg, boxes[names[k]] = draw_photo(ind, tex, np.random.default_rng([seed, 2, k]), width, height, style,
                                           np.random.default_rng([seed, 3, k]))
        (out / folders[split] / names[k]).write_bytes(jpeg)
    return boxes


def _write_answers(out: Path, layout: str, train: pd.DataFrame, answers: pd.DataFrame, known: pd.Series) -> pd.DataFrame:
    """``answers.csv`` and ``sample_submission.csv`` (new_whale and the four most photographed
    individuals) in the layout's columns; returns ``train.csv``'s frame in those columns."""
    top4 = sorted(known.items(), key=lambda kv: (-kv[1], kv[0]))[:4]
    placeholder = " ".join([NEW_WHALE] + [k for k, _ in top4])
    if layout == "happywhale":
        new = new_label(layout)
        answers = answers.assign(Id=answers.Id.where(answers.Id != NEW_WHALE, new))
        write_csv(out / "answers.csv", answers.rename(columns={"Image": "image", "Id": "individual_id"}))
        write_csv(out / "sample_submission.csv", pd.DataFrame(
            {"image": answers.Image, "predictions": placeholder.replace(NEW_WHALE, new)}))
        return pd.DataFrame({"image": train.Image, "species": "humpback_whale", "individual_id": train.Id})
    write_csv(out / "answers.csv", answers)
    write_csv(out / "sample_submission.csv", answers.assign(Id=placeholder))
    return train
