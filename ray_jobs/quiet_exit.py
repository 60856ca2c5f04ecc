"""No traceback when Ray stops a worker whose job is done: ``Exception ignored … SystemExit: 1``.

When a trial ends, Tune removes its placement group and the raylet stops the trial's worker
with SIGTERM. Ray's SIGTERM handler raises ``SystemExit(1)`` in the worker's main thread, at
whatever Python code runs there — and while Tune tears the trial's actor down, that is often a
weakref callback (``WeakSet._remove`` as the trial's thread and tensors are freed). Python cannot
raise out of such a callback, so it prints the exception as "ignored" to stderr, which Ray
forwards to the driver: ``make demo`` ended with that traceback after a clean run. The raylet
follows up with SIGKILL a moment later, so the exit happens either way; only the message is
wrong.

:func:`install` adds a ``sys.unraisablehook`` that drops exactly that case — a ``SystemExit``
raised by a function named ``sigterm_handler`` (Ray's) — and hands every other unraisable
exception to the hook that was there before.
"""
from __future__ import annotations

import sys

HANDLER = "sigterm_handler"


def _from_sigterm_handler(exc: BaseException | None) -> bool:
    if not isinstance(exc, SystemExit):
        return False
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == HANDLER:
            return True
        tb = tb.tb_next
    return False


def install() -> None:
    """Make this process's unraisable-exception hook quiet about Ray's SIGTERM exit (idempotent)."""
    previous = sys.unraisablehook
    if getattr(previous, "_whaleflow_quiet_exit", False):
        return

    def hook(unraisable) -> None:
        if _from_sigterm_handler(unraisable.exc_value):
            return  # Ray is stopping this worker; the raylet's SIGKILL finishes the exit
        previous(unraisable)

    hook._whaleflow_quiet_exit = True
    sys.unraisablehook = hook
