"""The MiningActor and its client on a real local Ray: same pairs as local mining, writes that
never wait for a solve, and a trial that survives its actor being killed."""
from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from whaleflow.mining import MiningConfig
from whaleflow.families.mining_client import LocalMiningClient
from whaleflow.mining import build_miner


def _problem(n: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    scores = rng.random((n, n)).astype(np.float32)
    scores = (scores + scores.T) / 2
    return scores, labels


def _blocks(matrix: np.ndarray, size: int):
    for start in range(0, len(matrix), size):
        yield start, matrix[start : start + size]


def _wait_pairs(client, timeout: float = 60.0):
    end = time.time() + timeout
    while time.time() < end:
        pairs = client.poll()
        if pairs is not None:
            return pairs
        time.sleep(0.05)
    raise AssertionError(f"no pairs within {timeout}s; status {client.status()}")


def test_actor_mines_the_same_pairs_as_local_mining(local_ray):
    from ray_jobs.mining_actor import RayMiningClient

    cfg = MiningConfig(solver="dense", noise_start=0.3, noise_end=0.0, noise_epochs=4)
    scores, labels = _problem(120, 20)
    local = LocalMiningClient(build_miner(cfg), seed=7)
    local.submit(1, _blocks(scores, 32), len(scores), labels)
    expected = local.poll()

    client = RayMiningClient(cfg, seed=7, timeout_s=60, name="test-miner-same", dtype="float32")
    try:
        client.submit(1, _blocks(scores, 32), len(scores), labels)
        got = _wait_pairs(client)
        for field in ("neg_a", "neg_b", "pos_a", "pos_b"):
            np.testing.assert_array_equal(getattr(got, field), getattr(expected, field))
        status = client.status()
        assert status["mining_source"] == "lap (actor)" and status["mining_solves"] == 1
        assert status["mining_hardness"] == pytest.approx(expected.hardness)
        stats = local_ray.get(client.actor.stats.remote())
        assert stats["solves"] == 1 and stats["rows_written"] == 120 and stats["rounds_held"] == []
        latest = local_ray.get(client.actor.latest.remote())
        np.testing.assert_array_equal(latest["neg_b"], expected.neg_b)
    finally:
        client.close()


def test_row_writes_are_not_blocked_by_a_solve(local_ray):
    from ray_jobs.mining_actor import MiningActor

    class SlowMiner:  # defined here so Ray ships it by value; a LAP that takes 3 s
        def __init__(self, miner):
            self.miner = miner

        def mine(self, matrix, labels, epoch, rng):
            time.sleep(3.0)
            return self.miner.mine(matrix, labels, epoch=epoch, rng=rng)

    scores, labels = _problem(200, 40, seed=1)
    actor = MiningActor.options(num_cpus=0).remote(SlowMiner(build_miner(MiningConfig(solver="dense"))))
    try:
        local_ray.get([actor.write_rows.remote(1, len(scores), s, b) for s, b in _blocks(scores, 50)])
        solve = actor.solve.remote(1, 0, labels, 0)
        end = time.time() + 30
        while local_ray.get(actor.stats.remote())["solving"] != 1:  # the query group answers mid-solve
            assert time.time() < end, "the solve never started"
            time.sleep(0.05)
        small, _ = _problem(40, 8)
        small = small.astype(np.float16)  # a round's matrix takes its rows' dtype
        local_ray.get([actor.write_rows.remote(2, 40, s, b) for s, b in _blocks(small, 10)], timeout=30)
        stats = local_ray.get(actor.stats.remote())
        assert stats["solving"] == 1 and stats["rounds_held"] == [1, 2], "writes had to wait for the solve"
        assert stats["dtypes"] == {1: "float32", 2: "float16"}
        assert not local_ray.wait([solve], timeout=0)[0]
        assert local_ray.get(solve, timeout=60)["round"] == 1
        assert local_ray.get(actor.stats.remote())["rounds_held"] == [2]
    finally:
        local_ray.kill(actor)


def test_client_survives_a_killed_actor(local_ray):
    from ray_jobs.mining_actor import RayMiningClient

    scores, labels = _problem(60, 12)
    client = RayMiningClient(MiningConfig(solver="dense"), seed=0, timeout_s=30, name="test-miner-kill")
    try:
        client.submit(0, _blocks(scores, 16), len(scores), labels)
        assert _wait_pairs(client) is not None
        first = client.actor
        local_ray.kill(first)
        client.submit(1, _blocks(scores, 16), len(scores), labels)  # the dead actor fails the writes
        pairs = client.poll()
        assert pairs is not None and len(pairs.neg_a) == 0, "after a loss the trial gets empty pairs → random"
        assert client.status()["mining_source"] == "random (actor lost)"
        client.submit(2, _blocks(scores, 16), len(scores), labels)  # next round: a new actor
        assert client.actor is not None and client.actor != first and client.generation == 2
        assert len(_wait_pairs(client).neg_a) > 0
        assert client.status()["mining_source"] == "lap (actor)"
    finally:
        client.close()


def test_client_never_waits_forever(local_ray):
    from ray_jobs.mining_actor import RayMiningClient

    scores, labels = _problem(1500, 300, seed=2)
    client = RayMiningClient(MiningConfig(solver="dense"), seed=0, timeout_s=0.2, name="test-miner-timeout")
    try:
        client.submit(0, _blocks(scores, 500), len(scores), labels)
        time.sleep(0.5)
        t0 = time.time()
        pairs = client.poll()
        assert time.time() - t0 < 1.0
        assert pairs is not None and len(pairs.neg_a) == 0
        assert client.status()["mining_source"] == "random (mining timed out)"
    finally:
        client.close()


def test_killing_the_mining_actor_does_not_kill_the_trial(local_ray, tiny_config, tmp_path):
    """A siamese trial whose actor is killed mid-run trains on random pairs, says so, recovers."""
    from ray_jobs.pipeline import run_tune

    cfg = tiny_config(tmp_path / "run", "models=[{name: siamese_kill, family: siamese, backbone: wf_compactnet, "
                      "head_layers: [32], batch_size: 32, augment: siamese, mining: {solver: dense, every: 1}, "
                      "stages: [{size: 32, epochs: 10, lr: 0.002}]}]", "ray.gpus_per_trial=0",
                      "ray.mining_actor_cpus=1")  # the actor in its own bundle of the trial's placement group
    killed: list[str] = []

    def killer():
        end = time.time() + 120
        while time.time() < end and not killed:
            for name in local_ray.util.list_named_actors():
                if name.startswith("whaleflow-miner-siamese_kill"):
                    actor = local_ray.get_actor(name)
                    try:
                        if local_ray.get(actor.stats.remote(), timeout=5)["solves"] >= 1:
                            local_ray.kill(actor)
                            killed.append(name)
                    except Exception:  # not answering yet (starting or busy): look again
                        continue
            time.sleep(0.2)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    summary = run_tune(cfg, progress=False)
    thread.join(timeout=5)
    assert killed, "the test never found a mining actor to kill"
    assert summary["trials"]["siamese_kill"]["state"] == "finished"
    trial = tmp_path / "run" / "trials" / "siamese_kill"
    assert (trial / "result.json").exists()
    sources = pd.read_csv(trial / "metrics.csv")["mining_source"].tolist()
    lost = sources.index("random (actor lost)")  # killed only after its first solve (see killer)
    assert "lap (actor)" in sources[lost + 1 :], f"a new actor never delivered pairs: {sources}"


def test_actor_passes_negative_codes(local_ray):
    from ray_jobs.mining_actor import RayMiningClient

    cfg = MiningConfig(solver="dense", start=0, noise_start=0.5, noise_end=0.5, noise_epochs=1)
    scores, labels = _problem(60, 12, seed=3)
    codes = labels // 2  # pairs of individuals merged, as a duplicate group would
    local = LocalMiningClient(build_miner(cfg), seed=3)
    local.submit(2, _blocks(scores, 16), len(scores), labels, neg_labels=codes)
    expected = local.poll()
    client = RayMiningClient(cfg, seed=3, timeout_s=60, name="test-miner-codes", dtype="float32")
    try:
        client.submit(2, _blocks(scores, 16), len(scores), labels, neg_labels=codes)
        got = _wait_pairs(client)
        np.testing.assert_array_equal(got.neg_b, expected.neg_b)
        assert (codes[got.neg_a] != codes[got.neg_b]).all()
        assert got.neg_easy == pytest.approx(expected.neg_easy) and np.isfinite(got.neg_score)
    finally:
        client.close()


def test_actor_mines_top_k_candidates_and_receives_n_k_bytes(local_ray):
    """A sparse round: the client sends top-k candidates (≤ N·k·8 bytes), the actor mines the
    same pairs as local mining on them."""
    import torch

    from ray_jobs.mining_actor import RayMiningClient
    from whaleflow.mining import score_candidates
    from whaleflow.models.pair_head import PairHead

    cfg = MiningConfig(solver="sparse", k=8, start=0, noise_start=0.5, noise_end=0.5, noise_epochs=1)
    torch.manual_seed(0)
    n = 90
    feats = torch.randn(n, 12)
    head = PairHead(12, hidden=(16,)).eval()
    labels = np.random.default_rng(0).integers(0, 25, n)
    make = lambda: score_candidates(feats, head, k=cfg.k, neg_labels=labels, labels=labels, noise=0.5, seed=1)  # noqa: E731
    local = LocalMiningClient(build_miner(cfg), seed=3)
    local.submit_candidates(2, make, labels)
    expected = local.poll()
    client = RayMiningClient(cfg, seed=3, timeout_s=60, name="test-miner-topk")
    try:
        client.submit_candidates(2, make, labels)
        got = _wait_pairs(client)
        for field in ("neg_a", "neg_b", "pos_a", "pos_b"):
            np.testing.assert_array_equal(getattr(got, field), getattr(expected, field))
        sent = client.status()["mining_bytes"]
        stats = local_ray.get(client.actor.stats.remote())
        assert 0 < sent == stats["bytes_received"] <= n * cfg.k * 8 and stats["rows_written"] == 0
    finally:
        client.close()
