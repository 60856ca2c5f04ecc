"""Training batches built in worker processes while the device computes the previous ones.

A family's sampler decides, in the main process, what each batch holds (rows, flips,
labels); :class:`BatchLoader` hands those :class:`BatchSpec`s to a torch ``DataLoader``
whose workers read the rows from the memmap cache of the stage's size, flip and
augment them, and send back uint8 tensors: a quarter of float32's bytes through the
worker queues, the pinned buffers and the PCIe link; the device normalises them
(:func:`whaleflow.engine.device.to_device_images`). The workers start once per fit and
stay (persistent workers, across epochs and stages), each keeping ``prefetch`` batches
ready, so an epoch costs max(load, compute) rather than their sum.

Every batch carries its own augmentation seed, drawn from (seed, epoch, batch index):
one batch is built by one worker, whichever, and comes out the same, so the weights do
not depend on the number of workers and a resumed run replays exactly. The seed is
per batch, not per image, because restarting albumentations' random stream costs
0.2–0.6 ms, a quarter of the siamese set's work on a 384² image.

Each worker builds its batches into shared-memory slots it reuses, and the training
process copies each batch out before the step sees it (:mod:`whaleflow.data.slots`);
a thread of the training process takes the batches off the workers ahead of the step
(:mod:`whaleflow.data.receiver`).

The workers start from a fork server (see :func:`_context`), so what they read is
pickled to them, and the cache is not: each :class:`~whaleflow.data.dataset.CachedImages`
travels as its file name and maps the file on first use in the worker.
"""
from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import select
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from ..config import size_hw
from ..errors import WhaleflowError
from .dataset import CachedImages, cache_for_size
from .receiver import received
from .slots import WorkerSlots, released


@dataclass(frozen=True)
class BatchSpec:
    """One batch to build: cache rows, their flips, the image size, the augmentation seed,
    and the array the step needs beside the pixels (labels, targets), returned as a tensor."""

    rows: np.ndarray
    flips: np.ndarray
    size: tuple[int, int]
    seed: int
    extra: Any = ()


def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """The augmentation seed of batch ``batch`` of epoch ``epoch``: independent of order."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(batch)]).generate_state(1)[0])


def resolve_workers(workers: int | None, cpus: float | None = None) -> int:
    """``train.workers``, or by default one worker per CPU of the trial beyond the one the
    training loop itself uses (so a 1-CPU trial reads in its own process)."""
    if workers is not None:
        if workers < 0:
            raise ValueError(f"train.workers must be ≥ 0, got {workers}")
        return int(workers)
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(16, int(round(cpus)) - 1))


class BatchReader(torch.utils.data.Dataset):
    """``reader[spec]`` → (uint8 tensor (B, C, H, W), spec.extra as a tensor); runs in the workers.
    A map-style dataset indexed by specs, so it has no length."""

    def __init__(self, caches: dict[tuple[int, int], np.ndarray], augment: Callable | None,
                 slots: WorkerSlots | None = None):
        self.caches = {size_hw(k): CachedImages(v, augment=augment).detached() for k, v in caches.items()}
        self.slots = slots or WorkerSlots(None, 0)

    def build(self, spec: BatchSpec) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(pixels, extra, slot): built in place in a worker's shared-memory slot (−1: none)."""
        source = self.caches[cache_for_size(self.caches, spec.size)]
        shape = (len(spec.rows), source.channels, *size_hw(spec.size))
        info = torch.utils.data.get_worker_info()
        if info is None:
            pixels, slot = torch.from_numpy(source.batch_uint8(spec.rows, spec.flips, spec.size, seed=spec.seed)), -1
        else:  # straight into shared memory, as torch's own collate does: no copy to send it
            slot, pixels = self.slots.take(info.id, shape)
            source.batch_uint8(spec.rows, spec.flips, spec.size, seed=spec.seed, out=pixels.numpy())
        # the step's labels travel as tensors too: pinned with the pixels, copied without a sync
        return pixels, torch.as_tensor(np.asarray(spec.extra)), slot

    def __getitem__(self, spec: BatchSpec):
        return self.build(spec)[:2]


