"""Leak-free train/validation split over near-duplicate groups.

A validation score is only worth something if no validation image has a twin in
training, so the unit of the split is a near-duplicate *group* (from
:mod:`whaleflow.data.dedup`), never an image. The rules:

* a group moves as a whole: a validation image's near-duplicates never stay in train;
* a known individual in validation keeps at least one training group, so only
  individuals with two or more groups give validation images;
* ``new_whale`` is never a training class; its images go to validation only, in the
  share ``new_whale_val_fraction`` of validation (the test prior), the surplus is
  marked ``unused``;
* where new_whale photos cannot fill that share (Happywhale and any other
  ``image,individual_id`` set have none), whole individuals are held out as new ones,
  as the Happywhale solutions did: individuals with the fewest photos first (the test
  set's new individuals are mostly seen once), every photo of them validates, none
  trains (``held_out`` column; their ``id`` stays the true one, so a test gallery of
  train + val still knows them);
* groups whose labels conflict (two known ids) stay in train and never validate;
* ``folds`` > 1 gives K disjoint validation sets (``fold`` column); ``role`` is the
  view of fold 0, :func:`roles_for_fold` gives any other fold's view;
* the same seed gives the same split.

Validation picks (``sampling``):

* ``proportional`` (default): every spare group equally likely, so an individual
  validates in proportion to its photos — as test queries come: a much-photographed
  individual is photographed again more often. Validation queries then search
  galleries as large as the test queries' do (in ``make demo``, round-robin gave 7.1
  gallery photos per queried individual against 13.4 for test), which is what makes
  a validation MAP@5 and a tuned threshold carry over to test;
* ``round_robin``: one group per individual per round, in a seeded order, so
  validation holds as many individuals as possible.

Groups listed in ``prefer_val`` (images matched to an earlier release, see
:mod:`whaleflow.data.relabel`) are taken first either way.
"""
from __future__ import annotations

from collections import deque

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..labels import NEW_WHALE
from .split_groups import GroupIndex, SplitAssignment, index_groups, spare_groups

ROLES = ("train", "val", "unused")


def split_train(
    frame: pd.DataFrame,
    *,
    val_fraction: float = 0.2,
    new_whale_val_fraction: float = 0.28,
    folds: int = 1,
    seed: int = 0,
    prefer_val=None,
    new_whale: str = NEW_WHALE,
    hold_out_new: bool = True,
    sampling: str = "proportional",
) -> pd.DataFrame:
    """Assign every training image a ``role`` (train/val/unused) and a ``fold``.

    ``frame`` has columns ``image``, ``id`` and ``group`` (near-duplicate group id;
    an image without duplicates has a group of its own). ``val_fraction`` is the
    share of the images of eligible individuals (≥2 groups) put in each fold's
    validation. Returns a copy with ``role``, ``fold`` (the fold in which the image
    validates, -1 if none), ``held_out`` (validates as a new individual although it
    has a label; see the module notes; ``hold_out_new=False`` never holds out) and
    ``reason`` (one readable line).
    """
    _check_arguments(frame, val_fraction, new_whale_val_fraction, folds, sampling)
    out = frame.reset_index(drop=True).copy()
    out["id"] = out["id"].astype(str)
    # one generator drawn in a fixed order (spares, pools, then each fold): the same seed, the same split
    rng = np.random.default_rng(seed)
    a = SplitAssignment.empty(len(out), (out["id"] == new_whale).to_numpy())
    gi = index_groups(out, a, set(prefer_val or ()), new_whale)
    spare, eligible_images = spare_groups(gi, a, rng)
    target = int(round(val_fraction * eligible_images))
    names = sorted(spare)
    nw_pool, hold_pool, pool = _pools(gi, spare, names, rng)
    for f in range(folds):
        order = [names[i] for i in rng.permutation(len(names))]
        order.sort(key=lambda ident: not (spare[ident] and gi.groups[spare[ident][0]]["prefer"]))
        if sampling == "proportional":
            taken = _take_pooled(pool, spare, gi, a, f, target)
        else:
            taken = _take_round_robin(order, spare, gi, a, f, target)
        p = new_whale_val_fraction
        want_nw = int(round(p / (1.0 - p) * taken)) if taken else 0
        got = _add_new_whale(nw_pool, gi, a, f, want_nw)
        if hold_out_new:
            _hold_out_new(hold_pool, spare, gi, a, f, want_nw, got)
    _final_reasons(a)
    out["fold"] = a.fold
    out["held_out"] = a.held
    out["role"] = roles_for_fold(out, 0, new_whale)
    out["reason"] = a.reason
    return out


def _check_arguments(frame: pd.DataFrame, val_fraction: float, new_whale_val_fraction: float, folds: int,
                     sampling: str) -> None:
    """One-line errors for a frame without the split's columns or settings out of range."""
    for col in ("image", "id", "group"):
        if col not in frame.columns:
            raise DataError(f"the split needs a column {col!r}; got {list(frame.columns)}.",
                            fix="pass the train frame with its near-duplicate groups.")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"prepare.val_fraction must be in [0, 1), got {val_fraction}.")
    if not 0.0 <= new_whale_val_fraction < 1.0:
        raise ConfigError(f"prepare.new_whale_val_fraction must be in [0, 1), got {new_whale_val_fraction}.")
    if folds < 1:
        raise ConfigError(f"prepare.folds must be ≥ 1, got {folds}.")
    if sampling not in ("proportional", "round_robin"):
        raise ConfigError(f"prepare.val_sampling must be proportional or round_robin, got {sampling!r}.")


