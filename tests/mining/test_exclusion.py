"""Negative exclusion codes: individuals merged through near-duplicate groups."""
from __future__ import annotations

import numpy as np
import pytest

from whaleflow.mining import negative_codes, virtual_codes


def brute_codes_same(labels, groups) -> np.ndarray:
    """(n, n) bool: i and j are connected through shared labels or shared groups (BFS)."""
    n = len(labels)
    adj = [[j for j in range(n) if labels[i] == labels[j] or groups[i] == groups[j]] for i in range(n)]
    comp = -np.ones(n, dtype=int)
    c = 0
    for s in range(n):
        if comp[s] >= 0:
            continue
        stack = [s]
        comp[s] = c
        while stack:
            i = stack.pop()
            for j in adj[i]:
                if comp[j] < 0:
                    comp[j] = c
                    stack.append(j)
        c += 1
    return comp[:, None] == comp[None, :]


@pytest.mark.parametrize("seed", range(8))
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 30
    labels = rng.integers(0, 12, n)
    groups = rng.integers(0, 24, n)
    codes = negative_codes(labels, groups)
    np.testing.assert_array_equal(codes[:, None] == codes[None, :], brute_codes_same(labels, groups))
    assert codes.min() == 0 and codes.max() == len(np.unique(codes)) - 1


def test_no_groups_is_the_labels_and_virtual_codes():
    labels = np.array(["b", "a", "b", "c"])
    np.testing.assert_array_equal(negative_codes(labels), [1, 0, 1, 2])
    np.testing.assert_array_equal(negative_codes(labels, ["g1", "g2", "g3", "g2"]), [1, 0, 1, 0])
    np.testing.assert_array_equal(virtual_codes(np.array([0, 1, 0]), True), [0, 1, 0, 2, 3, 2])
    np.testing.assert_array_equal(virtual_codes(np.array([0, 1, 0]), False), [0, 1, 0])
    with pytest.raises(ValueError):
        negative_codes(labels, [1, 2])