class _Numbered(BatchReader):
    """``reader[(i, spec)]`` → (i, pixels, extra, slot): batches come back in any order and
    are put back in order by number (:func:`_in_order`) once out of their slot
    (:func:`~whaleflow.data.slots.released`)."""

    def __getitem__(self, item: tuple[int, BatchSpec]):
        i, spec = item
        return (i, *self.build(spec))


def _in_order(numbered: Iterator[tuple[int, torch.Tensor, Any]]) -> Iterator[tuple[torch.Tensor, Any]]:
    """Yield batches by their number, holding any that arrive early (what the other workers
    finish while one builds the batch the step waits for: a few)."""
    early: dict[int, tuple[torch.Tensor, Any]] = {}
    want = 0
    for i, pixels, extra in numbered:
        early[i] = (pixels, extra)
        while want in early:
            yield early.pop(want)
            want += 1
    if early:
        raise RuntimeError(f"the loader lost batch {want} of the epoch")


class _Feed(torch.utils.data.Sampler):
    """The sampler of the DataLoader: this epoch's specs, set before each pass."""

    def __init__(self):
        self.specs: Iterable[BatchSpec] = ()

    def __iter__(self) -> Iterator[tuple[int, BatchSpec]]:
        return enumerate(self.specs)


def _as_is(sample):
    return sample


def _init_worker(_worker_id: int, *, owner: int) -> None:
    # one thread per worker: the workers are the parallelism, nested thread pools only contend
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    _exit_with(owner)


