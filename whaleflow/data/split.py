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
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..io import write_csv
from ..labels import NEW_WHALE

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

    out = frame.reset_index(drop=True).copy()
    out["id"] = out["id"].astype(str)
    rng = np.random.default_rng(seed)
    prefer = set(prefer_val or ())
    n = len(out)
    fold = np.full(n, -1, dtype=np.int64)
    held = np.zeros(n, dtype=bool)
    reason = np.full(n, "train", dtype=object)

    is_new = (out["id"] == new_whale).to_numpy()
    # Per group: its known ids, its rows, whether it holds a preferred image.
    groups: dict[int, dict] = {}
    for pos, (g, ident, img) in enumerate(zip(out["group"].to_numpy(), out["id"].to_numpy(), out["image"])):
        info = groups.setdefault(int(g), {"rows": [], "ids": set(), "prefer": False})
        info["rows"].append(pos)
        if ident != new_whale:
            info["ids"].add(ident)
        info["prefer"] |= img in prefer

    # Units per individual: groups whose only known id is that individual.
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
                reason[pos] = "train: group with conflicting labels never validates"

    # Mixed groups (one known id + new_whale): the new_whale members are ambiguous.
    for g, info in groups.items():
        if info["ids"]:
            for pos in info["rows"]:
                if is_new[pos]:
                    reason[pos] = "unused: new_whale that duplicates a labelled image"

    # Each individual may lend all groups but one (or all, if a conflict group keeps it in train).
    spare: dict[str, deque] = {}
    eligible_images = 0
    for ident in sorted(units):
        gs = units[ident]
        n_groups = len(gs) + fixed_train.get(ident, 0)
        if n_groups < 2:
            for g in gs:
                for pos in groups[g]["rows"]:
                    if not is_new[pos]:
                        reason[pos] = "train: only group of this individual"
            continue
        eligible_images += sum(int(not is_new[p]) for g in gs for p in groups[g]["rows"])
        order = [gs[i] for i in rng.permutation(len(gs))]
        order.sort(key=lambda g: not groups[g]["prefer"])  # stable: preferred first
        keep = 0 if fixed_train.get(ident, 0) else 1
        spare[ident] = deque(order[: len(order) - keep])

    target = int(round(val_fraction * eligible_images))
    names = sorted(spare)
    nw_pool = [nw_groups[i] for i in rng.permutation(len(nw_groups))]
    # Individuals that may be held out as new ones, fewest photos first (seeded ties), never
    # one in a conflict group: those that cannot validate as known (one group) come first.
    cands = [ident for ident in sorted(units) if not fixed_train.get(ident)]
    cands = [cands[i] for i in rng.permutation(len(cands))]
    cands.sort(key=lambda ident: (ident in spare, sum(len(groups[g]["rows"]) for g in units[ident])))
    hold_pool = deque(cands)
    p = new_whale_val_fraction
    pool = [(ident, g) for ident in names for g in spare[ident]]
    pool = [pool[i] for i in rng.permutation(len(pool))]
    pool.sort(key=lambda item: not groups[item[1]]["prefer"])  # stable: preferred first
    pool = deque(pool)
    for f in range(folds):
        taken = 0
        order = [names[i] for i in rng.permutation(len(names))]
        order.sort(key=lambda ident: not (spare[ident] and groups[spare[ident][0]]["prefer"]))
        while sampling == "proportional" and taken < target and pool:
            ident, g = pool.popleft()
            if g not in spare[ident]:
                continue  # its individual was held out as new in an earlier fold
            spare[ident].remove(g)
            for pos in groups[g]["rows"]:
                if not is_new[pos]:
                    fold[pos] = f
                    taken += 1
        while sampling == "round_robin" and taken < target:
            progressed = False
            for ident in order:
                if not spare[ident]:
                    continue
                g = spare[ident].popleft()
                progressed = True
                for pos in groups[g]["rows"]:
                    if not is_new[pos]:
                        fold[pos] = f
                        taken += 1
                if taken >= target:
                    break
            if not progressed:
                break
        want_nw = int(round(p / (1.0 - p) * taken)) if taken else 0
        got = 0
        while got < want_nw and nw_pool:
            g = nw_pool.pop()
            for pos in groups[g]["rows"]:
                fold[pos] = f
                got += 1
        while hold_out_new and got < want_nw and hold_pool:
            ident = hold_pool.popleft()
            rows = [pos for g in units[ident] for pos in groups[g]["rows"] if not is_new[pos]]
            if (fold[rows] >= 0).any():
                continue  # already validates as a known individual
            if ident in spare:
                spare[ident].clear()  # never a known validation individual in a later fold
            fold[rows], held[rows] = f, True
            got += len(rows)

    for pos in range(n):
        if held[pos]:
            reason[pos] = f"val in fold {fold[pos]} (held out as a new individual)"
        elif fold[pos] >= 0:
            reason[pos] = f"val in fold {fold[pos]}" + (" (new_whale)" if is_new[pos] else "")
        elif is_new[pos] and not reason[pos].startswith("unused"):
            reason[pos] = "unused: new_whale surplus beyond the validation prior"
    out["fold"] = fold
    out["held_out"] = held
    out["role"] = roles_for_fold(out, 0, new_whale)
    out["reason"] = reason
    return out


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


