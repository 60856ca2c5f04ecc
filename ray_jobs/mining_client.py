"""RayMiningClient: a siamese trial's side of its MiningActor (:mod:`ray_jobs.mining_actor`).

It implements the ``submit``/``poll``/``status`` interface of
``whaleflow.families.mining_client``, streaming a round's rows (dense) or top-k
candidates (sparse) to the actor and picking the mined pairs up at a later epoch. It
never lets the trial hang: every wait has ``ray.mining_timeout_s``; when the actor dies
or stops answering, the trial trains on random pairs and says so
(``mining_source='random (actor lost)'``), and the next mining round starts a new actor,
which rebuilds its matrix from that round's rows. Kept apart from the actor so each
side of the exchange reads on its own.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import time
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
import ray

from whaleflow.config import to_dict

from .mining_actor import MiningActor, matrix_dtype

if TYPE_CHECKING:
    from whaleflow.mining import MiningConfig


def _empty_pairs():
    from whaleflow.mining import MinedPairs

    e = np.zeros(0, np.int64)
    return MinedPairs(e, e, e, e, float("nan"), 0.0)


class RayMiningClient:
    """A siamese trial's handle on its MiningActor (created lazily, recreated after a loss)."""

    _ids = itertools.count()

    def __init__(self, mining_cfg: MiningConfig, *, seed: int = 0, timeout_s: float = 120.0,
                 actor_cpus: float = 0.0, name: str | None = None, dtype: str = "auto",
                 max_in_flight: int = 4, bundle_index: int | None = None, memory: int = 0):
        self.mining = to_dict(mining_cfg)
        self.seed, self.timeout_s, self.actor_cpus = seed, float(timeout_s), float(actor_cpus)
        self.name = name or f"whaleflow-miner-{os.getpid()}-{next(self._ids)}"
        self.dtype, self.max_in_flight, self.bundle_index = dtype, max(1, max_in_flight), bundle_index
        self.memory = int(memory)    # Ray `memory` (bytes) the actor asks for; its bundle holds it
        self.actor = None
        self.generation = 0          # actors created so far
        self.losses = 0              # actors lost (died, hung or timed out)
        self._round = 0
        self._pending: tuple[Any, float, int] | None = None
        self._ready: dict[str, Any] | None = None
        self._drop_pairs = False     # hand the trial empty pairs once (→ random) after a loss
        # every key from the first epoch on: Tune's progress.csv takes its columns from the first result
        self._status: dict[str, Any] = {
            "mining_source": "random (waiting for miner)", "mining_solves": 0, "mining_seconds": float("nan"),
            "mining_hardness": float("nan"), "mining_epoch": -1, "mining_actor_losses": 0,
            "mining_skipped_round": -1, "mining_bytes": 0,
        }

    # ------------------------------------------------------------------ actor lifecycle
    def _scheduling(self):
        from ray.util.placement_group import get_current_placement_group
        from ray.util.scheduling_strategies import (NodeAffinitySchedulingStrategy,
                                                    PlacementGroupSchedulingStrategy)

        pg = get_current_placement_group()
        if pg is not None:  # inside a trial: in its placement group (its own bundle when it has CPUs)
            index = self.bundle_index if self.bundle_index is not None else (1 if self.actor_cpus > 0 else 0)
            return PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=index)
        return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)

    def start(self) -> "RayMiningClient":
        """Create the actor now, so its start-up overlaps the trial's own (data, model, first epoch)."""
        self._ensure_actor()
        return self

    def _ensure_actor(self):
        if self.actor is None:
            self.generation += 1
            self.actor = MiningActor.options(
                name=f"{self.name}-g{self.generation}", num_cpus=self.actor_cpus,
                scheduling_strategy=self._scheduling(), max_restarts=0,
                **({"memory": self.memory} if self.memory > 0 else {}),
            ).remote(self.mining)
        return self.actor

    def _lose(self, reason: str) -> None:
        """Forget the actor (killing it if it hangs); train on random pairs until a new one delivers."""
        if self.actor is not None:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(self.actor)
        # pairs it finished but the trial has not taken yet go too: after a loss, random until a new actor delivers
        self.actor, self._pending, self._ready, self._drop_pairs = None, None, None, True
        self.losses += 1
        self._status.update(mining_source=f"random ({reason})", mining_actor_losses=self.losses)

    def close(self) -> None:
        if self.actor is not None:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(self.actor)
            self.actor = None

    # ------------------------------------------------------------------ MiningClient interface
    def submit(self, epoch: int, row_blocks: Iterable[tuple[int, np.ndarray]], n: int, labels: np.ndarray,
               neg_labels: np.ndarray | None = None) -> None:
        """Stream the rows to the actor and start a solve; returns without waiting for the solve.

        If the previous solve is still running, this round is skipped before the pair head
        scores a single block (``row_blocks`` is lazy), so a slow solver never makes the
        trial score an N×N matrix it cannot use.
        """
        def send(actor):
            dtype = np.dtype(matrix_dtype(n, self.dtype))
            refs: list = []
            for start, block in row_blocks:
                refs.append(actor.write_rows.remote(self._round, n, int(start), np.ascontiguousarray(block, dtype)))
                while len(refs) >= self.max_in_flight:
                    done, refs = ray.wait(refs, num_returns=1, timeout=self.timeout_s)
                    if not done:
                        raise TimeoutError
                    ray.get(done)
            ray.get(refs, timeout=self.timeout_s)
            return actor.solve.remote(self._round, epoch, np.asarray(labels), self.seed,
                                      None if neg_labels is None else np.asarray(neg_labels))

        self._round_trip(epoch, send)

    def submit_candidates(self, epoch: int, make_candidates, labels: np.ndarray,
                          neg_labels: np.ndarray | None = None) -> None:
        """A sparse round: score the top-k candidates here (on the trial's device) and send
        them in one call — N·k entries instead of N×N row blocks. Skipped, before any
        scoring, while the previous solve runs."""
        def send(actor):
            cand = make_candidates()
            ref = actor.solve_candidates.remote(self._round, epoch, cand.to_dict(), np.asarray(labels), self.seed,
                                                None if neg_labels is None else np.asarray(neg_labels))
            self._status["mining_bytes"] = int(cand.nbytes)
            return ref

        self._round_trip(epoch, send)

    def _round_trip(self, epoch: int, send) -> None:
        """One round: skipped while the previous solve runs; else ``send(actor)`` ships the
        round and returns the solve's ref. A lost, slow or failing actor means random pairs."""
        self._collect()
        if self._pending is not None:
            self._status["mining_skipped_round"] = epoch
            return
        try:
            actor = self._ensure_actor()
            self._round += 1
            self._pending = (send(actor), time.time(), epoch)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
            self._lose("actor lost")
        except (TimeoutError, ray.exceptions.GetTimeoutError):
            self._lose("mining timed out")
        except ray.exceptions.RayTaskError as exc:
            self._failed(exc)

    def _collect(self) -> None:
        """Without blocking: move a finished solve into ``_ready``; notice deaths and timeouts."""
        if self._pending is None:
            return
        ref, started, _ = self._pending
        if ray.wait([ref], timeout=0)[0]:
            self._pending = None
            try:
                self._ready = ray.get(ref, timeout=self.timeout_s)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                self._lose("actor lost")
            except ray.exceptions.RayTaskError as exc:
                self._failed(exc)
        elif time.time() - started > self.timeout_s:
            self._lose("mining timed out")

    def _failed(self, exc) -> None:
        """The miner raised (a bug or bad rows): keep the actor, train on random pairs, say why."""
        self._pending, self._drop_pairs = None, True
        self._status["mining_source"] = f"random (mining failed: {type(getattr(exc, 'cause', exc)).__name__})"

    def poll(self):
        """The newest finished pairs, or None; never blocks (empty pairs after a loss → random)."""
        self._collect()
        if self._ready is not None:
            out, self._ready = self._ready, None
            return self._accept(out)
        if self._drop_pairs:
            self._drop_pairs = False
            return _empty_pairs()
        return None

    def _accept(self, out: dict[str, Any]):
        from whaleflow.mining import MinedPairs

        self._drop_pairs = False
        self._status.update(mining_source="lap (actor)", mining_seconds=out["seconds"],
                            mining_hardness=out["hardness"], mining_solves=self._status["mining_solves"] + 1,
                            mining_epoch=out["epoch"], mining_actor_losses=self.losses)
        return MinedPairs(np.asarray(out["neg_a"]), np.asarray(out["neg_b"]), np.asarray(out["pos_a"]),
                          np.asarray(out["pos_b"]), out["hardness"], out["seconds"], {"noise": out.get("noise", float("nan"))},
                          neg_score=out.get("neg_score", float("nan")), pos_score=out.get("pos_score", float("nan")),
                          neg_easy=out.get("neg_easy", float("nan")))

    def status(self) -> dict[str, Any]:
        return dict(self._status)