def _exit_with(owner: int) -> None:
    """End this worker when the process that owns the loader ends, however it ends.

    torch's workers watch their parent, but a fork server's worker's parent is the fork
    server, which in turn waits for every holder of its liveness pipe, the workers
    included, to close it: after a ``kill -9`` of the trainer (Ray stopping a trial, the
    OOM killer) neither would ever exit, and each orphan keeps its memory, its CPU share
    and the trainer's stdout open. So a thread waits on the owner itself (a pidfd, which
    also fires for a zombie not yet reaped; a poll where there is none) and ends the worker.
    """
    import threading

    def wait() -> None:
        try:
            fd = os.pidfd_open(owner)
        except (AttributeError, OSError) as exc:  # no pidfd (not Linux ≥ 5.3): poll
            if isinstance(exc, ProcessLookupError):
                os._exit(0)
            while _alive(owner):
                time.sleep(1.0)
        else:
            select.select([fd], [], [])
        os._exit(0)  # an orphan has nothing to hand back: no cleanup, no stderr noise

    threading.Thread(target=wait, name="whaleflow-owner-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user (a reused pid): treat as alive
        return True
    return True


def _context():
    """Workers start from a fork server: a clean single-threaded process that imported the
    heavy modules once. A plain fork copies this process's thread pools mid-state (OpenCV's
    pool deadlocks the child; so can gRPC threads in a Ray worker); spawn would import torch
    again for every worker of every fit."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return None  # not POSIX: the platform default (spawn)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "cv2", "albumentations", __name__])
    return ctx


class LoaderWorkerError(WhaleflowError):
    """A worker process of the loader died (it printed its own error to stderr)."""


def _explained(batches: Iterator, workers: int) -> Iterator:
    """``batches``, with torch's "DataLoader worker exited unexpectedly" turned into what to do."""
    try:
        yield from batches
    except RuntimeError as exc:
        if workers == 0 or "exited unexpectedly" not in str(exc):
            raise
        raise LoaderWorkerError(f"{exc} (train.workers={workers}). {_worker_fix()}") from exc


def _worker_fix() -> str:
    """The likely causes, the script's own first: forkserver workers import the main script
    (as spawn does), so one that trains at its top level trains again in every worker and
    dies there with Python's "bootstrapping phase" error."""
    import __main__

    script = getattr(__main__, "__file__", None) if getattr(__main__, "__spec__", None) is None else None
    guard = (f"If {script} trains at its top level, put that code under `if __name__ == \"__main__\":` "
             "(the workers import the main script, as for any torch DataLoader with workers). ") if script else ""
    return (f"Fix: {guard}A worker killed for memory: lower train.prefetch or train.workers; "
            "train.workers=0 reads the batches in this process.")


class BatchLoader:
    """Build batches of :class:`BatchSpec`s in ``workers`` processes (0: in this process).

    ``caches`` maps (height, width) → uint8 image array (the memmaps of the prepared
    folder); each spec is read from :func:`~whaleflow.data.dataset.pick_cache` of its size.
    """

    def __init__(self, caches: dict[tuple[int, int], np.ndarray], augment: Callable | None = None, *,
                 workers: int = 0, prefetch: int = 4, pin_memory: bool = False):
        if prefetch < 1:
            raise ValueError(f"train.prefetch must be ≥ 1, got {prefetch}")
        self.workers = int(workers)
        # with pinned memory torch's pin thread already takes the batches off the workers
        self._receive = self.workers > 0 and not pin_memory
        self._receiver: tuple[threading.Thread, threading.Event] | None = None
        self._feed = _Feed()
        ctx = _context() if self.workers > 0 else None
        # per worker: what it keeps ready, the one it builds, two the trainer is copying out
        per_worker = prefetch + 3
        self._flags = ((ctx or multiprocessing).RawArray("B", self.workers * per_worker)
                       if self.workers > 0 else None)
        self._pinned = pin_memory
        self._held: dict[int, torch.Tensor] = {}
        self._loader = torch.utils.data.DataLoader(
            _Numbered(caches, augment, WorkerSlots(self._flags, per_worker)), batch_size=None, sampler=self._feed, collate_fn=_as_is,
            # a batch goes to whichever worker has room and order is restored here: in torch's
            # strict round robin one slowed worker (a core shared with another job) paces all
            in_order=False,
            # its own generator: a loader iterator draws a base seed, which from the global RNG
            # would shift dropout and the model's randomness by when the workers started
            generator=torch.Generator().manual_seed(0),
            num_workers=self.workers, pin_memory=pin_memory, persistent_workers=self.workers > 0,
            prefetch_factor=prefetch if self.workers > 0 else None,
            worker_init_fn=functools.partial(_init_worker, owner=os.getpid()) if self.workers > 0 else None,
            multiprocessing_context=ctx)

    def epoch(self, specs: Iterable[BatchSpec]) -> Iterator[tuple[torch.Tensor, Any]]:
        """(uint8 images, extra) for each spec, in order; specs are drawn as workers free up."""
        if self._loader is None:
            raise RuntimeError("this BatchLoader was closed")
        self._join_receiver()  # an epoch left early: its thread must let go of the iterator first
        self._feed.specs = specs
        batches = _in_order(released(_explained(iter(self._loader), self.workers), self._flags,
                                     copy=not self._pinned, held=self._held))
        if not self._receive:
            return batches
        stop = threading.Event()
        batches, thread = received(batches, depth=2, stop=stop)
        self._receiver = (thread, stop)
        return batches

    def _join_receiver(self, timeout: float | None = None) -> None:
        if self._receiver is not None:
            thread, stop = self._receiver
            stop.set()
            # at most the batch it waits for: the workers are alive, or torch raises
            thread.join(timeout)
            self._receiver = None

    def close(self) -> None:
        """Stop the persistent workers now rather than whenever the loader is collected."""
        self._join_receiver(timeout=30.0)
        self._held.clear()
        it = getattr(self._loader, "_iterator", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
        self._loader = None

    def __del__(self):
        with contextlib.suppress(Exception):  # interpreter shutdown: the workers end with the process anyway
            self.close()