def check_split(split: pd.DataFrame, new_whale: str = NEW_WHALE) -> list[str]:
    """Every broken rule, as readable lines (empty when the split is sound), for every fold."""
    problems: list[str] = []
    folds = sorted(int(x) for x in set(split["fold"]) if x >= 0) or [0]
    for f in folds:
        role = roles_for_fold(split, f, new_whale)
        val_groups = set(split["group"][role == "val"])
        leaked = split[(role == "train") & split["group"].isin(val_groups)]
        if len(leaked):
            problems.append(f"fold {f}: {len(leaked)} training images duplicate validation images")
        train_ids = set(split["id"][role == "train"])
        held = _held(split)
        val_known = split[(role == "val") & (split["id"] != new_whale) & ~held]
        orphans = set(val_known["id"]) - train_ids
        if orphans:
            problems.append(f"fold {f}: {len(orphans)} validation individuals have no training image")
        seen = set(split["id"][(role == "val") & held]) & train_ids
        if seen:
            problems.append(f"fold {f}: {len(seen)} individuals held out as new have training images")
        if ((role == "train") & (split["id"] == new_whale).to_numpy()).any():
            problems.append(f"fold {f}: new_whale images in train")
    return problems


def split_summary(split: pd.DataFrame, new_whale: str = NEW_WHALE) -> dict:
    """Counts a user reads: images and individuals per role and fold."""
    out: dict = {"folds": int(max(1, split["fold"].max() + 1))}
    for f in range(out["folds"]):
        role = roles_for_fold(split, f, new_whale)
        val = split[role == "val"]
        held = _held(val)
        new = (val["id"] == new_whale).to_numpy() | held
        out[f"fold_{f}"] = {
            "train_images": int((role == "train").sum()),
            "train_individuals": int(split["id"][role == "train"].nunique()),
            "val_images": int(len(val)),
            "val_new_whale": int(new.sum()),
            "val_held_out": int(held.sum()),
            "val_held_out_individuals": int(val["id"][held].nunique()),
            "val_new_share": float(new.mean()) if len(val) else 0.0,
            "val_individuals": int(val["id"][~new].nunique()),
            "unused": int((role == "unused").sum()),
        }
    return out


def write_split(split: pd.DataFrame, path: str | Path) -> Path:
    """Write ``split.csv`` sorted for reading: role, then id, then image."""
    cols = [c for c in ("image", "id", "role", "fold", "held_out", "group", "reason") if c in split.columns]
    order = {"val": 0, "train": 1, "unused": 2}
    view = split[cols].copy()
    view["_r"] = view["role"].map(order)
    view = view.sort_values(["_r", "fold", "id", "image"], kind="stable").drop(columns="_r")
    return write_csv(path, view)
