"""The progress helper: silent when quiet, one line at most off a terminal, a live bar on one."""
from __future__ import annotations

import io

import pytest

from whaleflow.progress import ProgressBar, is_interactive, progress, progress_bar


class _Tty(io.StringIO):
    """A text stream that claims to be a terminal."""

    def isatty(self):
        return True


def test_quiet_prints_nothing_even_on_a_terminal():
    for stream in (io.StringIO(), _Tty()):
        items = list(progress(range(5), description="hashing", quiet=True, stream=stream, min_seconds=0))
        assert items == list(range(5))
        assert stream.getvalue() == ""


def test_not_a_terminal_prints_at_most_one_line_at_the_end():
    stream = io.StringIO()
    seen = []
    for i in progress(range(50), description="caching images", unit="images", stream=stream, min_seconds=0):
        seen.append(stream.getvalue())  # nothing is written while it runs
        assert seen[-1] == ""
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("caching images: 50/50 images in ")


def test_fast_step_off_a_terminal_prints_nothing():
    stream = io.StringIO()
    list(progress(range(3), description="quick", stream=stream))  # default min_seconds=2
    assert stream.getvalue() == ""


def test_terminal_gets_a_live_bar_and_a_summary_line():
    stream = _Tty()
    with progress_bar(total=4, description="scoring pairs", unit="blocks", stream=stream, min_seconds=0) as bar:
        assert bar.mode == "live"
        for i in range(4):
            bar.advance(note=f"block {i}")
    out = stream.getvalue()
    assert "scoring pairs" in out and "\x1b[" in out  # rich drew (ANSI) while it ran
    assert out.rstrip().splitlines()[-1].startswith("scoring pairs: 4/4 blocks in ")


def test_nested_bars_share_one_display():
    stream = _Tty()
    for _ in progress(range(2), description="epochs", stream=stream, min_seconds=0):
        with progress_bar(3, "batches", stream=stream, leave=False) as inner:
            for _ in range(3):
                inner.advance()
    lines = [ln for ln in stream.getvalue().splitlines() if ln.startswith(("epochs:", "batches:"))]
    assert lines == [ln for ln in lines if ln.startswith("epochs:")] and len(lines) == 1


def test_error_and_early_stop():
    stream = io.StringIO()
    with pytest.raises(RuntimeError):
        with ProgressBar(10, "mining", stream=stream) as bar:
            bar.advance(3)
            raise RuntimeError("boom")
    assert stream.getvalue().strip().endswith("[stopped by an error]")
    stream = io.StringIO()
    for i in progress(iter(range(100)), description="stopping early", stream=stream, min_seconds=0):
        if i == 4:
            break
    assert "stopped by an error" not in stream.getvalue()


def test_total_learned_late_and_no_len():
    stream = io.StringIO()
    gen = (i for i in range(7))
    with ProgressBar(None, "trials", stream=stream, min_seconds=0) as bar:
        for _ in gen:
            bar.advance()
        bar.update(total=7)
    assert "trials: 7/7 it" in stream.getvalue()


def test_is_interactive_handles_odd_streams():
    assert not is_interactive(io.StringIO())
    assert is_interactive(_Tty())
    assert not is_interactive(object())
