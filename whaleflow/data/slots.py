"""Shared-memory batch buffers that the loader's workers reuse instead of allocating one per batch.

A batch travels from a worker to the training process in shared memory. A fresh segment
per batch costs its page faults on every batch: at 448² × 32 uint8, 10.9 ms to allocate
and fill against 2.3 ms to refill a kept one (measured on this 2-core machine), about a
sixth of the metric augmentation set's own time. So each worker keeps ``per_worker``
buffers (its slots), and a flag per slot in memory shared with the training process says
whether the slot is in flight:

* the worker takes a free slot (flag 0 → 1), builds the batch into it and sends it; with
  none free (the trainer is behind) it builds into a fresh segment as before (slot −1);
* the training process copies the batch out (its own memory, reused by the allocator) and
  clears the flag: the step holds a copy, never the slot, so a slot is rewritten only
  after nobody reads it. It also keeps each slot's mapping, so the next batch in that slot
  arrives without mapping the segment again (torch finds it in its cache of shared
  storages). With pinned memory torch's pin thread has copied the batch already, and the
  flag is cleared on arrival.

An epoch left early (an error in the step) leaves the slots of its undelivered batches
taken: torch drops those batches when the next epoch starts, and clearing their flags
then could free a slot a worker is already refilling for the new epoch. Each lost slot
only means that worker builds into fresh segments more often, as before the slots.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

FREE, TAKEN = 0, 1


def shared_uint8(shape: tuple[int, ...]) -> torch.Tensor:
    """A uint8 tensor in a fresh shared-memory segment (what torch's own collate allocates)."""
    proto = torch.empty(0, dtype=torch.uint8)
    return proto.new(proto._typed_storage()._new_shared(int(np.prod(shape)), device="cpu")).view(shape)


class WorkerSlots:
    """One worker's reusable buffers; ``flags`` (a shared byte array, ``per_worker`` per worker)
    is created by the loader before the workers start and reaches them with the dataset."""

    def __init__(self, flags, per_worker: int):
        self.flags = flags
        self.per_worker = int(per_worker)
        self._buffers: dict[int, torch.Tensor] = {}

    def take(self, worker: int, shape: tuple[int, ...]) -> tuple[int, torch.Tensor]:
        """(slot, buffer of ``shape``): a free slot of ``worker``, or (−1, a fresh segment)."""
        if self.flags is not None:
            for slot in range(worker * self.per_worker, (worker + 1) * self.per_worker):
                if self.flags[slot] == FREE:
                    self.flags[slot] = TAKEN
                    buf = self._buffers.get(slot)
                    if buf is None or tuple(buf.shape) != tuple(shape):  # a new stage size: a new buffer
                        buf = self._buffers[slot] = shared_uint8(shape)
                    return slot, buf
        return -1, shared_uint8(shape)

    def __getstate__(self):
        return {"flags": self.flags, "per_worker": self.per_worker, "_buffers": {}}


def released(batches: Iterator[tuple[int, torch.Tensor, object, int]], flags, *, copy: bool,
             held: dict[int, torch.Tensor]) -> Iterator[tuple[int, torch.Tensor, object]]:
    """(i, pixels, extra, slot) from the workers → (i, pixels, extra) that the step may keep,
    each slot's flag cleared once its batch is out of it (see the module). ``held``: the
    loader's slot → mapping, kept across epochs."""
    for i, pixels, extra, slot in batches:
        if slot >= 0:
            if copy:
                held[slot] = pixels          # keeps the mapping: the next batch in this slot needs no mmap
                pixels = pixels.clone()
            flags[slot] = FREE
        yield i, pixels, extra
