"""The frozen pretrained peer as a blend member: k-NN scores against brute force, no training."""
import json

import numpy as np
import pytest
import torch

from whaleflow.config import load_config
from whaleflow.errors import ConfigError
from whaleflow.pipeline import run_prepare
from whaleflow.training import build_task, train_model


def _cfg(data, tmp_path, epochs=0):
    return load_config("configs/demo.yaml", [
        f"data.root={data}", f"output.dir={tmp_path}", "output.quiet=true",
        "models=[{name: frozen_lite0, family: frozen, backbone: efficientnet_lite0, pretrained: true, "
        f"stages: [{{size: [32, 48], epochs: {epochs}}}]}}]"])


def test_frozen_scores_are_the_best_cosine_per_individual(tiny_data, tmp_path):
    cfg = _cfg(tiny_data, tmp_path)
    prepared = run_prepare(cfg, progress=False)
    result = train_model(cfg, cfg.models[0], prepared, tmp_path / "trials" / "frozen_lite0", progress=False)
    trial = tmp_path / "trials" / "frozen_lite0"
    assert result["epochs"] == 0 and result["family"] == "frozen"
    for name in ("scores_val.npz", "scores_test.npz", "embeddings.npz", "model.pt", "gallery.npz"):
        assert (trial / name).is_file(), name
    assert json.loads((trial / "result.json").read_text())["val_map5"] == pytest.approx(result["val_map5"])

    task = build_task(cfg, cfg.models[0], prepared)
    g_rows, g_labels, classes = task.labelled_gallery(("train",))
    q_rows = task.splits["val"].rows[:2]
    got = task.score_queries_named(q_rows, g_rows, g_labels, classes)
    net = task.model.eval()
    images = task.images_eval

    cache = {}

    def vec(row, flip):  # one image at a time, through the bare network
        if (row, flip) not in cache:
            x = images.batch(np.array([row]), np.array([flip]), task.size)
            with torch.inference_mode():
                v = net(x)[0]
            cache[row, flip] = (v / v.norm()).numpy()
        return cache[row, flip]

    for i, q in enumerate(q_rows):
        for c in range(min(len(classes), 6)):
            members = g_rows[g_labels == c]
            best = [max(float(vec(q, f) @ vec(g, f)) for g in members) for f in (False, True)]
            assert got[i, c] == pytest.approx(np.mean(best), abs=2e-4)

    # what identify builds from model.pt alone (no pretrained weights read, no split): the same scores
    from whaleflow.engine.checkpoint import load_checkpoint
    from whaleflow.registry import FAMILIES

    exported = load_checkpoint(trial / "model.pt")
    alone = FAMILIES.get("frozen").for_inference(cfg.models[0], exported["classes"], cfg.predict, device="cpu")
    assert not hasattr(alone, "splits") and not hasattr(alone, "optimizer")
    alone.load_inference_state(exported["model"])
    alone.size, alone.images_eval = tuple(exported["size"]), images
    assert np.array_equal(alone.score_queries_named(q_rows, g_rows, g_labels, classes), got)


def test_a_frozen_model_with_epochs_says_how_to_fix_it(tiny_data, tmp_path):
    cfg = _cfg(tiny_data, tmp_path, epochs=2)
    prepared = run_prepare(cfg, progress=False)
    with pytest.raises(ConfigError, match="epochs: 0"):
        build_task(cfg, cfg.models[0], prepared)
