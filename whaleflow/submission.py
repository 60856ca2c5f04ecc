"""Kaggle submission files: ``Image,Id`` with five space-separated labels per image."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from .errors import DataError
from .io import write_csv


def write_submission(path: str | Path, predictions: Mapping[str, Sequence[str]], test_images: Sequence[str]) -> Path:
    """Write one row per test image, each exactly once, atomically.

    ``predictions`` maps an image to its ranked labels (the first five are kept).
    Every image of ``test_images`` must have a prediction: a missing one is a bug in
    the caller, not something to paper over with a default row.
    """
    missing = [img for img in test_images if img not in predictions]
    if missing:
        raise ValueError(f"no prediction for {len(missing)} test images, e.g. {missing[:3]}")
    if len(set(test_images)) != len(test_images):
        raise ValueError("test image list has duplicates")
    rows = [(img, " ".join(list(predictions[img])[:5])) for img in test_images]
    return write_csv(path, pd.DataFrame(rows, columns=["Image", "Id"]))


def read_submission(path: str | Path) -> dict[str, list[str]]:
    """Read a submission into image → ranked labels, with clear errors on bad files."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file does not exist.", file=path, fix="pass the submission CSV written by a run.")
    frame = _read_csv(path, {"Image", "Id"})
    out: dict[str, list[str]] = {}
    for i, (img, ids) in enumerate(zip(frame["Image"], frame["Id"]), start=2):
        if img in out:
            raise DataError(f"image {img!r} appears twice.", file=path, row=i, fix="keep one row per image.")
        out[img] = str(ids).split() if isinstance(ids, str) else []
    return out


def read_answers(path: str | Path) -> dict[str, str]:
    """Read ``Image,Id`` ground truth (one label per image)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file does not exist.", file=path, fix="pass the answers CSV (Image,Id).")
    frame = _read_csv(path, {"Image", "Id"})
    return dict(zip(frame["Image"], frame["Id"].astype(str)))


def score_submission(submission: str | Path, answers: str | Path, k: int = 5) -> float:
    """MAP@k of a submission against answers; every answered image must be predicted."""
    from .metrics import map_at_k

    pred = read_submission(submission)
    truth = read_answers(answers)
    missing = [img for img in truth if img not in pred]
    if missing:
        raise DataError(
            f"misses {len(missing)} of {len(truth)} images, e.g. {missing[:3]}.",
            file=submission,
            fix="write one row for every test image.",
        )
    images = list(truth)
    return map_at_k([pred[i] for i in images], [truth[i] for i in images], k=k)


def _read_csv(path: Path, columns: set[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises many types for malformed CSV
        raise DataError(f"cannot be read as CSV ({exc}).", file=path) from None
    missing = columns - set(frame.columns)
    if missing:
        raise DataError(
            f"missing column(s) {sorted(missing)}; found {list(frame.columns)}.",
            file=path,
            row=1,
            fix=f"the header must be {','.join(sorted(columns))}.",
        )
    return frame
