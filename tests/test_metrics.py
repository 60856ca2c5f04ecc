"""MAP@5 against hand-worked cases, as Kaggle scored HWI."""
import numpy as np
import pytest

from whaleflow.metrics import average_precision_at_k, map_at_k, map_at_k_indices


@pytest.mark.parametrize(
    "pred, truth, expected",
    [
        (["a", "b", "c", "d", "e"], "a", 1.0),
        (["b", "a", "c", "d", "e"], "a", 1 / 2),
        (["b", "b", "a"], "a", 1 / 3),                  # repeats before the hit count as positions
        (["a", "a", "a", "a", "a"], "a", 1.0),          # a repeated hit adds nothing
        (["a", "b", "a"], "a", 1.0),
        (["b", "c", "d", "e", "f", "a"], "a", 0.0),     # only the first five count
        (["b", "c"], "a", 0.0),                          # fewer than five, all wrong
        (["b", "a"], "a", 1 / 2),                        # fewer than five, hit
        ([], "a", 0.0),
        (["new_whale", "w_1", "w_2"], "new_whale", 1.0),  # new_whale first
        (["w_1", "new_whale"], "new_whale", 1 / 2),
        (["w_1", "w_2", "w_3", "w_4", "w_5"], "new_whale", 0.0),
    ],
)
def test_average_precision_hand_cases(pred, truth, expected):
    assert average_precision_at_k(pred, truth) == pytest.approx(expected)


def test_map_is_mean_over_images():
    pred = [["a", "b"], ["x", "y", "b"], ["z"]]
    truth = ["a", "b", "q"]
    assert map_at_k(pred, truth) == pytest.approx((1 + 1 / 3 + 0) / 3)


def test_map_k_other_than_five():
    assert map_at_k([["x", "y", "a"]], ["a"], k=2) == 0.0
    assert map_at_k([["x", "y", "a"]], ["a"], k=3) == pytest.approx(1 / 3)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        map_at_k([["a"]], ["a", "b"])


def test_vectorised_matches_reference():
    rng = np.random.default_rng(0)
    top = np.stack([rng.permutation(8)[:5] for _ in range(200)]) - 1  # includes -1 = new_whale
    truth = rng.integers(-1, 7, size=200)
    ref = map_at_k([list(r) for r in top], list(truth))
    assert map_at_k_indices(top, truth) == pytest.approx(ref)


def test_map_at_k_by_bin_matches_a_per_query_loop():
    from whaleflow.metrics import gallery_bin_label, map_at_k_by_bin

    rng = np.random.default_rng(0)
    labels = [f"w{i}" for i in range(12)]
    actual = list(rng.choice(labels + ["new_whale"], 300))
    predicted = [list(rng.choice(labels + ["new_whale"], 5, replace=False)) for _ in actual]
    sizes = [0 if a == "new_whale" else int(rng.integers(1, 20)) for a in actual]
    got = map_at_k_by_bin(predicted, actual, sizes)
    expected: dict[str, list[float]] = {}
    for p, a, s in zip(predicted, actual, sizes):
        ap = 0.0
        for pos in range(5):
            if p[pos] == a:
                ap = 1.0 / (pos + 1)
                break
        label = ("new" if s == 0 else "1" if s == 1 else "2" if s == 2 else "3-4" if s <= 4
                 else "5-8" if s <= 8 else "9+")
        assert gallery_bin_label(s) == label
        expected.setdefault(label, []).append(ap)
        expected.setdefault("all", []).append(ap)
    assert set(got) == set(expected)
    for label, aps in expected.items():
        assert got[label]["n"] == len(aps)
        assert got[label]["map5"] == pytest.approx(float(np.mean(aps)))
