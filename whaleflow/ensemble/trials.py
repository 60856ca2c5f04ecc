"""The models an ensemble blends: the finished trials of a run, plus the classifier and the
local-feature verifier that each ensemble run builds itself.

A trial is usable when its folder under ``RUN_DIR/trials/`` holds ``result.json`` and both
score files (validation, test); anything else is left out with a note, so a run with one
crashed trial still blends the others.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..errors import DataError
from ..local.local_trial import LOCAL_NAME, build_local_trial
from .classifier_model import CLASSIFIER_NAME, build_classifier_model

__all__ = ["TrialArtifacts", "find_trials", "gather_trials"]


@dataclass
class TrialArtifacts:
    """A finished trial's folder and its ``result.json``."""

    name: str
    path: Path
    result: dict

    @property
    def family(self) -> str:
        return str(self.result.get("family", "unknown"))

    @property
    def probability_like(self) -> bool:
        """Whether the trial's class scores may be probabilities (the normaliser then reads them as
        such when they lie in [0, 1]); False when its ``result.json`` says they never are
        (``"probability_like": false``: the local-feature verifier's log match counts)."""
        return bool(self.result.get("probability_like", True))


def find_trials(run_dir: str | Path, include_classifier: bool = False) -> tuple[list[TrialArtifacts], list[str]]:
    """Finished trials (``result.json`` and both score files) under ``RUN_DIR/trials``, by name.

    The classifier's folder is left out unless asked for: it is rebuilt (or reused)
    by each ensemble run, and a stale one from a run with the classifier disabled must
    not slip in. Returns the trials and notes on folders that were not usable.
    """
    trials_dir = Path(run_dir) / "trials"
    found, notes = [], []
    if not trials_dir.is_dir():
        return found, notes
    for d in sorted(p for p in trials_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if d.name in (CLASSIFIER_NAME, LOCAL_NAME) and not include_classifier:
            continue  # rebuilt by each ensemble run when enabled
        res = d / "result.json"
        if not res.is_file():
            notes.append(f"trial {d.name}: unfinished (no result.json), left out")
            continue
        missing = [f for f in ("scores_val.npz", "scores_test.npz") if not (d / f).is_file()]
        if missing:
            notes.append(f"trial {d.name}: missing {', '.join(missing)}, left out")
            continue
        found.append(TrialArtifacts(d.name, d, json.loads(res.read_text())))
    return found, notes


def gather_trials(cfg: Config, run_dir: Path) -> tuple[list[TrialArtifacts], list[str]]:
    """The finished trials, then the classifier on their embeddings and the local-feature
    verifier (each when enabled), in the order the blend lists them; plus the notes so far.

    The classifier and the verifier are built here, not by Tune, because both read the
    trials' outputs: they are models of the ensemble, not of the search.
    """
    ecfg = cfg.ensemble
    trials, notes = find_trials(run_dir)
    outcome = build_classifier_model(ecfg.classifier, run_dir, [t.name for t in trials], seed=ecfg.seed,
                                     store_topk=cfg.predict.store_topk, store_topk_above=cfg.predict.store_topk_above,
                                     val_gallery=cfg.predict.val_gallery, val_chunks=cfg.predict.val_chunks)
    notes.append(outcome.note)
    if outcome.trial_dir is not None:
        trials.append(TrialArtifacts(CLASSIFIER_NAME, outcome.trial_dir,
                                     json.loads((outcome.trial_dir / "result.json").read_text())))
    if ecfg.local_match.enabled and trials:
        local_dir, local_res = build_local_trial(cfg, run_dir, trials)
        notes.append(f"local-feature verification ({ecfg.local_match.kind}): each model's top "
                     f"{ecfg.local_match.shortlist} classes per query matched against up to "
                     f"{ecfg.local_match.photos_per_class} photos each, {local_res['photos']} photos, "
                     f"{local_res['feature_seconds'] + local_res['match_seconds']:.0f} s")
        trials.append(TrialArtifacts(LOCAL_NAME, local_dir, local_res))
    if not trials:
        raise DataError("no finished trial to blend.", file=run_dir / "trials",
                        fix="train at least one model (whaleflow tune) before the ensemble.")
    return trials, notes
