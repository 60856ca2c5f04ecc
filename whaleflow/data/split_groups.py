"""The near-duplicate groups as the split sees them, and the split's per-row state.

A group moves as a whole, so :func:`whaleflow.data.split.split_train` works on groups:
:func:`index_groups` sorts them into each individual's units, new_whale-only groups and
conflict groups (two known ids, always train); :func:`spare_groups` says which of an
individual's groups may validate. :class:`SplitAssignment` holds what has been decided per row.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["GroupIndex", "SplitAssignment", "index_groups", "spare_groups"]


@dataclass
class SplitAssignment:
    """The split as it is being made, per row: validation fold, held out as new, reason."""

    fold: np.ndarray      # the fold the row validates in, -1: none
    held: np.ndarray      # validates as a new individual although labelled
    reason: np.ndarray    # one readable line
    is_new: np.ndarray    # labelled new_whale

    @classmethod
    def empty(cls, n: int, is_new: np.ndarray) -> "SplitAssignment":
        return cls(np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=bool), np.full(n, "train", dtype=object), is_new)

    def validate(self, rows, f: int, *, known_only: bool = True) -> int:
        """Put ``rows`` (new_whale rows left out when ``known_only``) in fold f; how many went."""
        taken = 0
        for pos in rows:
            if not (known_only and self.is_new[pos]):
                self.fold[pos] = f
                taken += 1
        return taken


@dataclass
class GroupIndex:
    """The near-duplicate groups as the split sees them (a group moves as a whole)."""

    groups: dict[int, dict]       # per group: its rows, its known ids, whether it holds a preferred image
    units: dict[str, list[int]]   # per individual: its groups whose only known id it is
    fixed_train: dict[str, int]   # per individual: how many conflict groups keep it in train
    nw_groups: list[int]          # groups with no known id (new_whale only)


def index_groups(out: pd.DataFrame, a: SplitAssignment, prefer: set, new_whale: str) -> GroupIndex:
    """Group the rows, sort the groups into an individual's units, new_whale-only groups and
    conflict groups (two known ids: they stay in train), and mark the ambiguous new_whale
    members of mixed groups unused."""
    groups: dict[int, dict] = {}
    for pos, (g, ident, img) in enumerate(zip(out["group"].to_numpy(), out["id"].to_numpy(), out["image"])):
        info = groups.setdefault(int(g), {"rows": [], "ids": set(), "prefer": False})
        info["rows"].append(pos)
        if ident != new_whale:
            info["ids"].add(ident)
        info["prefer"] |= img in prefer
    units: dict[str, list[int]] = {}
    fixed_train: dict[str, int] = {}
    nw_groups: list[int] = []
    for g, info in groups.items():
        if not info["ids"]:
            nw_groups.append(g)
        elif len(info["ids"]) == 1:
            units.setdefault(next(iter(info["ids"])), []).append(g)
        else:
            for ident in info["ids"]:
                fixed_train[ident] = fixed_train.get(ident, 0) + 1
            for pos in info["rows"]:
                a.reason[pos] = "train: group with conflicting labels never validates"
    # Mixed groups (one known id + new_whale): the new_whale members are ambiguous.
    for g, info in groups.items():
        if info["ids"]:
            for pos in info["rows"]:
                if a.is_new[pos]:
                    a.reason[pos] = "unused: new_whale that duplicates a labelled image"
    return GroupIndex(groups, units, fixed_train, nw_groups)


def spare_groups(gi: GroupIndex, a: SplitAssignment, rng) -> tuple[dict[str, deque], int]:
    """Per individual the groups it may lend to validation — all but one, so it keeps a
    training group (or all, if a conflict group keeps it in train) — in a seeded order,
    preferred groups first; and how many known images those eligible individuals have."""
    spare: dict[str, deque] = {}
    eligible_images = 0
    for ident in sorted(gi.units):
        gs = gi.units[ident]
        n_groups = len(gs) + gi.fixed_train.get(ident, 0)
        if n_groups < 2:
            for g in gs:
                for pos in gi.groups[g]["rows"]:
                    if not a.is_new[pos]:
                        a.reason[pos] = "train: only group of this individual"
            continue
        eligible_images += sum(int(not a.is_new[p]) for g in gs for p in gi.groups[g]["rows"])
        order = [gs[i] for i in rng.permutation(len(gs))]
        order.sort(key=lambda g: not gi.groups[g]["prefer"])  # stable: preferred first
        keep = 0 if gi.fixed_train.get(ident, 0) else 1
        spare[ident] = deque(order[: len(order) - keep])
    return spare, eligible_images
