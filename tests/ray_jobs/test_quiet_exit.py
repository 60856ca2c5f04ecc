"""A worker stopped by SIGTERM while a weakref callback runs prints no ``Exception ignored … SystemExit``.

The mechanism of the traceback ``make demo`` used to end with, reproduced in a plain process: a
SIGTERM handler that raises ``SystemExit(1)`` (as Ray's does) fires inside a weakref callback (as
``WeakSet._remove`` during a trial's teardown). Without :mod:`ray_jobs.quiet_exit` Python prints
the exception as ignored; with it, nothing — and any other unraisable exception is still shown.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHILD = r'''
import os, signal, sys, weakref
if sys.argv[1] == "quiet":
    from ray_jobs.quiet_exit import install
    install()

def sigterm_handler(signum, frame):  # what ray._private.worker installs in a worker
    raise SystemExit(1)

signal.signal(signal.SIGTERM, sigterm_handler)

class Thing:
    """Something a weak reference can point at (a plain object() cannot be weakly referenced)."""

def on_free(ref):  # a weakref callback, like WeakSet._remove
    os.kill(os.getpid(), signal.SIGTERM)
    spin = 0
    while spin < 1000:  # the handler runs at the next bytecode boundary, inside this callback
        spin += 1

def on_free_broken(ref):
    raise ValueError("a real bug in a callback")

thing = Thing()
ref = weakref.ref(thing, on_free)
del thing
other = Thing()
ref2 = weakref.ref(other, on_free_broken)
del other
print("still running", flush=True)
'''


@pytest.mark.parametrize("mode", ["plain", "quiet"])
def test_the_sigterm_exit_inside_a_weakref_callback_prints_nothing(mode):
    proc = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.stdout.strip() == "still running"
    assert "ValueError: a real bug in a callback" in proc.stderr, "other unraisable exceptions are still shown"
    if mode == "plain":
        assert "SystemExit: 1" in proc.stderr and "sigterm_handler" in proc.stderr, proc.stderr
    else:
        assert "SystemExit" not in proc.stderr, proc.stderr
        assert proc.stderr.count("Exception ignored") == 1, proc.stderr
