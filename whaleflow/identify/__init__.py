"""Use a trained run: identify new photos, review the matches, grow the catalogue.

``identify(run_dir, photos)`` ranks the catalogue's individuals for each photo with the
run's models, gallery and tuned blend (``matches.csv`` + the review page ``matches.html``);
``enroll(run_dir, decisions.csv)`` adds the confirmed photos, new individuals included,
to the gallery of every family, without retraining. No Ray; CPU or GPU.

Names are imported on first use, so the command line (which registers the subcommands
from :mod:`.cli`) does not load torch for other commands.
"""
from __future__ import annotations

import importlib

_NAMES = {"Enrolment": "enrolment", "enroll": "enrolment", "read_decisions": "enrolment", "Matches": "matching",
          "identify": "matching", "TrainedRun": "trained_run", "load_run": "trained_run"}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
