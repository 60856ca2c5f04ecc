"""The MiningActor: a siamese trial's N×N score matrix and its LAP solves, off the training loop.

The trial scores all training pairs in row blocks and streams them here
(``write_rows``; dense solver), or — sparse solver — scores each image's top-k
candidates on its own device and sends only those (``solve_candidates``: N·k entries,
``N·k·6`` bytes, instead of an N×N matrix); ``solve`` runs the miner (``whaleflow.mining``, dense or sparse) in
the actor's own thread while the trial goes on training on the previous pairs, and
the trial picks the new pairs up at a later epoch. Methods sit in separate
concurrency groups — ``rows`` (writes), ``solve`` (one LAP at a time) and ``query``
(``latest``/``stats``) — so a write is never queued behind a solve that takes minutes
at N ≈ 30,000 (scipy's solvers release the GIL). Each mining round writes into its
own matrix, so a round can be filled while the previous one is still being solved.

:class:`~ray_jobs.mining_client.RayMiningClient`, the trial's side, lives in
:mod:`ray_jobs.mining_client` (it imports this module); it is still importable from
here, as ``from ray_jobs.mining_actor import RayMiningClient``.
"""
from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np
import ray

from whaleflow.config import from_dict

#: matrices above this many bytes in float32 are held as float16 (pair-head logits: ~3 significant digits is plenty for mining)
FLOAT16_ABOVE_BYTES = 1 << 30


@ray.remote(concurrency_groups={"rows": 2, "solve": 1, "query": 1})
class MiningActor:
    """``MiningActor.remote(mining)``; one per siamese trial.

    ``mining``: a ``mining:`` config section as a dict (the usual case), or any miner
    object with ``mine(matrix, labels, epoch=, rng=)`` returning ``MinedPairs``. A round's
    matrix takes the dtype of its first row block (the client picks float16 or float32).
    """

    def __init__(self, mining: Any):
        from whaleflow.mining import MiningConfig, build_miner

        self.miner = build_miner(from_dict(MiningConfig, mining)) if isinstance(mining, dict) else mining
        self._lock = threading.Lock()
        self._rounds: dict[int, dict[str, Any]] = {}
        self._solving: int | None = None
        self._latest: dict[str, Any] | None = None
        self._solves = 0
        self._rows_written = 0
        self._bytes_received = 0

    @ray.method(concurrency_group="rows")
    def write_rows(self, round_id: int, n: int, start: int, block: np.ndarray) -> int:
        """Copy a row block into round ``round_id``'s matrix (allocated on its first block)."""
        with self._lock:
            rnd = self._rounds.get(round_id)
            if rnd is None:
                # a newer round abandons older unfinished ones (not the one being solved)
                for old in [r for r in self._rounds if r < round_id and r != self._solving]:
                    del self._rounds[old]
                rnd = self._rounds[round_id] = {"matrix": np.empty((n, n), np.asarray(block).dtype),
                                                "filled": 0, "n": n}
        rows = np.asarray(block)
        if rows.ndim != 2 or rows.shape[1] != n or start < 0 or start + len(rows) > n:
            raise ValueError(f"row block of shape {rows.shape} at row {start} does not fit an {n}×{n} matrix")
        rnd["matrix"][start : start + len(rows)] = rows  # copies: object-store arrays are read-only
        with self._lock:
            rnd["filled"] += len(rows)
            self._rows_written += len(rows)
            return rnd["filled"]

    @ray.method(concurrency_group="solve")
    def solve(self, round_id: int, epoch: int, labels: np.ndarray, seed: int,
              neg_labels: np.ndarray | None = None) -> dict[str, Any]:
        """Mine round ``round_id`` (every row written) and keep the pairs as the latest.

        ``neg_labels``: codes forbidding negatives (near-duplicate groups merged), if any."""
        with self._lock:
            rnd = self._rounds.get(round_id)
            if rnd is None:
                raise KeyError(f"mining round {round_id} has no rows here (was the actor restarted?)")
            if rnd["filled"] != rnd["n"]:
                raise ValueError(f"mining round {round_id}: {rnd['filled']} of {rnd['n']} rows written")
            self._solving = round_id
        try:
            rng = np.random.default_rng([int(seed), int(epoch)])
            extra = {} if neg_labels is None else {"neg_labels": np.asarray(neg_labels)}
            pairs = self.miner.mine(rnd["matrix"], np.asarray(labels), epoch=epoch, rng=rng, **extra)
        finally:
            with self._lock:
                self._solving = None
                self._rounds.pop(round_id, None)
                self._bytes_received += rnd["matrix"].nbytes
        return self._finish(round_id, epoch, pairs)

    @ray.method(concurrency_group="solve")
    def solve_candidates(self, round_id: int, epoch: int, candidates: dict[str, Any], labels: np.ndarray,
                         seed: int, neg_labels: np.ndarray | None = None) -> dict[str, Any]:
        """Mine a sparse round from the trial's top-k candidates (``PairCandidates.to_dict()``:
        N·k entries, scored on the trial's device), no row blocks needed."""
        from whaleflow.mining import PairCandidates

        cand = PairCandidates.from_dict(candidates)
        with self._lock:
            self._solving = round_id
        try:
            rng = np.random.default_rng([int(seed), int(epoch)])
            extra = {} if neg_labels is None else {"neg_labels": np.asarray(neg_labels)}
            pairs = self.miner.mine(cand, np.asarray(labels), epoch=epoch, rng=rng, **extra)
        finally:
            with self._lock:
                self._solving = None
                self._bytes_received += cand.nbytes
        return self._finish(round_id, epoch, pairs)

    def _finish(self, round_id: int, epoch: int, pairs) -> dict[str, Any]:
        out = {
            "round": round_id, "epoch": epoch,
            "neg_a": pairs.neg_a, "neg_b": pairs.neg_b, "pos_a": pairs.pos_a, "pos_b": pairs.pos_b,
            "hardness": float(pairs.hardness), "seconds": float(pairs.seconds),
            "neg_score": float(pairs.neg_score), "pos_score": float(pairs.pos_score),
            "neg_easy": float(pairs.neg_easy), "noise": float(pairs.info.get("noise", float("nan"))),
        }
        with self._lock:
            self._solves += 1
            out["solves"] = self._solves
            self._latest = out
        return out

    @ray.method(concurrency_group="query")
    def latest(self, after_round: int = -1) -> dict[str, Any] | None:
        """The newest mined pairs (with solve time and hardness) if newer than ``after_round``."""
        with self._lock:
            if self._latest is None or self._latest["round"] <= after_round:
                return None
            return self._latest

    @ray.method(concurrency_group="query")
    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"solves": self._solves, "rows_written": self._rows_written, "solving": self._solving,
                    "bytes_received": self._bytes_received,
                    "rounds_held": sorted(self._rounds), "pid": os.getpid(),
                    "dtypes": {r: v["matrix"].dtype.name for r, v in self._rounds.items()}}


def matrix_dtype(n: int, dtype: str = "auto") -> str:
    """``auto``: float32 unless the N×N matrix would pass 1 GiB, then float16 (half the memory)."""
    if dtype != "auto":
        return np.dtype(dtype).name
    return "float16" if n * n * 4 > FLOAT16_ABOVE_BYTES else "float32"


def __getattr__(name: str):
    """``RayMiningClient`` from its own module on first use: importing it at the top would
    be circular (:mod:`ray_jobs.mining_client` needs :class:`MiningActor` from here)."""
    if name == "RayMiningClient":
        from .mining_client import RayMiningClient

        return RayMiningClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
