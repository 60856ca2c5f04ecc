"""Submission files in the layout of the data: HWI's ``Image,Id`` with ``new_whale``, or
Happywhale's ``image,predictions`` with ``new_individual``; five space-separated labels per image.

Predictions inside whaleflow carry the internal :data:`~whaleflow.labels.NEW_WHALE`;
the writer spells it as the layout does, and the readers translate it back, so a
submission and an answers file of either layout score the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from .errors import DataError
from .io import write_csv
from .labels import NEW_WHALE


@dataclass(frozen=True)
class SubmissionFormat:
    """The columns of a layout's submission and answers files, and its new-individual label."""

    image: str
    predictions: str
    answer: str       # the label column of an answers (solution) file
    new_label: str


#: layout → its submission format (``individual`` is any ``image,individual_id`` set)
FORMATS = {
    "kaggle": SubmissionFormat("Image", "Id", "Id", "new_whale"),
    "happywhale": SubmissionFormat("image", "predictions", "individual_id", "new_individual"),
    "individual": SubmissionFormat("image", "predictions", "individual_id", "new_individual"),
}


def submission_format(layout: str | None) -> SubmissionFormat:
    """The format of ``layout`` (HWI's when unknown or None)."""
    return FORMATS.get(layout or "kaggle", FORMATS["kaggle"])


def write_submission(path: str | Path, predictions: Mapping[str, Sequence[str]], test_images: Sequence[str],
                     layout: str | None = "kaggle") -> Path:
    """Write one row per test image, each exactly once, atomically, in ``layout``'s format.

    ``predictions`` maps an image to its ranked labels (the first five are kept), with
    new individuals as :data:`NEW_WHALE`. Every image of ``test_images`` must have a
    prediction: a missing one is a bug in the caller, not something to paper over with
    a default row.
    """
    fmt = submission_format(layout)
    missing = [img for img in test_images if img not in predictions]
    if missing:
        raise ValueError(f"no prediction for {len(missing)} test images, e.g. {missing[:3]}")
    if len(set(test_images)) != len(test_images):
        raise ValueError("test image list has duplicates")
    spell = {NEW_WHALE: fmt.new_label}
    rows = [(img, " ".join(spell.get(lab, lab) for lab in list(predictions[img])[:5])) for img in test_images]
    return write_csv(path, pd.DataFrame(rows, columns=[fmt.image, fmt.predictions]))


def _detect(frame: pd.DataFrame, path: Path, kind: str) -> SubmissionFormat:
    """The format whose columns the file has (``kind``: 'predictions' or 'answer')."""
    for fmt in FORMATS.values():
        if {fmt.image, getattr(fmt, kind)} <= set(frame.columns):
            return fmt
    wanted = " or ".join(sorted({f"{f.image},{getattr(f, kind)}" for f in FORMATS.values()}))
    raise DataError(f"missing column(s): expected {wanted}; found {list(frame.columns)}.", file=path, row=1,
                    fix=f"the header must be {wanted}.")


def read_submission(path: str | Path) -> dict[str, list[str]]:
    """Read a submission (either layout) into image → ranked labels, new individuals as NEW_WHALE."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file does not exist.", file=path, fix="pass the submission CSV written by a run.")
    frame = _read_csv(path)
    fmt = _detect(frame, path, "predictions")
    out: dict[str, list[str]] = {}
    for i, (img, ids) in enumerate(zip(frame[fmt.image], frame[fmt.predictions]), start=2):
        if img in out:
            raise DataError(f"image {img!r} appears twice.", file=path, row=i, fix="keep one row per image.")
        labels = str(ids).split() if isinstance(ids, str) else []
        out[img] = [NEW_WHALE if lab == fmt.new_label else lab for lab in labels]
    return out


def read_answers(path: str | Path) -> dict[str, str]:
    """Read ground truth (``Image,Id`` or ``image,individual_id``), new individuals as NEW_WHALE."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file does not exist.", file=path, fix="pass the answers CSV (Image,Id).")
    frame = _read_csv(path)
    fmt = _detect(frame, path, "answer")
    labels = frame[fmt.answer].astype(str).str.strip()
    return dict(zip(frame[fmt.image], labels.where(labels != fmt.new_label, NEW_WHALE)))


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


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises many types for malformed CSV
        raise DataError(f"cannot be read as CSV ({exc}).", file=path) from None


def read_csv_columns(path: Path, columns: set[str]) -> pd.DataFrame:
    """A CSV read as strings that must have ``columns``; a clear error naming the file otherwise."""
    frame = _read_csv(Path(path))
    missing = columns - set(frame.columns)
    if missing:
        raise DataError(f"missing column(s) {sorted(missing)}; found {list(frame.columns)}.", file=path, row=1,
                        fix=f"the header must include {','.join(sorted(columns))}.")
    return frame
