"""Encounters: the photos of one sighting, matched together.

One sighting of one animal gives several photos (a burst, both sides, a fluke raised
twice). Which photos form an encounter comes from a CSV (``image,encounter``: the
``image`` column of matches.csv, i.e. the file name, or the path where two photos
share a name) or from the time each photo was taken (EXIF ``DateTimeOriginal``):
photos taken at most ``gap`` seconds after the previous one form one encounter (a
chain: a long burst stays one encounter). A photo without an EXIF time cannot be
placed and is an encounter of its own; identify says how many.

The candidates of an encounter are fused from all its photos by **summing calibrated
evidence**: each photo's log-probabilities over the individuals and "new individual"
(:func:`~whaleflow.identify.calibration.outcome_logprobs`, the run's fitted
temperature) are added and renormalised, i.e. the photos are independent views of one
animal. Two ways (:data:`FUSIONS`, ``identify --encounter-fusion``):

* ``flat`` (default): the plain sum. Since every photo's "new" log-probability is the
  threshold over the temperature, the fused decision is the individual with the best
  mean score, or new when that mean is below the run's threshold — the run's own rule
  on the encounter's average.
* ``bayes``: naive Bayes. Each photo's posterior already counts the prior, so ``n - 1``
  priors are taken back out: "new individual" has the validation share of new queries
  (about 28 % in the demo), each known individual an equal part of the rest, so a known
  individual gains a factor of about 40 (0.28 against 0.72 / 100) per extra photo.

Measured on the held-out seed-7 sightings (``benchmarks/field_workflow.py``): ``flat``
finds new animals far better, ``bayes`` known ones; the photos of one new animal all
resemble the same known lookalike, which the independence behind ``bayes`` does not
expect, so it merges new animals into lookalikes. A merge corrupts a catalogue and a
capture history more than a split does, hence ``flat`` by default. A photo that clearly shows the animal outweighs a blurred
one that weakly prefers another individual, where a maximum of raw scores would let
any single photo's best score win. One photo alone is its own encounter, unchanged.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.special import logsumexp

from ..errors import DataError

EXIF_IFD = 0x8769            # the Exif sub-IFD, where DateTimeOriginal lives
DATETIME_ORIGINAL = 36867
EXIF_FORMAT = "%Y:%m:%d %H:%M:%S"

__all__ = ["encounters_by_gap", "exif_time", "fuse", "read_encounters"]


def exif_time(path: str | Path) -> datetime | None:
    """When the photo was taken (EXIF DateTimeOriginal), or None when it does not say."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            raw = im.getexif().get_ifd(EXIF_IFD).get(DATETIME_ORIGINAL)
    except (OSError, ValueError, SyntaxError):
        return None
    if not raw:
        return None
    try:
        return datetime.strptime(str(raw).strip("\x00 ").strip(), EXIF_FORMAT)
    except ValueError:
        return None


def read_encounters(path: str | Path, images: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """``image → encounter`` from an ``image,encounter`` CSV, checked against the photos given;
    photos the file does not list become encounters of their own (returned as a note)."""
    from ..submission import read_csv_columns

    path = Path(path)
    if not path.is_file():
        raise DataError("encounter file does not exist.", file=path, fix="write image,encounter rows, one per photo.")
    frame = read_csv_columns(path, {"image", "encounter"})
    known, out = set(images), {}
    for row, (im, enc) in enumerate(zip(frame["image"], frame["encounter"]), start=2):
        im, enc = str(im).strip(), str(enc).strip()
        if im not in known:
            raise DataError(f"image {im!r} is not among the photos given.", file=path, row=row,
                            fix="name each photo as matches.csv does (its file name), or pass its file.")
        if not enc:
            raise DataError(f"image {im!r} has no encounter.", file=path, row=row, fix="name its encounter.")
        if im in out:
            raise DataError(f"image {im!r} is listed twice.", file=path, row=row, fix="keep one row per photo.")
        out[im] = enc
    notes = []
    alone = [im for im in images if im not in out]
    if alone:
        notes.append(f"{len(alone)} photo(s) not in {path.name} are each an encounter of their own")
        out.update({im: im for im in alone})
    return out, notes


def encounters_by_gap(images: Sequence[str], paths: Sequence[str], gap: float) -> tuple[dict[str, str], list[str]]:
    """``image → encounter`` from EXIF times: sorted by time, a photo within ``gap`` seconds of
    the previous one joins its encounter. Encounters are named ``enc_<first time>``."""
    if not gap > 0:
        raise DataError(f"--encounter-gap must be a positive number of seconds, not {gap}.",
                        fix="e.g. --encounter-gap 120.")
    times = [exif_time(p) for p in paths]
    timed = sorted((t, im) for t, im in zip(times, images) if t is not None)
    out: dict[str, str] = {}
    prev, name = None, ""
    for t, im in timed:
        if prev is None or (t - prev).total_seconds() > gap:
            name = f"enc_{t:%Y%m%dT%H%M%S}"
            while name in out.values():  # two chains starting in the same second
                name += "_"
        out[im] = name
        prev = t
    notes = []
    untimed = [im for im, t in zip(images, times) if t is None]
    if untimed:
        notes.append(f"{len(untimed)} photo(s) have no EXIF time (DateTimeOriginal) and are each an encounter of "
                     f"their own: {', '.join(untimed[:3])}{' …' if len(untimed) > 3 else ''}")
        out.update({im: im for im in untimed})
    return out, notes


def fuse(logp: np.ndarray, log_prior: np.ndarray | None = None) -> np.ndarray:
    """The encounter's log-probabilities from its photos' (rows of ``logp``, outcomes in
    columns): their sum less ``n - 1`` times the outcomes' log prior (each photo's posterior
    already holds the prior once), renormalised. ``log_prior`` None: a flat prior."""
    logp = np.asarray(logp, np.float64)
    total = logp.sum(axis=0)
    if log_prior is not None:
        total = total - (len(logp) - 1) * np.asarray(log_prior, np.float64)
    return total - logsumexp(total)


#: how an encounter's photos are fused: name → (calibration, n_classes) → log prior or None
FUSIONS = {
    # Σ log P_i: each photo's posterior, prior included; "new individual" wins an encounter
    # whose best individual's mean score is below the run's threshold (errs towards splits)
    "flat": lambda calibration, n_classes: None,
    # naive Bayes, n - 1 priors taken out (errs towards merging a new animal into a lookalike)
    "bayes": lambda calibration, n_classes: calibration.log_prior(n_classes),
}


def group(images: Sequence[str], encounter_of: dict[str, str]) -> dict[str, list[int]]:
    """Row indices of each encounter, encounters in order of their first photo."""
    out: dict[str, list[int]] = {}
    for i, im in enumerate(images):
        out.setdefault(encounter_of.get(im, im), []).append(i)
    return out


def ranked(logp: np.ndarray, classes: np.ndarray, new_label: str, k: int = 5) -> tuple[list[str], list[float]]:
    """The k most probable outcomes of one (fused) log-probability row and their probabilities."""
    names = np.append(np.asarray(classes).astype(object), new_label)
    order = np.argsort(-logp, kind="stable")[:k]
    return [str(names[j]) for j in order], [float(np.exp(logp[j])) for j in order]
