"""Read a labelled photo folder into one table, refusing bad input with actionable errors.

Three layouts are understood, detected from ``train.csv``'s columns:

* **kaggle** (Humpback Whale Identification): ``train.csv`` with ``Image,Id``,
  images in ``train/``; the test list is the image files in ``test/`` (when
  ``sample_submission.csv`` exists, every image it lists must be in ``test/``).
* **happywhale**: ``train.csv`` with ``image,species,individual_id``, images in
  ``train_images/`` (or ``train/``), test in ``test_images/`` (or ``test/``);
* **individual**: any other set labelled by individual, ``image,individual_id``, in
  the Happywhale folders.

Each layout's own new-individual label (``new_whale``, ``new_individual``) is read as
the internal :data:`~whaleflow.labels.NEW_WHALE`. Happywhale-like sets usually have
none: their validation then holds out whole individuals as new ones
(:mod:`whaleflow.data.split`).

Every problem a person can fix raises :class:`~whaleflow.errors.DataError` naming
the file, the row as a person counts it (header = row 1) and the fix. Corrupt or
unreadable images are the exception: they are skipped with a warning and listed in
``Catalog.skipped`` (or raise under ``strict=True``), because one bad file among
thousands should not stop a run. A submission must still list skipped test images.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..labels import NEW_WHALE, new_label
from .images import check_image, is_image_name

log = logging.getLogger("whaleflow.data")

LAYOUTS = {  # layout → (image column, id column, other required columns)
    "kaggle": ("Image", "Id", ()),
    "happywhale": ("image", "individual_id", ("species",)),
    "individual": ("image", "individual_id", ()),
}
_SHOW = 5  # how many names an error message lists


@dataclass
class Catalog:
    """The images of one data set: labelled train, unlabelled test, and what was skipped."""

    root: Path
    layout: str
    train: pd.DataFrame    # image, id, path
    test: pd.DataFrame     # image, path
    skipped: pd.DataFrame  # image, split, path, reason

    def summary(self) -> dict:
        """Counts for logs and reports."""
        ids = self.train["id"]
        return {
            "layout": self.layout,
            "train_images": int(len(self.train)),
            "individuals": int(ids[ids != NEW_WHALE].nunique()),
            "new_whale_images": int((ids == NEW_WHALE).sum()),
            "test_images": int(len(self.test)),
            "skipped": int(len(self.skipped)),
        }


def _names(items, n: int = _SHOW) -> str:
    items = list(items)
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(str(x) for x in items[:n]) + more


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError("file not found.", file=path,
                        fix=f"point data.root at a folder that contains {path.name}.")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot be read as CSV ({str(exc).strip().splitlines()[0]}).", file=path,
                        fix="save it as a comma-separated file with a header row.") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _detect(frame: pd.DataFrame, path: Path) -> str:
    cols = set(frame.columns)
    for layout, (image, ident, extra) in LAYOUTS.items():
        if {image, ident, *extra} <= cols:
            return layout
    wanted = " or ".join(",".join([i, *e, d]) for i, d, e in LAYOUTS.values())
    raise DataError(f"missing columns: expected {wanted}; found {','.join(frame.columns) or 'none'}.",
                    file=path, fix="rename the header row to one of the expected layouts.")


def _check_rows(frame: pd.DataFrame, image: str, ident: str | None, path: Path) -> None:
    """Empty values and duplicated images, each reported with its CSV row number."""
    for col in (image, ident):
        if col is None:
            continue
        blank = frame.index[frame[col].str.strip() == ""]
        if len(blank):
            what = "image name" if col == image else "class value"
            raise DataError(f"empty {what} in column {col!r} ({len(blank)} row(s) like this).",
                            file=path, row=int(blank[0]) + 2,
                            fix=f"fill in {col} on that row (unknown individuals are {NEW_WHALE!r}) "
                                "or delete the row.")
    dup = frame[image].duplicated(keep=False)
    if dup.any():
        name = frame.loc[dup.idxmax(), image]
        rows = [int(i) + 2 for i in frame.index[frame[image] == name]]
        raise DataError(f"image {name!r} is listed more than once (rows {', '.join(map(str, rows))}); "
                        f"{int(frame[image].duplicated().sum())} duplicated row(s) in all.",
                        file=path, row=rows[1], fix="keep one row per image.")


def _first_dir(root: Path, *names: str) -> Path | None:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def _require_files(names: pd.Series, folder: Path, listing: Path) -> pd.Series:
    """Absolute paths of ``names`` in ``folder``; error on any that do not exist."""
    paths = names.map(lambda n: os.path.join(folder, n))
    exists = paths.map(os.path.isfile)
    if not exists.all():
        missing = names[~exists]
        raise DataError(f"{len(missing)} image(s) listed but absent from {folder}: {_names(missing)}.",
                        file=listing, row=int(missing.index[0]) + 2,
                        fix=f"copy the missing images into {folder} or delete their rows.")
    return paths


def _test_list(root: Path, folder_names: tuple[str, ...], image_col: str) -> tuple[pd.DataFrame, Path | None]:
    folder = _first_dir(root, *folder_names)
    sample = root / "sample_submission.csv"
    listed = None
    if sample.is_file():
        frame = _read_csv(sample)
        col = next((c for c in frame.columns if c.lower() == image_col.lower()), None)
        if col is None:
            raise DataError(f"missing column {image_col!r}; found {','.join(frame.columns) or 'none'}.",
                            file=sample, fix=f"give it a header row starting with {image_col}.")
        _check_rows(frame, col, None, sample)
        listed = frame[col]
        _require_files(listed, folder or root / folder_names[0], sample)
    if folder is None:
        return pd.DataFrame({"image": pd.Series(dtype=str), "path": pd.Series(dtype=str)}), None
    names = sorted(e.name for e in os.scandir(folder) if e.is_file() and is_image_name(e.name))
    if listed is not None and len(extra := sorted(set(names) - set(listed))):
        log.warning("%s: %d image(s) not in sample_submission.csv are included in the test set: %s",
                    folder, len(extra), _names(extra))
    return pd.DataFrame({"image": names, "path": [os.path.join(folder, n) for n in names]}), folder


def _check_images(frame: pd.DataFrame, split: str, progress: bool) -> pd.DataFrame:
    """Decode every image (threads: Pillow releases the GIL); return the failures."""
    if frame.empty:
        return pd.DataFrame(columns=["image", "split", "path", "reason"])
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = pool.map(check_image, frame["path"])
        from ..progress import progress

        reasons = list(progress(results, total=len(frame), description=f"checking {split} images",
                                quiet=not progress, unit="images"))
    bad = [i for i, r in enumerate(reasons) if r is not None]
    return pd.DataFrame({"image": frame["image"].iloc[bad].tolist(), "split": split,
                         "path": frame["path"].iloc[bad].tolist(), "reason": [reasons[i] for i in bad]})


def load_catalog(root: str | os.PathLike, *, strict: bool = False, check_images: bool = True,
                 progress: bool = False) -> Catalog:
    """Read and validate the data set in ``root`` (kaggle or happywhale layout)."""
    root = Path(root).absolute()
    if not root.is_dir():
        raise DataError("data folder not found.", file=root,
                        fix="set data.root to a folder holding train.csv and the image folders.")
    train_csv = root / "train.csv"
    frame = _read_csv(train_csv)
    layout = _detect(frame, train_csv)
    image_col, id_col, _ = LAYOUTS[layout]
    if frame.empty:
        raise DataError("has a header but no rows.", file=train_csv, fix="list one labelled image per row.")
    _check_rows(frame, image_col, id_col, train_csv)
    train_names = ("train",) if layout == "kaggle" else ("train_images", "train")
    train_dir = _first_dir(root, *train_names)
    if train_dir is None:
        raise DataError(f"no {' or '.join(n + '/' for n in train_names)} image folder.", file=root,
                        fix="put the training images in a train/ folder beside train.csv.")
    ids = frame[id_col].str.strip()
    ids = ids.where(ids != new_label(layout), NEW_WHALE)  # the layout's spelling → the internal label
    train = pd.DataFrame({"image": frame[image_col], "id": ids,
                          "path": _require_files(frame[image_col], train_dir, train_csv)})
    test_names = ("test",) if layout == "kaggle" else ("test_images", "test")
    test, test_dir = _test_list(root, test_names, image_col)
    overlap = sorted(set(test["image"]) & set(train["image"]))
    if overlap:
        raise DataError(f"{len(overlap)} test image name(s) also appear in train.csv: {_names(overlap)}.",
                        file=test_dir or root / "sample_submission.csv",
                        fix="remove training photos from the test folder (or rename them).")

    skipped = pd.DataFrame(columns=["image", "split", "path", "reason"])
    if check_images:
        skipped = pd.concat([_check_images(train, "train", progress), _check_images(test, "test", progress)],
                            ignore_index=True)
    if len(skipped):
        first = skipped.iloc[0]
        if strict:
            raise DataError(f"{first['reason']}; {len(skipped)} corrupt or unreadable image(s) in all: "
                            f"{_names(skipped['image'])}.", file=first["path"],
                            fix="replace or remove these files, or run without --strict to skip them.")
        log.warning("skipping %d corrupt or unreadable image(s) (%d train, %d test): %s",
                    len(skipped), int((skipped["split"] == "train").sum()),
                    int((skipped["split"] == "test").sum()), _names(skipped["image"]))
        bad = set(zip(skipped["split"], skipped["image"]))
        train = train[[("train", n) not in bad for n in train["image"]]]
        test = test[[("test", n) not in bad for n in test["image"]]]
    return Catalog(root=root, layout=layout, train=train.reset_index(drop=True),
                   test=test.reset_index(drop=True), skipped=skipped.reset_index(drop=True))
