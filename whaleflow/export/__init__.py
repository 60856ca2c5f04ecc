"""Exports a population study's next tool reads, from a run's catalogue plus enrolled photos.

``whaleflow export RUN_DIR --format NAME --out PATH``; the formats are a registry
(:data:`FORMATS`, filled by :func:`register` in each format's module):

* ``capture-history`` (:mod:`.capture_history`): individual × occasion, 1 where the
  individual was photographed in the occasion;
* ``camtrapdp`` (:mod:`.camtrapdp`): a Camera Trap Data Package 1.0 (``datapackage.json``,
  ``deployments.csv``, ``media.csv``, ``observations.csv`` with ``individualID``);
* ``catalog`` (:mod:`.catalog_folder`): one folder per individual with its photos cropped
  to their boxes, and ``catalog.csv``.

What they read is one table (:mod:`.records`): every labelled photo of the run (train
and validation) and every photo ``enroll`` added, with its individual, path, box and date.
"""
from __future__ import annotations

import importlib
from typing import Callable

#: format name → writer(records, out, options) → summary line
FORMATS: dict[str, Callable] = {}
_MODULES = ("capture_history", "camtrapdp", "catalog_folder")


def register(name: str):
    """Register ``fn`` as the writer of format ``name``."""
    def deco(fn):
        FORMATS[name] = fn
        return fn
    return deco


def formats() -> dict[str, Callable]:
    """Every registered format (their modules imported on first use)."""
    for m in _MODULES:
        importlib.import_module(f".{m}", __name__)
    return FORMATS


__all__ = ["FORMATS", "formats", "register"]
