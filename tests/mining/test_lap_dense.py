"""Dense LAP mining against exhaustive search on small matrices, and its fallback."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from whaleflow.mining import NO_PARTNER, hard_negatives, hard_positives


def feasible_labels(rng, n):
    """Random labels where no individual has more than half the images."""
    while True:
        labels = rng.integers(0, n // 2 + 2, size=n)
        if np.bincount(labels).max() * 2 <= n:
            return labels


def brute_negatives(s, labels):
    n = len(labels)
    perms = (p for p in itertools.permutations(range(n)) if all(labels[i] != labels[p[i]] for i in range(n)))
    return max(perms, key=lambda p: sum(s[i, p[i]] for i in range(n)))


def brute_positives(s, labels):
    n = len(labels)
    counts = np.bincount(labels)

    def ok(p):
        return all(labels[p[i]] == labels[i] and (p[i] != i or counts[labels[i]] == 1) for i in range(n))

    return min(filter(ok, itertools.permutations(range(n))), key=lambda p: sum(s[i, p[i]] for i in range(n)))


@pytest.mark.parametrize("seed", range(12))
def test_negatives_match_exhaustive_search(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 8))
    labels = feasible_labels(rng, n)
    s = rng.standard_normal((n, n))  # not symmetric: the optimum is unique
    got = hard_negatives(s, labels)
    assert tuple(got) == brute_negatives(s, labels)


@pytest.mark.parametrize("seed", range(12))
def test_positives_match_exhaustive_search(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(3, 8))
    labels = rng.integers(0, 3, size=n)
    s = rng.standard_normal((n, n))
    got = hard_positives(s, labels)
    assert tuple(got) == brute_positives(s, labels)


def test_positives_singletons_pair_with_themselves_and_pairs_swap():
    labels = np.array(["a", "b", "b", "c", "c", "c"])
    s = np.random.default_rng(0).standard_normal((6, 6))
    got = hard_positives(s, labels)
    assert got[0] == 0 and list(got[1:3]) == [2, 1]
    assert sorted(got[3:]) == [3, 4, 5] and all(got[i] != i for i in range(3, 6))


@pytest.mark.parametrize("seed", range(5))
def test_forbidden_cells_never_chosen_under_noise(seed):
    rng = np.random.default_rng(seed)
    n = 40
    labels = feasible_labels(rng, n)
    s = rng.standard_normal((n, n))
    for noise in (0.0, 0.5, 50.0):
        neg = hard_negatives(s, labels, noise=noise, rng=rng)
        assert sorted(neg) == list(range(n)), "a permutation: every partner distinct"
        assert (labels[neg] != labels).all()
        pos = hard_positives(s, labels, noise=noise, rng=rng)
        assert sorted(pos) == list(range(n))
        assert (labels[pos] == labels).all()
        multi = np.bincount(labels)[labels] > 1
        assert (pos[multi] != np.flatnonzero(multi)).all()


def test_noise_is_seeded_and_does_something():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 3)
    s = rng.standard_normal((30, 30))
    a = hard_negatives(s, labels, noise=5.0, rng=1)
    b = hard_negatives(s, labels, noise=5.0, rng=np.random.default_rng(1))
    c = hard_negatives(s, labels, noise=5.0, rng=2)
    assert (a == b).all() and (a != c).any()
    assert (hard_negatives(s, labels) == hard_negatives(s, labels, noise=0.0, rng=3)).all()


def test_input_not_modified_and_string_labels():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((6, 6)).astype(np.float32)
    before = s.copy()
    labels = np.array(["w1", "w1", "w2", "w2", "w3", "w3"])
    neg = hard_negatives(s, labels, noise=1.0, rng=0)
    assert (labels[neg] != labels).all()
    assert (s == before).all()


def brute_fallback(s, labels):
    """Fewest same-individual cells first, then the highest score on the allowed ones;
    rows left on a forbidden cell then take their best allowed column."""
    n = len(labels)

    def key(p):
        bad = [labels[i] == labels[p[i]] for i in range(n)]
        return (sum(bad), -sum(s[i, p[i]] for i in range(n) if not bad[i]))

    best = list(min(itertools.permutations(range(n)), key=key))
    for i in range(n):
        if labels[best[i]] == labels[i]:
            allowed = np.flatnonzero(labels != labels[i])
            best[i] = int(allowed[np.argmax(s[i, allowed])])
    return tuple(best)


@pytest.mark.parametrize("seed", range(6))
def test_fallback_when_one_individual_dominates(seed):
    # Individual 0 holds 5 of 7 images: no full assignment avoids same-individual
    # cells. A maximum of 4 rows get distinct partners; the other 3 take their best.
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.array([0, 0, 0, 0, 0, 1, 2]))
    s = rng.standard_normal((7, 7))
    info = {}
    neg = hard_negatives(s, labels, info=info)
    assert (labels[neg] != labels).all()
    assert info["fallback_rows"] == 3
    assert tuple(neg) == brute_fallback(s, labels)


def test_single_individual_gets_no_partner():
    info = {}
    neg = hard_negatives(np.zeros((3, 3)), [7, 7, 7], info=info)
    assert (neg == NO_PARTNER).all() and info["fallback_rows"] == 3


def test_bad_inputs():
    with pytest.raises(ValueError):
        hard_negatives(np.zeros((3, 4)), [0, 1, 2])
    with pytest.raises(ValueError):
        hard_negatives(np.zeros((3, 3)), [0, 1])
    with pytest.raises(ValueError):
        hard_negatives(np.full((2, 2), np.nan), [0, 1])
    with pytest.raises(ValueError):
        hard_negatives(np.zeros((2, 2)), [0, 1], noise=-1.0)
