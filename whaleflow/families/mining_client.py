"""How a siamese task hands its score matrix to a miner and gets pairs back.

The task scores all training images (plus their flips, which are other
individuals) in row blocks and ``submit``s them; it later ``poll``s for the newest
mined pairs. :class:`LocalMiningClient` mines synchronously in this process. The Ray
layer provides a client with the same two methods that streams the row blocks into
a MiningActor, which solves the assignment in its own thread while the trial keeps
training on the previous pairs. A sparse round sends ``submit_candidates`` instead:
each image's top-k candidates scored on the trial's device (``N·k`` entries, not
``N×N``; :mod:`whaleflow.mining.candidates`), made by a callable only when the
round is not skipped. ``neg_labels`` (optional) are the codes that forbid
negatives (individuals merged through near-duplicate groups); ``labels`` decide the
positives.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Protocol

import numpy as np


class MiningClient(Protocol):
    def submit(self, epoch: int, row_blocks: Iterable[tuple[int, np.ndarray]], n: int, labels: np.ndarray,
               neg_labels: np.ndarray | None = None) -> None: ...

    def submit_candidates(self, epoch: int, make_candidates: Callable[[], Any], labels: np.ndarray,
                          neg_labels: np.ndarray | None = None) -> None: ...

    def poll(self) -> Any | None: ...

    def status(self) -> dict[str, Any]: ...


class LocalMiningClient:
    """Assemble the N×N matrix and mine it right away with ``miner`` (a ``LapMiner``)."""

    def __init__(self, miner, seed: int = 0, dtype=np.float32):
        self.miner = miner
        self.seed = seed
        self.dtype = dtype
        self._pending = None
        self._status: dict[str, Any] = {}

    def submit(self, epoch, row_blocks, n, labels, neg_labels=None):
        t0 = time.time()
        matrix = np.empty((n, n), dtype=self.dtype)
        for start, block in row_blocks:
            matrix[start : start + len(block)] = block
        self._mine(epoch, matrix, labels, neg_labels, t0)

    def submit_candidates(self, epoch, make_candidates, labels, neg_labels=None):
        t0 = time.time()
        cand = make_candidates()
        self._mine(epoch, cand, labels, neg_labels, t0, mining_bytes=int(cand.nbytes))

    def _mine(self, epoch, data, labels, neg_labels, t0, **status):
        """Solve now (the round's pairs are ready at the next poll); seeded per epoch."""
        rng = np.random.default_rng([self.seed, epoch])
        self._pending = self.miner.mine(data, labels, epoch=epoch, rng=rng, neg_labels=neg_labels)
        self._status = {"mining_source": "lap", "mining_seconds": time.time() - t0,
                        "mining_hardness": float(self._pending.hardness), **status}

    def poll(self):
        pairs, self._pending = self._pending, None
        return pairs

    def status(self):
        return dict(self._status)
