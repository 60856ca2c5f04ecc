"""One progress helper for every step that can take more than a few seconds.

Hashing, caching, scoring all pairs, mining, local training epochs and Optuna trials
all report through this module, so they look and behave alike:

* on a terminal: a rich progress bar (description, bar, done/total, elapsed,
  remaining, and a short live note such as ``loss 0.412``), removed when the step ends
  and replaced by one summary line when the step took ``min_seconds`` or more;
* not on a terminal (a log file, CI, a Ray worker): nothing while it runs and at most
  one summary line at the end, and only when the step took ``min_seconds`` or more,
  so logs are not flooded with lines for instant steps;
* ``quiet=True``: nothing at all.

Two forms::

    for path in progress(paths, description="hashing images"):
        ...

    with progress_bar(total=n_blocks, description="scoring pairs") as bar:
        for block in blocks:
            ...
            bar.advance(note=f"block {i}")

Bars opened while another is live (a batch bar inside an epoch bar) join the same
rich display as extra rows instead of failing: rich allows one live display at a
time, so a single shared display is started by the first bar and stopped by the last.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Iterable, Iterator, Optional, TextIO, TypeVar

__all__ = ["progress", "progress_bar", "ProgressBar", "is_interactive"]

T = TypeVar("T")

_lock = threading.Lock()
_shared = {"display": None, "users": 0, "stream": None}


def is_interactive(stream: Optional[TextIO] = None) -> bool:
    """Whether ``stream`` (default: stderr) is a terminal a live bar can redraw."""
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # closed or detached stream
        return False


def _format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressBar:
    """A progress display for one step; use as a context manager (see module doc).

    ``total=None`` gives a spinner-like bar that only counts. ``unit`` names what is
    counted in the summary line ("images", "epochs"). The summary line is printed only
    for steps that took ``min_seconds`` or more, and never with ``leave=False`` (inner
    bars, such as batches inside an epoch); a step that fails always gets one.
    """

    def __init__(self, total: Optional[int] = None, description: str = "", *, quiet: bool = False,
                 stream: Optional[TextIO] = None, unit: str = "it", min_seconds: float = 2.0, leave: bool = True):
        self.total = None if total is None else int(total)
        self.description = description
        self.quiet = bool(quiet)
        self.stream = stream if stream is not None else sys.stderr
        self.unit = unit
        self.min_seconds = float(min_seconds)
        self.leave = bool(leave)
        self.completed = 0
        self.note = ""
        self.mode = "off" if self.quiet else ("live" if is_interactive(self.stream) else "summary")
        self._task = None
        self._t0: Optional[float] = None
        self._closed = False

    # ---- lifecycle
    def __enter__(self) -> "ProgressBar":
        self._t0 = time.perf_counter()
        if self.mode == "live":
            self._start_live()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # A consumer that stops iterating early closes the generator: not a failure.
        self.close(failed=exc_type is not None and not issubclass(exc_type, GeneratorExit))

    def close(self, failed: bool = False) -> None:
        """Remove the live row and print the summary line (once)."""
        if self._closed:
            return
        self._closed = True
        if self.mode == "live":
            self._stop_live()
        if self.mode == "off":
            return
        if not failed and (not self.leave or self.elapsed < self.min_seconds):
            return
        print(self.summary_line(failed=failed), file=self.stream, flush=True)

    @property
    def elapsed(self) -> float:
        return 0.0 if self._t0 is None else time.perf_counter() - self._t0

    def summary_line(self, failed: bool = False) -> str:
        """``description: 120/120 images in 4.2 s (28.6 images/s) — note``."""
        count = f"{self.completed}/{self.total}" if self.total is not None else f"{self.completed}"
        elapsed = self.elapsed
        rate = f", {self.completed / elapsed:.1f} {self.unit}/s" if elapsed > 0 and self.completed else ""
        line = f"{self.description or 'done'}: {count} {self.unit} in {_format_seconds(elapsed)}{rate}"
        if self.note:
            line += f" ({self.note})"
        if failed:
            line += " [stopped by an error]"
        return line

    # ---- updates
    def advance(self, n: int = 1, note: Optional[str] = None) -> None:
        """Count ``n`` more items done; ``note`` replaces the short live text."""
        self.completed += int(n)
        if note is not None:
            self.note = str(note)
        self._refresh()

    def update(self, *, completed: Optional[int] = None, total: Optional[int] = None,
               description: Optional[str] = None, note: Optional[str] = None) -> None:
        """Set any of the counters or texts directly (e.g. a total learned late)."""
        if completed is not None:
            self.completed = int(completed)
        if total is not None:
            self.total = int(total)
        if description is not None:
            self.description = description
        if note is not None:
            self.note = str(note)
        self._refresh()

    # ---- the shared rich display
    def _start_live(self) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        with _lock:
            display = _shared["display"]
            if display is None or _shared["stream"] is not self.stream:
                if display is not None:  # another stream is live: fall back to a summary line
                    self.mode = "summary"
                    return
                console = Console(file=self.stream, force_terminal=True)
                display = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                                   MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
                                   TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
                                   console=console, transient=True)
                display.start()
                _shared.update(display=display, stream=self.stream)
            _shared["users"] += 1
            self._task = display.add_task(self.description, total=self.total, note=self.note)

    def _stop_live(self) -> None:
        with _lock:
            display = _shared["display"]
            if display is None or self._task is None:
                return
            display.remove_task(self._task)
            self._task = None
            _shared["users"] -= 1
            if _shared["users"] <= 0:
                display.stop()
                _shared.update(display=None, users=0, stream=None)

    def _refresh(self) -> None:
        if self.mode != "live" or self._task is None:
            return
        display = _shared["display"]
        if display is not None:
            display.update(self._task, completed=self.completed, total=self.total,
                           description=self.description, note=self.note)


def progress_bar(total: Optional[int] = None, description: str = "", *, quiet: bool = False,
                 stream: Optional[TextIO] = None, unit: str = "it", min_seconds: float = 2.0,
                 leave: bool = True) -> ProgressBar:
    """A :class:`ProgressBar` to use in a ``with`` block and advance by hand."""
    return ProgressBar(total, description, quiet=quiet, stream=stream, unit=unit, min_seconds=min_seconds,
                       leave=leave)


def progress(iterable: Iterable[T], total: Optional[int] = None, description: str = "", *,
             quiet: bool = False, stream: Optional[TextIO] = None, unit: str = "it",
             min_seconds: float = 2.0, leave: bool = True) -> Iterator[T]:
    """Yield from ``iterable`` while showing progress; ``total`` defaults to ``len(iterable)``."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with ProgressBar(total, description, quiet=quiet, stream=stream, unit=unit,
                     min_seconds=min_seconds, leave=leave) as bar:
        for item in iterable:
            yield item
            bar.advance()
