"""The siamese family's mining on tiny data: solver none never mines, duplicates never
become negatives, the per-round numbers reach metrics.csv, and a round never lands on a
stage change."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from whaleflow.config import load_config
from whaleflow.engine import Trainer
from whaleflow.pipeline import run_prepare
from whaleflow.training import build_task, train_model


def _cfg(tiny_data, tmp_path, mining: str, stages="[{size: 32, epochs: 2, lr: 0.002}, {size: 32, epochs: 2, lr: 0.001}]"):
    cfg = load_config("configs/demo.yaml", [
        f"data.root={tiny_data}", f"output.dir={tmp_path}", "output.quiet=true",
        f"models.1.stages={stages}", f"models.1.mining={mining}",
    ])
    return cfg, run_prepare(cfg, progress=False)


def test_solver_none_never_calls_the_miner(tiny_data, tmp_path, monkeypatch):
    import whaleflow.families.siamese as siamese
    from whaleflow.mining import LapMiner

    def boom(*args, **kwargs):
        raise AssertionError("solver none must not build or call a miner")

    monkeypatch.setattr(siamese, "build_miner", boom)
    monkeypatch.setattr(LapMiner, "mine", boom)
    monkeypatch.setattr(siamese.SiameseTask, "mine", boom)
    cfg, prepared = _cfg(tiny_data, tmp_path, "{solver: none, start: 0, every: 1}")
    result = train_model(cfg, cfg.models[1], prepared, tmp_path / "trial", progress=False)
    m = pd.read_csv(tmp_path / "trial" / "metrics.csv")
    assert len(m) == 4 and (m["mining_source"] == "random (solver none)").all()
    assert m["mining_neg_score"].isna().all() and result["epochs"] == 4


def test_rounds_skip_the_stage_change_and_log_their_numbers(tiny_data, tmp_path):
    cfg, prepared = _cfg(tiny_data, tmp_path, "{solver: dense, start: 1, every: 1, noise_start: 1.0}")
    train_model(cfg, cfg.models[1], prepared, tmp_path / "trial", progress=False)
    m = pd.read_csv(tmp_path / "trial" / "metrics.csv")
    mined = m["mining_neg_score"].notna().to_numpy()
    assert mined.tolist() == [False, True, False, True]  # epoch 2 starts stage 2: no round there
    for col in ("mining_neg_score", "mining_pos_score", "mining_neg_easy"):
        v = m.loc[mined, col]
        assert ((v >= 0) & (v <= 1)).all(), col
    assert (m.loc[mined, "mining_noise"] >= 0.5).all()  # the floor


def test_duplicates_with_conflicting_labels_are_never_negatives(tiny_data, tmp_path):
    cfg, prepared = _cfg(tiny_data, tmp_path, "{solver: dense, start: 0, every: 1, noise_start: 0.5}")
    index = prepared.index.copy()
    train = index[index["role"] == "train"]
    ids = train["id"].unique()
    a = train[train["id"] == ids[0]].iloc[0]
    b = train[train["id"] == ids[1]].iloc[0]
    index.loc[index["image"] == b["image"], "group"] = a["group"]  # a label conflict: one photo, two ids
    task = build_task(cfg, cfg.models[1], dataclasses.replace(prepared, index=index))
    task.setup_stage(cfg.models[1].stages[0], fresh=True)
    rows = task.splits["train"].rows
    ia, ib = int(np.flatnonzero(rows == a["row"])[0]), int(np.flatnonzero(rows == b["row"])[0])
    assert task.neg_codes[ia] == task.neg_codes[ib]
    merged = np.flatnonzero(task.neg_codes == task.neg_codes[ia])
    n = len(rows)
    for epoch in range(3):
        task.mine(epoch)
        pairs = task.mining.poll()
        na, nb = pairs.neg_a % n, pairs.neg_b % n
        same_flip = (pairs.neg_a >= n) == (pairs.neg_b >= n)
        bad = np.isin(na, merged) & np.isin(nb, merged) & same_flip
        assert not bad.any()
        task.sampler.set_mined(pairs.neg_a, pairs.neg_b, pairs.pos_a, pairs.pos_b)  # the sampler agrees


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_mined_training_runs_with_random_share(tiny_data, tmp_path, share):
    cfg, prepared = _cfg(tiny_data, tmp_path, f"{{solver: sparse, k: 8, start: 0, every: 2, random_share: {share}}}",
                         stages="[{size: 32, epochs: 2, lr: 0.002}]")
    task = build_task(cfg, cfg.models[1], prepared)
    history = Trainer(task, cfg.models[1].stages, checkpoint_dir=tmp_path / "ck").fit(resume=False)
    assert np.isfinite([h["loss"] for h in history]).all()
    assert np.isfinite(history[0]["mining_neg_easy"]) and np.isnan(history[1]["mining_neg_easy"])


def test_mirror_negatives_off_keeps_flipped_twins_out_of_mined_negatives(tiny_data, tmp_path):
    cfg, prepared = _cfg(tiny_data, tmp_path, "{solver: dense, start: 0, every: 1, mirror_negatives: false}")
    task = build_task(cfg, cfg.models[1], prepared)
    task.setup_stage(cfg.models[1].stages[0], fresh=True)
    n = len(task.splits["train"].rows)
    task.mine(0)
    pairs = task.mining.poll()
    labels = task.train_labels
    assert len(pairs.neg_a) == 2 * n
    assert (labels[pairs.neg_a % n] != labels[pairs.neg_b % n]).all()
    task.sampler.set_mined(pairs.neg_a, pairs.neg_b, pairs.pos_a, pairs.pos_b)
