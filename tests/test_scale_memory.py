"""What must not grow with the square of the data (benchmarks/scale_rehearsal.py finds it at
scale; these catch it again at small size, by structure, never by time)."""
from __future__ import annotations

import numpy as np
import pytest

from whaleflow.config import load_config
from whaleflow.pipeline import run_prepare
from whaleflow.training import build_task


@pytest.mark.parametrize("family", ["siamese", "metric", "arcface"])
def test_queries_are_scored_in_blocks_with_the_same_scores(tiny_data, tmp_path, monkeypatch, family):
    """Every family's scoring sees at most SCORE_BLOCK_ELEMS query × gallery cells at once
    (all test queries against the whole gallery held several 800 MB arrays at HWI size),
    and the blocked scores are the unblocked ones."""
    import whaleflow.families.scoring as scoring

    cfg = load_config("configs/demo.yaml", [
        f"data.root={tiny_data}", f"output.dir={tmp_path}", "output.quiet=true", f"models.0.family={family}",
        "models.0.stages=[{size: 32, epochs: 1, lr: 0.002}]"])
    task = build_task(cfg, cfg.models[0], run_prepare(cfg, progress=False))
    task.setup_stage(cfg.models[0].stages[0], fresh=True)
    g_rows, g_labels, classes = task.labelled_gallery(("train", "val"))
    q_rows = task.splits["test"].rows
    assert len(q_rows) > 8
    whole = task.score_queries_named(q_rows, g_rows, g_labels, classes)  # default budget: one block here

    seen = []
    views = task.score_views

    def recording(q, g, labels, cls):
        seen.append(len(q[False]) * len(g[False]))
        return views(q, g, labels, cls)

    monkeypatch.setattr(task, "score_views", recording)
    monkeypatch.setattr(scoring, "SCORE_BLOCK_ELEMS", 3 * len(g_rows))
    blocked = task.score_queries_named(q_rows, g_rows, g_labels, classes)
    assert len(seen) == -(-len(q_rows) // 3) and max(seen) <= 3 * len(g_rows)
    assert blocked.shape == (len(q_rows), len(classes)) and blocked.dtype == np.float32
    np.testing.assert_allclose(blocked, whole, rtol=1e-5, atol=1e-5)
