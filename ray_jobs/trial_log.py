"""``trials/<name>/log.txt``: what a trial printed, kept in the run folder beside its results.

Ray writes a worker's output to log files on the node that ran it (and forwards it to
the driver's console while the driver is attached); a finished run should not need the
node to explain a trial. :func:`trial_log` tees the trial's ``sys.stdout`` and
``sys.stderr`` into the trial folder's ``log.txt`` for the duration, and hands back the
file so the trial can also write its per-epoch lines there (and only there: the driver
prints its own). A retried trial appends, under a line naming the attempt.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import IO, Iterator

LOG_NAME = "log.txt"


class _Tee:
    """A text stream that writes to the original stream and to the log file."""

    def __init__(self, original: IO[str], log: IO[str], lock: threading.Lock):
        self._original, self._log, self._lock = original, log, lock

    def write(self, text: str) -> int:
        with self._lock:
            with contextlib.suppress(ValueError):  # log closed by a late writer thread
                self._log.write(text)
                if "\n" in text:
                    self._log.flush()
        return self._original.write(text)

    def flush(self) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._log.flush()
        self._original.flush()

    def __getattr__(self, name):  # isatty, fileno, encoding, ... of the original stream
        return getattr(self._original, name)


@contextlib.contextmanager
def trial_log(trial_dir: str | Path, header: str = "") -> Iterator[IO[str]]:
    """Tee stdout and stderr into ``trial_dir/log.txt`` (appending); yields the open log file."""
    path = Path(trial_dir) / LOG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    with open(path, "a", encoding="utf-8", buffering=1) as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()} {header}".rstrip() + "\n")
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, log, lock), _Tee(err, log, lock)
        try:
            yield log
        finally:
            sys.stdout, sys.stderr = out, err
