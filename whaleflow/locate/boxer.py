"""Open a saved boxer by the format its file names: a learned box model or the label-free one.

Both kinds answer ``predict(paths, names)`` with ``Image,x0,y0,x1,y1,score`` rows, so
``prepare``, ``identify`` and ``whaleflow boxes predict`` never ask which kind they hold.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..data.boxes import Boxes
from ..errors import DataError
from ..registry import Registry
from . import auto_box, box_model
from .box_source import RUN_BOXER

#: model-file format → loader(path, saved dict)
BOXERS: Registry = Registry("box model format")
BOXERS.register(box_model.FORMAT)(box_model.BoxModel.load)
BOXERS.register(auto_box.FORMAT)(auto_box.ActivationBoxer.load)


def load_boxer(path: str | Path):
    """The boxer saved at ``path`` (one-line error when it is missing or not a boxer)."""
    saved = box_model.read_model_file(path)
    fmt = str(saved["format"])
    if fmt not in BOXERS:
        raise DataError(f"unknown box model format {fmt!r}.", file=path,
                        fix="fit it again with this whaleflow version (`whaleflow boxes fit`).")
    return BOXERS.get(fmt)(path, saved)


def run_boxer(run_dir: str | Path):
    """The boxer a run folder holds, or None when its photos were not cropped by one."""
    path = Path(run_dir) / RUN_BOXER
    return load_boxer(path) if path.is_file() else None


def with_run_boxes(run_dir: str | Path, paths: Sequence[Path], table: Boxes | None) -> Boxes | None:
    """``table`` (a box file read, or None) plus, when the run holds a boxer, a predicted box for
    each photo of ``paths`` the table does not list (by file name, as box files name photos)."""
    boxer = run_boxer(run_dir)
    listed = set(table.boxes) - set(table.bad) if table is not None else set()
    todo = [Path(p) for p in paths if Path(p).name not in listed]
    if boxer is None or not todo:
        return table
    pred, _skipped = boxer.predict(todo)  # an unreadable photo is skipped again, and counted, by the caller
    boxes = dict(table.boxes) if table is not None else {}
    for k, r in enumerate(pred.itertuples(index=False)):
        boxes[r.Image] = (r.x0, r.y0, r.x1, r.y1, k + 2)
    return Boxes(table.file if table is not None else str(Path(run_dir) / RUN_BOXER), boxes,
                 list(table.problems) if table is not None else [], table.digest if table is not None else "",
                 set(table.bad) - set(pred["Image"]) if table is not None else set(), set(pred["Image"]))
