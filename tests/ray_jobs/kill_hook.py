"""A Ray ``worker_process_setup_hook`` for the fault test: arms every worker's ``torch.save`` so that
the N-th write of a ``last.pt`` cuts it off half-way (as a torn write leaves it), says so in a marker
file with its pid, and waits for the kill -9.

Armed by a file (``KILL_HOOK_ARM``): the first worker to reach the write consumes it, so a worker
Ray reuses for the rerun never stops again. Test-only; not collected by pytest (no ``test_``)."""
from __future__ import annotations

import io
import os
import time
from pathlib import Path


def install() -> None:
    import torch

    arm = Path(os.environ["KILL_HOOK_ARM"])
    kill_at = int(os.environ["KILL_HOOK_AT"])
    real_save, calls = torch.save, [0]

    def save(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)) and ".last.pt." in Path(f).name and arm.exists():
            calls[0] += 1
            if calls[0] == kill_at:
                try:
                    arm.unlink()
                except FileNotFoundError:
                    return real_save(obj, f, *args, **kwargs)  # another worker took it
                buf = io.BytesIO()
                real_save(obj, buf, *args, **kwargs)
                target = Path(f)
                last = target.parent / "last.pt"
                last.replace(target.parent / "previous.pt")  # a file system that tears: the old last moved,
                with open(last, "wb") as fh:                 # the new one cut off in place
                    fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                    fh.flush()
                    os.fsync(fh.fileno())
                Path(os.environ["KILL_HOOK_MARKER"]).write_text(str(os.getpid()))
                time.sleep(600)
        return real_save(obj, f, *args, **kwargs)

    torch.save = save