def _pools(gi: GroupIndex, spare: dict[str, deque], names: list[str], rng) -> tuple[list, deque, deque]:
    """The seeded queues the folds draw from: new_whale groups, individuals that may be held
    out as new, and (individual, spare group) pairs for proportional sampling."""
    nw_pool = [gi.nw_groups[i] for i in rng.permutation(len(gi.nw_groups))]
    # Individuals that may be held out as new ones, fewest photos first (seeded ties), never
    # one in a conflict group: those that cannot validate as known (one group) come first.
    cands = [ident for ident in sorted(gi.units) if not gi.fixed_train.get(ident)]
    cands = [cands[i] for i in rng.permutation(len(cands))]
    cands.sort(key=lambda ident: (ident in spare, sum(len(gi.groups[g]["rows"]) for g in gi.units[ident])))
    pool = [(ident, g) for ident in names for g in spare[ident]]
    pool = [pool[i] for i in rng.permutation(len(pool))]
    pool.sort(key=lambda item: not gi.groups[item[1]]["prefer"])  # stable: preferred first
    return nw_pool, deque(cands), deque(pool)


def _take_pooled(pool: deque, spare: dict[str, deque], gi: GroupIndex, a: SplitAssignment, f: int, target: int) -> int:
    """Proportional sampling: spare groups in the pool's seeded order until ``target`` known images."""
    taken = 0
    while taken < target and pool:
        ident, g = pool.popleft()
        if g not in spare[ident]:
            continue  # its individual was held out as new in an earlier fold
        spare[ident].remove(g)
        taken += a.validate(gi.groups[g]["rows"], f)
    return taken


def _take_round_robin(order: list[str], spare: dict[str, deque], gi: GroupIndex, a: SplitAssignment, f: int,
                      target: int) -> int:
    """Round-robin sampling: one spare group per individual per round until ``target`` known images."""
    taken = 0
    while taken < target:
        progressed = False
        for ident in order:
            if not spare[ident]:
                continue
            g = spare[ident].popleft()
            progressed = True
            taken += a.validate(gi.groups[g]["rows"], f)
            if taken >= target:
                break
        if not progressed:
            break
    return taken


def _add_new_whale(nw_pool: list, gi: GroupIndex, a: SplitAssignment, f: int, want: int) -> int:
    """new_whale groups into fold f until ``want`` images; how many went."""
    got = 0
    while got < want and nw_pool:
        got += a.validate(gi.groups[nw_pool.pop()]["rows"], f, known_only=False)
    return got


def _hold_out_new(hold_pool: deque, spare: dict[str, deque], gi: GroupIndex, a: SplitAssignment, f: int,
                  want: int, got: int) -> int:
    """Where new_whale photos fall short, whole individuals validate as new ones in fold f."""
    while got < want and hold_pool:
        ident = hold_pool.popleft()
        rows = [pos for g in gi.units[ident] for pos in gi.groups[g]["rows"] if not a.is_new[pos]]
        if (a.fold[rows] >= 0).any():
            continue  # already validates as a known individual
        if ident in spare:
            spare[ident].clear()  # never a known validation individual in a later fold
        a.fold[rows], a.held[rows] = f, True
        got += len(rows)
    return got


def _final_reasons(a: SplitAssignment) -> None:
    """Each row's reason once every fold is drawn."""
    for pos in range(len(a.fold)):
        if a.held[pos]:
            a.reason[pos] = f"val in fold {a.fold[pos]} (held out as a new individual)"
        elif a.fold[pos] >= 0:
            a.reason[pos] = f"val in fold {a.fold[pos]}" + (" (new_whale)" if a.is_new[pos] else "")
        elif a.is_new[pos] and not a.reason[pos].startswith("unused"):
            a.reason[pos] = "unused: new_whale surplus beyond the validation prior"


def roles_for_fold(split: pd.DataFrame, fold: int, new_whale: str = NEW_WHALE) -> np.ndarray:
    """The role of every row when ``fold`` is the validation fold."""
    f = split["fold"].to_numpy()
    is_new = (split["id"].astype(str) == new_whale).to_numpy()
    role = np.where(f == fold, "val", np.where(is_new, "unused", "train"))
    return role.astype(object)


def val_chunks(groups, chunks: int, seed: int = 0) -> np.ndarray:
    """A chunk id (0 … chunks-1) per validation image, whole near-duplicate groups together
    (seeded): the unit of the test-like validation gallery (see ``FamilyTask.test_like_val_scores``)."""
    groups = np.asarray(groups).astype(str)
    uniq = np.unique(groups)
    order = np.random.default_rng([seed, 17]).permutation(len(uniq))
    of = dict(zip(uniq, order % max(1, int(chunks))))
    return np.array([of[g] for g in groups], dtype=np.int64)


def query_ids(frame: pd.DataFrame, new_whale: str = NEW_WHALE) -> np.ndarray:
    """The label each row has as a validation query: held-out individuals are new ones."""
    ids = frame["id"].astype(str).to_numpy()
    if "held_out" not in frame.columns:
        return ids
    return np.where(_held(frame), new_whale, ids).astype(str)


def _held(frame: pd.DataFrame) -> np.ndarray:
    col = frame["held_out"] if "held_out" in frame.columns else pd.Series(False, index=frame.index)
    return col.astype(str).str.lower().isin(("true", "1")).to_numpy()
