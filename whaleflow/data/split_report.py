"""What a split says to its reader and its checks: the broken rules (:func:`check_split`),
the counts per role and fold (:func:`split_summary`) and ``split.csv`` (:func:`write_split`).
The split itself is made by :func:`whaleflow.data.split.split_train`."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..io import write_csv
from ..labels import NEW_WHALE
from .split import _held, roles_for_fold

__all__ = ["check_split", "split_summary", "write_split"]


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
