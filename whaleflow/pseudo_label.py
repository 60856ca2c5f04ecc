"""Pseudo-labelling rounds: confident test predictions join training for the next round.

HWI's 1st and 2nd places and the Happywhale winner all trained a second time with
their most confident test predictions as extra labelled photos. Round ``r`` (1 …
``pseudo_label.rounds``) here:

1. picks from round ``r-1``'s ensemble (``ensemble/test_top.csv``: each test image's
   best known individual, its normalised blend score, whether "new" came first) the
   test images whose best label is a known individual ranked above "new" and whose
   score reaches ``min_score`` and the score at which validation's best known
   individual was right ``min_precision`` of the time (:func:`precision_floor`), the most
   confident first, at most ``max_share`` of the test images (:func:`pick_pseudo_labels`).
   A "new" prediction never becomes a label: it names no one, and new individuals are
   never a training class. When nothing qualifies, no more rounds are trained;
2. writes them to ``RUN_DIR/pseudo/round_<r>/pseudo_labels.csv`` and trains every
   model again into that folder's ``trials/`` on the prepared data plus those
   photos as training images of their predicted individuals
   (:func:`with_pseudo_labels`; each is a second row over the same cached pixels,
   named ``pseudo/<image>``, so the test query itself stays a query);
3. blends them (the round folder is a run folder of its own: ``ensemble/``,
   ``submission.csv``) and records the round's validation MAP@5 and its gain over
   the round before — on the same validation queries, which never become labels —
   and the gain on the validation photos no candidate came from (``val_gain_clean``).

A candidate whose near-duplicate or best round-0 match is a validation photo never
becomes a label (:mod:`whaleflow.pseudo_sources`); the dropped ones are listed in the
round's ``pseudo_labels_dropped.csv``.

The last round's submission becomes the run's. A round folder whose labels changed
(an earlier round trained differently) is moved aside before it is reused.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from .config import PseudoLabelConfig
from .io import write_csv
from .labels import NEW_WHALE
from .pseudo_sources import clean_gain, drop_validation_sources

__all__ = ["PSEUDO_PREFIX", "pick_pseudo_labels", "precision_floor", "round_dir", "start_round", "with_pseudo_labels", "round_record"]

PSEUDO_PREFIX = "pseudo/"


def round_dir(run_dir: str | Path, r: int) -> Path:
    return Path(run_dir) / "pseudo" / f"round_{r}"


#: validation queries a precision floor needs above it before it is trusted
MIN_CALIBRATION = 10


def precision_floor(val_predictions: pd.DataFrame, min_precision: float) -> float:
    """The lowest blend score at which the validation queries scoring at least that much had
    their best known individual right at least ``min_precision`` of the time (a query of a
    new individual counts as wrong: its best known individual is never right). ``inf``
    when no such score exists over at least :data:`MIN_CALIBRATION` queries.

    Why: a wrong pseudo-label teaches the networks that two individuals are one. With a
    weak blend, a fixed ``min_score`` let in labels that were right about a third of the
    time, and the round lost accuracy; the validation queries, scored on the same scale
    as test (the test-like gallery), say where the blend starts being trustworthy.

    With a ``weight`` column (the ensemble's weights to the expected test mix of gallery
    sizes, :mod:`whaleflow.ensemble.gallery_mix`) the precision is the weighted one:
    validation over-represents queries with large galleries, which are right more often,
    and the unweighted floor let in labels right 67 % of the time for a 90 % target."""
    v = val_predictions
    first = [next((lab for lab in str(t).split() if lab != NEW_WHALE), "") for t in v["top5"]]
    right = np.array([f != "" and f == str(tr) for f, tr in zip(first, v["truth"])], dtype=np.float64)
    score = v["top1_score"].astype(float).to_numpy()
    weight = v["weight"].astype(float).to_numpy() if "weight" in v else np.ones(len(v))
    order = np.argsort(-score, kind="stable")
    prec = np.cumsum((right * weight)[order]) / np.maximum(np.cumsum(weight[order]), 1e-12)
    s = score[order]
    # a cut must take every query with that score: only the last position of each score counts
    last = np.r_[s[1:] != s[:-1], True] if len(s) else np.zeros(0, bool)
    ok = np.flatnonzero(last & (prec >= min_precision) & (np.arange(1, len(s) + 1) >= MIN_CALIBRATION))
    return float(s[ok[-1]]) if len(ok) else float("inf")


def pick_pseudo_labels(test_top: pd.DataFrame, cfg: PseudoLabelConfig,
                       val_predictions: pd.DataFrame | None = None) -> pd.DataFrame:
    """``image, id, score`` of the confident test predictions (see the module notes); with
    ``val_predictions`` and ``cfg.min_precision``, the floor is also :func:`precision_floor`."""
    top = test_top.copy()
    floor = cfg.min_score
    if cfg.min_precision is not None and val_predictions is not None:
        floor = max(floor, precision_floor(val_predictions, cfg.min_precision))
    new_first = top["new_first"].astype(str).str.lower().isin(("true", "1"))
    ok = ~new_first & (top["label"].astype(str) != NEW_WHALE) & (top["label"].astype(str) != "") \
        & (top["score"].astype(float) >= floor)
    cap = int(np.floor(cfg.max_share * len(top)))
    chosen = top[ok].sort_values(["score", "image"], ascending=[False, True], kind="stable").head(cap)
    return pd.DataFrame({"image": chosen["image"].astype(str).to_numpy(), "id": chosen["label"].astype(str).to_numpy(),
                         "score": chosen["score"].astype(float).to_numpy()})


def start_round(run_dir: str | Path, r: int, labels: pd.DataFrame) -> Path:
    """The round's folder with its ``pseudo_labels.csv`` and a link to the run's ``prepared/``;
    a folder left by other labels is moved aside first (kept, not deleted)."""
    rdir = round_dir(run_dir, r)
    path = rdir / "pseudo_labels.csv"
    if path.is_file():
        old = pd.read_csv(path, dtype={"image": str, "id": str}, keep_default_na=False)
        if old[["image", "id"]].values.tolist() != labels[["image", "id"]].values.tolist():
            rdir.rename(rdir.with_name(f"{rdir.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}"))
    rdir.mkdir(parents=True, exist_ok=True)
    link = rdir / "prepared"
    if not link.exists():
        link.symlink_to(Path("..") / ".." / "prepared", target_is_directory=True)
    write_csv(path, labels)
    return rdir


def with_pseudo_labels(prepared, labels: pd.DataFrame | str | Path):
    """``prepared`` plus one training row per pseudo-label (the same cached pixels and
    near-duplicate group as its test photo)."""
    import dataclasses

    if not isinstance(labels, pd.DataFrame):
        labels = pd.read_csv(labels, dtype={"image": str, "id": str}, keep_default_na=False)
    idx = prepared.index
    if labels.empty:
        return prepared
    if (labels["id"] == NEW_WHALE).any():
        raise ValueError("a pseudo-label names a new individual; new individuals never train")
    test = idx[idx["role"] == "test"].set_index("image")
    missing = sorted(set(labels["image"]) - set(test.index))
    if missing:
        raise ValueError(f"{len(missing)} pseudo-labelled images are not test images, e.g. {missing[:3]}")
    extra = test.loc[labels["image"]].reset_index()
    extra["image"] = PSEUDO_PREFIX + extra["image"]
    extra["id"] = labels["id"].to_numpy()
    extra["role"] = "train"
    extra["fold"] = -1
    if "held_out" in extra.columns:
        extra["held_out"] = False
    out = pd.concat([idx, extra[idx.columns]], ignore_index=True)
    return dataclasses.replace(prepared, index=out)


def round_record(r: int, n_labels: int, ensemble: dict, previous: dict | None) -> dict:
    """One row of the report's rounds table: the round's validation figures and gains."""
    val, exp = ensemble.get("val_map5"), ensemble.get("expected_test_map5")
    rec = {"round": r, "pseudo_labels": int(n_labels), "val_map5": val, "expected_test_map5": exp}
    if previous is not None:
        rec["val_gain"] = None if val is None or previous.get("val_map5") is None else val - previous["val_map5"]
        rec["expected_gain"] = (None if exp is None or previous.get("expected_test_map5") is None
                                else exp - previous["expected_test_map5"])
    return rec


def run_rounds(cfg, ensemble: dict, train_round, *, progress: bool = True) -> dict:
    """Rounds 1 … ``pseudo_label.rounds`` after round 0 (the run itself, whose ensemble summary is
    ``ensemble``). ``train_round(cfg_r, round_dir)`` trains and blends one round (locally or on
    Ray) and returns its ensemble summary. Returns round 0's summary (the run folder's own ``ensemble/``)
    with ``pseudo_rounds`` (one record per round); the submission is the last round's."""
    import dataclasses
    import os
    import shutil

    run_dir = Path(cfg.output.dir)
    records = [round_record(0, 0, ensemble, None)]
    prev = run_dir
    for r in range(1, cfg.pseudo_label.rounds + 1):
        top = pd.read_csv(prev / "ensemble" / "test_top.csv", dtype={"image": str, "label": str},
                          keep_default_na=False)
        vpath = prev / "ensemble" / "val_predictions.csv"
        vpred = pd.read_csv(vpath, dtype={"truth": str, "top5": str}, keep_default_na=False) if vpath.is_file() else None
        labels = pick_pseudo_labels(top, cfg.pseudo_label, vpred)
        labels, dropped, sources = drop_validation_sources(run_dir, labels)
        if progress and not cfg.output.quiet and len(dropped):
            print(f"pseudo-labelling round {r}: {len(dropped)} confident test photos left out: their near-duplicate "
                  "or best match is a validation photo (they would carry its label into training)")
        if labels.empty:  # retraining on the same data would only repeat the round before
            if progress and not cfg.output.quiet:
                print(f"pseudo-labelling round {r}: no test prediction is confident enough "
                      f"(min_score {cfg.pseudo_label.min_score}, min_precision {cfg.pseudo_label.min_precision}); "
                      "no more rounds")
            records.append({"round": r, "pseudo_labels": 0, "skipped": True})
            break
        rdir = start_round(run_dir, r, labels)
        if progress and not cfg.output.quiet:
            print(f"pseudo-labelling round {r}: {len(labels)} of {len(top)} test images join training")
        if len(dropped):
            write_csv(rdir / "pseudo_labels_dropped.csv", dropped)
        summary = train_round(cfg.replace(output=dataclasses.replace(cfg.output, dir=str(rdir))), rdir)
        rec = round_record(r, len(labels), summary, records[-1])
        after = rdir / "ensemble" / "val_predictions.csv"
        if vpred is not None and after.is_file():
            rec["val_gain_clean"] = clean_gain(vpred, pd.read_csv(after, dtype={"truth": str, "top5": str},
                                                                  keep_default_na=False), sources)
            rec["val_sources_left_out"] = len(sources)
        records.append(rec)
        prev = rdir
    if prev != run_dir:
        keep = run_dir / "pseudo" / "round_0_submission.csv"
        if not keep.exists():
            shutil.copyfile(run_dir / "submission.csv", keep)
        tmp = run_dir / ".submission.csv.round"
        shutil.copyfile(prev / "submission.csv", tmp)
        os.replace(tmp, run_dir / "submission.csv")
        ensemble = {**ensemble, "submission": str(run_dir / "submission.csv"),
                    "notes": list(ensemble.get("notes", [])) + [
                        f"submission from pseudo-labelling {prev.name.replace('_', ' ')} "
                        f"(its ensemble: {prev / 'ensemble'}); the figures here are round 0's"]}
    return {**ensemble, "pseudo_rounds": records}


def round_submission(run_dir: str | Path, r: int) -> Path:
    """Where round ``r``'s submission is (round 0's is kept aside once later rounds replace it)."""
    return Path(run_dir) / "pseudo" / ("round_0_submission.csv" if r == 0 else f"round_{r}/submission.csv")
