"""impute_columns: classes one part cannot score are put on the full scale by rank among the
classes scored by both; brute force per row, exact on a monotone map, order kept."""
import numpy as np
import pytest

from whaleflow.inference.impute import impute_columns


def brute(full, partial, known, top):
    out = np.array(full, np.float64)
    for r in range(len(full)):
        xs, fs = np.sort(partial[r, known]), np.sort(full[r, known])
        k = min(top, len(xs))
        slope = fs[-k:].std() / xs[-k:].std() if xs[-k:].std() > 1e-12 else 1.0
        for c in np.flatnonzero(~known):
            x = partial[r, c]
            if x > xs[-1]:
                out[r, c] = fs[-1] + slope * (x - xs[-1])
            elif x < xs[0]:
                out[r, c] = fs[0] + slope * (x - xs[0])
            else:  # between two known partial scores: between their ranks' full scores
                i = np.searchsorted(xs, x, side="right") - 1
                i = min(i, len(xs) - 2)
                t = 0.0 if xs[i + 1] == xs[i] else (x - xs[i]) / (xs[i + 1] - xs[i])
                out[r, c] = fs[i] + t * (fs[i + 1] - fs[i])
    return out


@pytest.mark.parametrize("top", [3, 32])
def test_against_a_per_row_loop(top):
    rng = np.random.default_rng(1)
    full, partial = rng.normal(size=(6, 20)), rng.normal(size=(6, 20))
    partial[:, 15:] *= 2.5  # some unknown columns outside the known range on both sides
    known = np.arange(20) < 15
    got = impute_columns(full, partial, known, top=top)
    np.testing.assert_allclose(got, brute(full, partial, known, top), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got[:, known], full[:, known].astype(np.float32))


def test_a_monotone_map_is_recovered_exactly_inside_and_beyond_the_known_range():
    rng = np.random.default_rng(2)
    partial = rng.uniform(0, 1, size=(4, 12))
    partial[:, -1] = 1.5  # above every known score
    full = 2.0 * partial + 1.0
    known = np.arange(12) < 9
    np.testing.assert_allclose(impute_columns(np.where(known, full, 0.0), partial, known), full, rtol=1e-5)


def test_ranked_by_own_evidence_neither_lifted_nor_sunk():
    """Known classes: head + k-NN; an unknown class with the same k-NN score as the known
    runner-up lands at the runner-up's full score, not at its raw k-NN score (lifted) nor at
    the bottom; the unknown classes keep their k-NN order among themselves."""
    knn = np.array([[0.9, 0.6, 0.5, 0.4, 0.3, 0.6, 0.95, 0.2]])
    head = np.array([[0.7, 0.0, 0.05, 0.0, 0.1, 0, 0, 0]])
    known = np.array([1, 1, 1, 1, 1, 0, 0, 0], bool)
    full = np.where(known, 0.5 * head + 0.5 * knn, knn)
    got = impute_columns(full, knn, known)[0]
    assert got[5] == pytest.approx(np.sort(full[0, known])[-2])      # second-best k-NN → second-best full
    assert got[6] > got[:5].max()                                      # the best evidence of all comes first
    assert got[7] < got[5] and np.argsort(-got[5:]).tolist() == [1, 0, 2]
    assert got[5] < full[0, 5]                                         # raw k-NN would have lifted it


def test_nothing_known_or_nothing_missing():
    full, partial = np.ones((2, 3)), np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(impute_columns(full, partial, np.zeros(3, bool)), partial)
    np.testing.assert_array_equal(impute_columns(full, partial, np.ones(3, bool)), full)
