"""tune_threshold (the exact fast sweep) against an exhaustive sweep with insert_new_whale."""
import numpy as np
import pytest

from whaleflow.inference import aggregate_by_class, insert_new_whale, tune_threshold
from whaleflow.metrics import map_at_k_indices


def _exhaustive(scores, truth, k=5):
    """Best MAP@k over every threshold that can change the result: each distinct value and
    one above the maximum (MAP is a step function that only moves at those values)."""
    vals = np.unique(scores)
    cands = np.r_[vals, np.nextafter(vals[-1], np.float32(np.inf))].astype(np.float32)
    return max(map_at_k_indices(insert_new_whale(scores, t, k), truth) for t in cands)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("ties", [False, True])
def test_matches_exhaustive_sweep(seed, ties):
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(1, 40)), int(rng.integers(1, 12))
    if ties:  # few distinct values: ties inside rows and across rows
        scores = rng.integers(0, 4, size=(n, c)).astype(np.float32) / 4
    else:
        scores = rng.normal(size=(n, c)).astype(np.float32)
    truth = rng.integers(-2, c, size=n)  # -2: a label no class matches
    t, value = tune_threshold(scores, truth)
    best = _exhaustive(scores, truth)
    assert value == pytest.approx(best, abs=1e-12)
    # the returned threshold reproduces that MAP@5 through the prediction path
    assert map_at_k_indices(insert_new_whale(scores, t), truth) == pytest.approx(best, abs=1e-12)


def test_aggregate_by_class_matches_loop():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(7, 30)).astype(np.float32)
    labels = rng.integers(0, 9, size=30)
    labels[labels == 4] = 5  # class 4 has no gallery image
    for how, red in (("max", np.max), ("mean", np.mean)):
        out = aggregate_by_class(s, labels, 9, how)
        for c in range(9):
            want = red(s[:, labels == c], axis=1) if (labels == c).any() else np.full(7, np.nan)
            if c == 4:
                assert np.all(out[:, c] == out[:, [j for j in range(9) if j != 4]].min())
            else:
                assert np.allclose(out[:, c], want, atol=1e-6)
