"""Open a saved boxer by the format its file names: a learned box model or the label-free one.

Both kinds answer ``predict(paths, names)`` with ``Image,x0,y0,x1,y1,score`` rows, so
``prepare``, ``identify`` and ``whaleflow boxes predict`` never ask which kind they hold.
"""
from __future__ import annotations

from pathlib import Path

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
