"""What must not grow with the square of the data (benchmarks/scale_rehearsal.py finds it at
scale; these catch it again at small size, by structure, never by time)."""
from __future__ import annotations

import numpy as np
import pytest

from whaleflow.config import load_config
from whaleflow.pipeline import run_prepare
from whaleflow.training import build_task


def _cfg(data, out, family):
    return load_config("configs/demo.yaml", [
        f"data.root={data}", f"output.dir={out}", "output.quiet=true", f"models.0.family={family}",
        "models.0.stages=[{size: 32, epochs: 1, lr: 0.002}]"])


@pytest.fixture(scope="module")
def prepared(tiny_data, tmp_path_factory):
    """One prepared set for every family (the family does not change what prepare writes)."""
    return run_prepare(_cfg(tiny_data, tmp_path_factory.mktemp("scale_memory"), "metric"), progress=False)


@pytest.mark.parametrize("family", ["siamese", "metric", "arcface"])
def test_queries_are_scored_in_blocks_with_the_same_scores(tiny_data, prepared, tmp_path, monkeypatch, family):
    """Every family's scoring sees at most SCORE_BLOCK_ELEMS query × gallery cells at once
    (all test queries against the whole gallery held several 800 MB arrays at HWI size),
    and the blocked scores are the unblocked ones."""
    import whaleflow.families.scoring_mixin as scoring

    cfg = _cfg(tiny_data, tmp_path, family)
    task = build_task(cfg, cfg.models[0], prepared)
    task.setup_stage(cfg.models[0].stages[0], fresh=True)
    g_rows, g_labels, classes = task.labelled_gallery(("train", "val"))
    q_rows = task.splits["test"].rows[:10]
    assert len(q_rows) == 10
    whole = task.score_queries_named(q_rows, g_rows, g_labels, classes)  # default budget: one block here

    seen = []
    views = task.score_views

    def recording(q, g, labels, cls):
        seen.append(len(q[False]) * len(g[False]))
        return views(q, g, labels, cls)

    monkeypatch.setattr(task, "score_views", recording)
    monkeypatch.setattr(scoring, "SCORE_BLOCK_ELEMS", 4 * len(g_rows))
    blocked = task.score_queries_named(q_rows, g_rows, g_labels, classes)
    assert len(seen) == 3 and max(seen) <= 4 * len(g_rows)  # blocks of 4, 4 and 2 queries
    assert blocked.shape == (len(q_rows), len(classes)) and blocked.dtype == np.float32
    np.testing.assert_allclose(blocked, whole, rtol=1e-5, atol=1e-5)
