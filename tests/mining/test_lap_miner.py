"""LapMiner: config → miner, both solvers, mined pairs and hardness."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from whaleflow.mining import MiningConfig
from whaleflow.errors import ConfigError
from whaleflow.mining import LapMiner, MinedPairs, NoiseSchedule, build_miner, head_scores_fn
from whaleflow.models.pair_head import PairHead
from whaleflow.registry import MINERS


def data(seed=0, n_ids=15, dim=8):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_ids), rng.integers(1, 5, size=n_ids))
    f = rng.standard_normal((n_ids, dim))[labels] + 0.4 * rng.standard_normal((len(labels), dim))
    return f.astype(np.float32), labels


def check(pairs: MinedPairs, labels):
    assert (labels[pairs.neg_a] != labels[pairs.neg_b]).all()
    assert (labels[pairs.pos_a] == labels[pairs.pos_b]).all()
    assert sorted(pairs.neg_b) == list(range(len(labels)))
    assert pairs.seconds >= 0 and np.isfinite(pairs.hardness)


def test_build_from_config_and_registry():
    assert {"dense", "sparse", "none"} <= set(MINERS.names())
    m = build_miner(MiningConfig(solver="sparse", k=7, every=3, noise_start=2.0, noise_end=0.5, noise_epochs=6,
                                 noise_floor=0.25, start=4))
    assert isinstance(m, LapMiner) and m.solver == "sparse" and m.k == 7 and m.logits
    assert m.noise == NoiseSchedule(2.0, 0.5, 6, floor=0.25, offset=4)
    assert build_miner(MiningConfig(solver="none")) is None
    with pytest.raises(ConfigError, match="noise_floor"):
        build_miner(MiningConfig(noise_floor=0.0))
    assert [m.due(e) for e in range(4)] == [True, False, False, True]
    with pytest.raises(ConfigError, match="dense"):
        build_miner(MiningConfig(solver="dens"))
    with pytest.raises(ConfigError):
        LapMiner(solver="dense", k=0)


def test_dense_and_sparse_miners_agree_without_noise():
    f, labels = data()
    s = f.astype(np.float64) @ f.T
    quiet = NoiseSchedule(1.0, 0.0, 2)
    dense = LapMiner("dense", noise=quiet).mine(s, labels, epoch=2, rng=0)
    sparse = LapMiner("sparse", k=len(labels), noise=quiet).mine(f, labels, epoch=2, rng=0)
    on_matrix = LapMiner("sparse", k=len(labels), noise=quiet).mine(s, labels, epoch=5, rng=0, kind="scores")
    for p in (dense, sparse, on_matrix):
        check(p, labels)
    assert sparse.hardness == pytest.approx(dense.hardness, rel=1e-5)
    assert sparse.info["noise"] == 0.0 and sparse.info["unmatched"] == 0 and dense.info["fallback_rows"] == 0
    assert on_matrix.hardness == pytest.approx(dense.hardness, rel=1e-9)
    assert dense.hardness == pytest.approx(s[dense.neg_a, dense.neg_b].mean())
    # symmetric scores: a reversed cycle ties, so compare the totals of positives
    assert s[dense.pos_a, dense.pos_b].sum() == pytest.approx(s[sparse.pos_a, sparse.pos_b].sum(), rel=1e-5)


def test_noise_makes_negatives_easier_early():
    f, labels = data(1, n_ids=40)
    m = LapMiner("dense", noise=NoiseSchedule(50.0, 0.0, 10))
    early, late = m.mine(f, labels, 0, 0, kind="features"), m.mine(f, labels, 10, 0, kind="features")
    check(early, labels)
    assert early.hardness < late.hardness
    sp = LapMiner("sparse", k=5, noise=NoiseSchedule(50.0, 0.0, 10))
    check(sp.mine(f, labels, 0, 0), labels)


def test_sparse_miner_with_pair_head():
    torch.manual_seed(0)
    f, labels = data(2)
    head = PairHead(f.shape[1], hidden=(16,))
    ft = torch.from_numpy(f)
    fn = head_scores_fn(ft, head)
    pairs = LapMiner("sparse", k=len(labels), noise=0.0).mine(ft, labels, 0, 0, scores_fn=fn)
    check(pairs, labels)
    with torch.no_grad():
        expect = head(ft[pairs.neg_a], ft[pairs.neg_b]).mean().item()
    assert pairs.hardness == pytest.approx(expect, rel=1e-5)


def test_misuse_is_an_error():
    f, labels = data()
    with pytest.raises(ValueError, match="score_all_pairs"):
        LapMiner("dense").mine(f, labels, 0, 0, kind="features", scores_fn=lambda i, j: i * 0.0)
    with pytest.raises(ValueError):
        LapMiner("dense").mine(f @ f.T, labels, 0, 0, kind="nonsense")
    with pytest.raises(ValueError):
        LapMiner("sparse").mine(f, labels[:-1], 0, 0)


@pytest.mark.parametrize("solver", ["dense", "sparse"])
def test_kind_inferred_from_shape_and_half_precision_matrix(solver):
    # The trainer and the MiningActor pass an N×N matrix (float16 above 1 GiB) to
    # whichever solver the config names; features are (N, D) with D ≠ N.
    f, labels = data(3)
    s = (f @ f.T).astype(np.float16)
    m = LapMiner(solver, k=len(labels), noise=0.0)
    from_matrix = m.mine(s, labels, 0, 0)
    check(from_matrix, labels)
    assert from_matrix.hardness == pytest.approx(s[from_matrix.neg_a, from_matrix.neg_b].astype(float).mean())
    from_features = m.mine(f, labels, 0, 0)
    check(from_features, labels)
    assert from_features.hardness == pytest.approx(from_matrix.hardness, rel=1e-2)
