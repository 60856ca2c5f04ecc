"""The arcface family end to end on tiny synthetic data: exact resume, learning, scoring."""
import numpy as np
import pytest
import torch

from whaleflow.config import load_config
from whaleflow.engine import Trainer
from whaleflow.pipeline import run_prepare
from whaleflow.training import build_task

from test_training import Interrupt, StopAfter, _weights  # the shared crash helpers


def _setup(data, tmp_path, extra=()):
    cfg = load_config("configs/demo.yaml", [
        f"data.root={data}", f"output.dir={tmp_path}", "output.quiet=true",
        "models.0.family=arcface", "models.0.stages=[{size: [32, 48], epochs: 2, lr: 0.002}, "
                                   "{size: [40, 56], epochs: 2, lr: 0.001}]", *extra])
    return cfg, run_prepare(cfg, progress=False)


def test_resume_gives_the_same_weights_and_head(tiny_data, tmp_path):
    cfg, prepared = _setup(tiny_data, tmp_path)
    m = cfg.models[0]
    straight = build_task(cfg, m, prepared)
    Trainer(straight, m.stages, checkpoint_dir=tmp_path / "a", seed=1).fit()
    first = build_task(cfg, m, prepared)
    with pytest.raises(Interrupt):  # dies inside the second stage
        Trainer(first, m.stages, checkpoint_dir=tmp_path / "b", seed=1, callbacks=[StopAfter(3)]).fit()
    resumed = build_task(cfg, m, prepared)
    history = Trainer(resumed, m.stages, checkpoint_dir=tmp_path / "b", seed=1).fit(resume=True)
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert history[-1]["size"] == "40x56"
    a, b = _weights(straight), _weights(resumed)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert torch.equal(straight.head.weight, resumed.head.weight)
    assert resumed.size == [40, 56]


def test_lr_warms_up_then_decays_within_each_stage(tiny_data, tmp_path):
    cfg, prepared = _setup(tiny_data, tmp_path, ["models.0.arcface.warmup_epochs=1",
                                                 "models.0.arcface.min_lr_ratio=0.1"])
    task = build_task(cfg, cfg.models[0], prepared)
    f = [task.lr_factor(e, s, 4) for e in range(4) for s in range(4)]
    assert f[0] < f[3] < f[4]                              # warm-up through epoch 0
    assert max(f[:8]) == pytest.approx(1.0, abs=0.05)      # reaches the stage LR
    assert f[7] < f[5]                                     # cosine decay in stage 1
    assert f[8] == pytest.approx(1.0)                      # stage 2 restarts at its own LR, no warm-up
    assert min(f) >= 0.02 and f[15] < 0.3


def test_heads_classes_and_knn_fallback_for_unseen_individuals(tiny_data, tmp_path):
    """Scores for a gallery individual the head never saw come from k-NN alone, put per view
    on the head + k-NN scale by rank among the known individuals (impute_columns)."""
    cfg, prepared = _setup(tiny_data, tmp_path)
    task = build_task(cfg, cfg.models[0], prepared)
    task.setup_stage(cfg.models[0].stages[0], fresh=True)
    g_rows, g_labels, classes = task.labelled_gallery(("train",))
    q = task.splits["val"].rows[:5]
    named = np.array([*classes[:-1], "brand_new_individual"])
    scores = task.score_queries_named(q, g_rows, g_labels, named)
    w = cfg.models[0].arcface.knn_weight
    q_emb = task._embed(q, False)
    knn_last = (q_emb @ task._embed(g_rows[g_labels == len(classes) - 1], False).T).max(1).values.cpu().numpy()
    q_f = task._embed(q, True)
    knn_last_f = (q_f @ task._embed(g_rows[g_labels == len(classes) - 1], True).T).max(1).values.cpu().numpy()
    from whaleflow.inference.impute import impute_columns

    expect = 0.0
    for flip, q_v in ((False, q_emb), (True, q_f)):   # brute force, one gallery individual at a time
        knn = np.stack([(q_v @ task._embed(g_rows[g_labels == c], flip).T).max(1).values.cpu().numpy()
                        for c in range(len(classes))], axis=1)
        offset = len(task.classes) if (flip and task.flips) else 0
        cos = task.head.cosine(q_v).detach().cpu().numpy()
        head_v = np.stack([cos[:, task.class_index[c] + offset] for c in classes[:-1]], axis=1)
        full_v = np.concatenate([(1 - w) * head_v + w * knn[:, :-1], knn[:, -1:]], axis=1)
        expect = expect + impute_columns(full_v, knn, np.arange(len(classes)) < len(classes) - 1)[:, -1] / 2
    assert np.allclose(scores[:, -1], expect, atol=1e-5)
    assert not np.allclose(scores[:, -1], (knn_last + knn_last_f) / 2, atol=1e-3)  # not the raw k-NN cosine
    head = task.head.cosine(q_emb).detach().cpu().numpy()[:, task.class_index[classes[0]]]
    knn0 = (q_emb @ task._embed(g_rows[g_labels == 0], False).T).max(1).values.cpu().numpy()
    unflipped = (1 - w) * head + w * knn0
    full = task.score_queries_named(q, g_rows, g_labels, classes)
    assert scores.shape == (5, len(classes)) and np.allclose(scores[:, 0], full[:, 0])
    assert not np.allclose(full[:, 0], knn0)  # the head takes part for known individuals
    assert np.isfinite(unflipped).all()


def test_training_beats_the_untrained_net(small_data, tmp_path):
    cfg, prepared = _setup(small_data, tmp_path, [
        "models.0.stages=[{size: 48, epochs: 12, lr: 0.003}]", "models.0.arcface.scale=16",
        "models.0.arcface.subcenters=1", "models.0.arcface.margin_a=0.2"])
    m = cfg.models[0]
    task = build_task(cfg, m, prepared)
    task.setup_stage(m.stages[0], fresh=True)
    before = task.evaluate()
    trainer = Trainer(task, m.stages, checkpoint_dir=tmp_path / "ckpt", seed=0)
    history = trainer.fit(resume=False)
    assert history[-1]["loss"] < history[0]["loss"]
    # a random-init compact net learns slowly with a margin head (measured: 0.316 → 0.348 in
    # 10 epochs); the pretrained start is what configs/cpu.yaml uses
    assert trainer.state.best_map5 > before + 0.025, (before, trainer.state.best_map5)
