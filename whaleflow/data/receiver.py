"""A thread of this process that takes batches off the loader's workers ahead of the step."""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Iterator


def received(batches: Iterator, depth: int, stop: threading.Event) -> tuple[Iterator, threading.Thread]:
    """``batches`` fetched by a thread of this process, ``depth`` ahead of the consumer.

    Taking a batch from a worker costs the taker a wait even when the batch is ready
    (the worker hands over the batch's shared-memory file descriptor through a socket):
    3–8 ms a batch here, measured with ``benchmarks/train_input.py``'s stand-in step. Done in
    the training loop, that wait adds to every step (an epoch took 1.26 × max(load,
    compute)); done here, it overlaps the step (1.13–1.18 ×), as torch's
    own pin-memory thread does on a GPU. ``stop`` ends the thread at its next batch when
    the consumer leaves early (an error in the step, a trial stopped).
    """
    box: queue.Queue = queue.Queue(depth)
    end = object()

    def offer(item) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        try:
            for item in batches:
                if not offer(item):
                    return
            offer(end)
        except BaseException as exc:  # re-raised in the consumer, where the trainer can report it
            offer(_Failed(exc))

    thread = threading.Thread(target=fetch, name="whaleflow-batch-receiver", daemon=True)
    thread.start()

    def consume() -> Iterator:
        try:
            while True:
                item = box.get()
                if item is end:
                    return
                if isinstance(item, _Failed):
                    raise item.exc
                yield item
        finally:
            stop.set()

    return consume(), thread


@dataclass(frozen=True)
class _Failed:
    exc: BaseException
