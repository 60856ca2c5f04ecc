"""The ensemble driver: finished trials → classifier model → tuned blend → submission.

It reads only artifacts from ``RUN_DIR/trials/<name>/`` (class scores and
embeddings), never a network, so it runs anywhere — as the last Ray task of a run or
by hand on a copied run folder. Per model the validation scores fit a normaliser
(:mod:`.normalize`) that is then applied unchanged to the test scores — unless the test
scores come from another fit (the classifier's train+val refit, a model's final fit
under ``train.final_fit``): then that fit's own test scores fit its normaliser, since
a normaliser (and a threshold) only describe the fit they were measured on; the models are
aligned on a common class list and image order (:mod:`.blend`); Optuna picks weights
and the new_whale threshold by cross-validated MAP@5 (:mod:`.tune`), or the threshold
follows ``predict.new_prior`` on each query set (validation, test) by itself.
The submission is written in the data's layout (``prepared/summary.json``).

Written under ``RUN_DIR``: ``submission.csv`` and, in ``ensemble/``, ``weights.json``
(weights, threshold, normalisers), ``threshold_curve.csv`` (threshold, map5 of the
final blend on validation), ``val_predictions.csv`` (per validation image: truth,
top-5, position of the hit; for galleries), ``summary.json`` (the returned dict)
``optuna.db`` (the study, continued by a rerun) and ``calibration.json`` (how likely each
query's top candidate is right; :mod:`whaleflow.identify.run_calibration`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..config import Config
from ..errors import DataError
from ..final_fit import final_test_scores
from ..identify.run_calibration import fit_run_calibration
from ..inference.new_prior import new_first_share, prior_threshold
from ..inference.topk_scores import load_class_scores
from ..io import write_csv, write_json
from ..submission import write_submission
from .blend import blend_matrices
from .classifier_model import CLASSIFIER_NAME, build_classifier_model
from .estimate_range import EstimateEvidence, model_bins, range_note, run_estimate
from .outer import outer_estimate
from .gallery_mix import mix_text, run_gallery_mix
from .score_space import build_space, fit_normalizer, truth_of
from ..local.local_trial import LOCAL_NAME, build_local_trial
from .tune import RankedTopK, tune_blend

__all__ = ["TrialArtifacts", "find_trials", "run_ensemble", "apply_duplicates"]


@dataclass
class TrialArtifacts:
    """A finished trial's folder and its ``result.json``."""

    name: str
    path: Path
    result: dict

    @property
    def family(self) -> str:
        return str(self.result.get("family", "unknown"))


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


def apply_duplicates(labels: Sequence[str], first: Sequence[str], k: int = 5) -> list[str]:
    """``first`` (in order, without repeats or blanks) then the rest of ``labels``, cut to k."""
    out: list[str] = []
    for lab in list(first) + list(labels):
        if lab and lab not in out:
            out.append(lab)
    return out[:k]


def data_layout(run_dir: str | Path) -> str:
    """The layout ``prepare`` found (kaggle, happywhale, individual); kaggle for older folders."""
    path = Path(run_dir) / "prepared" / "summary.json"
    if path.is_file():
        return str(json.loads(path.read_text(encoding="utf-8")).get("layout") or "kaggle")
    return "kaggle"


def _covers(scores, images: np.ndarray) -> bool:
    return set(map(str, images)) <= set(map(str, scores.images))


def run_ensemble(
    cfg: Config,
    run_dir: str | Path,
    *,
    progress: bool = True,
    test_duplicates: Mapping[str, Sequence[str]] | None = None,
    layout: str | None = None,
) -> dict:
    """Blend every finished trial of ``run_dir`` (plus the classifier) and write the submission
    (in ``layout``'s format; by default the one ``prepared/summary.json`` names)."""
    run_dir = Path(run_dir)
    ens_dir = run_dir / "ensemble"
    ecfg = cfg.ensemble
    show = progress and not cfg.output.quiet
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

    # ---- load, check coverage, normalise each model with its own validation statistics
    # (files are dense or top-K; :mod:`.score_space` gives the blend's columns either way)
    vals = [load_class_scores(t.path / "scores_val.npz") for t in trials]
    tests = [load_class_scores(t.path / "scores_test.npz") for t in trials]
    val_images, test_images = np.asarray(vals[0].images).astype(str), np.asarray(tests[0].images).astype(str)
    keep = []
    for i, t in enumerate(trials):
        if _covers(vals[i], val_images) and _covers(tests[i], test_images) and len(vals[i].classes):
            keep.append(i)
        else:
            notes.append(f"trial {t.name}: does not score the same validation/test images as {trials[0].name}, left out")
    if not keep:
        raise DataError("no trial has usable class scores.", file=run_dir / "trials")
    trials, vals, tests = [trials[i] for i in keep], [vals[i] for i in keep], [tests[i] for i in keep]
    if vals[0].truth is None:
        raise DataError("validation scores carry no truth labels.", file=trials[0].path / "scores_val.npz")
    refit = {CLASSIFIER_NAME}  # models whose test scores come from another fit than their validation scores
    if cfg.train.final_fit:
        for i, t in enumerate(trials):
            if t.name == LOCAL_NAME:
                continue  # verified against every labelled photo already: nothing to refit
            path = final_test_scores(run_dir, t.name) if t.name != CLASSIFIER_NAME else None
            if path is None and t.name != CLASSIFIER_NAME:
                notes.append(f"trial {t.name}: no finished final fit; its test scores are the validated trial's")
            elif path is not None:
                final = load_class_scores(path)
                if _covers(final, test_images):
                    tests[i] = final
                    refit.add(t.name)
                else:
                    notes.append(f"trial {t.name}: its final fit does not score every test image; not used")
        used = sorted(refit - {CLASSIFIER_NAME})
        if used:
            notes.append(f"test scores from the final fits (train + val) of {', '.join(used)}")
    # local-feature scores are log counts: never read as probabilities
    norms = {t.name: fit_normalizer(v, logit=False if t.family == "local" else None) for t, v in zip(trials, vals)}
    test_norms = {t.name: fit_normalizer(s, logit=norms[t.name].logit) if t.name in refit and len(s.images)
                  else norms[t.name] for t, s in zip(trials, tests)}
    val_space, mats_val = build_space(vals, [norms[t.name] for t in trials], val_images)
    test_space, mats_test = build_space(tests, [test_norms[t.name] for t in trials], test_images)
    truth = truth_of(vals, val_images)
    del vals, tests  # the per-model files: only the (n, columns) matrices are needed from here
    if val_space.cand is not None:
        notes.append(f"top-K class scores: blended over each query's {val_space.cand.shape[1]} (validation) and "
                     f"{test_space.cand.shape[1]} (test) candidate classes at most")
    truth_idx = val_space.truth_indices(truth)
    val_classes, test_classes = val_space.classes, test_space.classes

    # ---- tune weights and threshold
    fixed, prior = cfg.predict.new_whale_threshold, cfg.predict.new_prior
    if fixed is not None:
        notes.append(f"new_whale threshold fixed at {fixed} by predict.new_whale_threshold "
                     "(on the normalised blend scale); only weights are tuned")
    if prior is not None:
        notes.append(f"new-individual threshold by predict.new_prior: the {100 * prior:.0f} % least confident "
                     "queries of each set (validation, test) get it first; only weights are tuned")
    names = [t.name for t in trials]
    mix = run_gallery_mix(cfg, run_dir, val_images, truth_idx)
    row_w = mix.weights if mix is not None else None
    if mix is not None:
        notes.append(f"expected test MAP@5 with validation queries weighted to the expected test mix of "
                     f"{mix_text(mix.to_dict())}")
    tuning = tune_blend(mats_val, truth_idx, names, trials=ecfg.trials, folds=ecfg.folds, seed=ecfg.seed,
                        storage_path=ens_dir / "optuna.db", fixed_threshold=fixed, prior=prior, progress=show,
                        row_weights=row_w if ecfg.weigh_choice else None, choice=ecfg.choice)
    notes.extend(tuning.notes)
    weights = np.array([tuning.weights[n] for n in names])
    threshold = tuning.threshold
    outer = outer_estimate(mats_val, truth_idx, names, outer_folds=ecfg.outer_folds, trials=ecfg.trials,
                           folds=ecfg.folds, seed=ecfg.seed, fixed_threshold=fixed, prior=prior,
                           row_weights=row_w, weighted_choice=ecfg.weigh_choice, choice=ecfg.choice)
    if outer is not None:
        notes.append(f"expected test MAP@5 {outer.map5:.4f} ± {outer.std:.4f} (std over {len(outer.folds)} outer "
                     f"folds, each scored with the weights and threshold chosen on the others); the in-sample "
                     f"validation MAP@5 of the chosen blend is {tuning.val_map5:.4f}")

    # ---- validation outputs
    blended_val = blend_matrices(mats_val, weights)
    k = min(5, len(val_classes))
    val_pred = val_space.predict_labels(blended_val, threshold, k=k)
    hit = [next((j + 1 for j, lab in enumerate(p) if lab == tr), 0) for p, tr in zip(val_pred, truth)]
    write_csv(ens_dir / "val_predictions.csv", pd.DataFrame({
        "image": val_images, "truth": truth, "top5": [" ".join(p) for p in val_pred], "hit_position": hit,
        "top1_score": blended_val.max(axis=1),
        # each query's weight to the expected test mix (1 for all with test_mix: validation):
        # the pseudo-label precision floor is calibrated with it
        "weight": row_w if row_w is not None else np.ones(len(val_images)),
    }))
    ranked = RankedTopK.from_scores(blended_val, truth_idx)
    lo, hi = float(ranked.values.min()), float(ranked.values.max())
    span = max(hi - lo, 1e-6)
    grid = np.unique(np.r_[np.linspace(lo - 0.05 * span, hi + 0.05 * span, 200), threshold])
    write_csv(ens_dir / "threshold_curve.csv", pd.DataFrame({"threshold": grid, "map5": ranked.curve(grid)}))

    # ---- test predictions and submission
    blended_test = blend_matrices(mats_test, weights)
    test_threshold = prior_threshold(blended_test, prior) if prior is not None else threshold
    test_pred = test_space.predict_labels(blended_test, test_threshold, k=min(5, len(test_classes)))
    top1 = blended_test.max(axis=1) if blended_test.shape[1] else np.zeros(len(test_images), np.float32)
    write_csv(ens_dir / "test_top.csv", pd.DataFrame({  # what pseudo-labelling picks from
        "image": test_images, "label": (top_labels := test_space.top_labels(blended_test)),
        "score": top1, "new_first": top1 < np.float32(test_threshold)}))
    estimate, val_sizes = run_estimate(cfg, run_dir, outer, val_images, truth_idx, top_labels, EstimateEvidence(
        val_top=[p[0] for p in val_pred], val_score=blended_val.max(axis=1), val_ap=ranked.ap_at(threshold),
        threshold=threshold, test_score=top1, test_threshold=test_threshold,
        path=ens_dir / "estimate_inputs.npz"), mix=mix)
    per_bin = (model_bins(mats_val, truth_idx, [tuning.single_threshold[n] for n in names], val_sizes)
               if val_sizes is not None else [None] * len(names))
    if estimate:
        notes.append(range_note(estimate))
    predictions = {im: list(p) for im, p in zip(test_images, test_pred)}
    if cfg.predict.use_duplicates and test_duplicates:
        used = 0
        for im, labels in test_duplicates.items():
            if im in predictions and labels:
                predictions[im] = apply_duplicates(predictions[im], labels)
                used += 1
        notes.append(f"near-duplicates of labelled images put first for {used} test images")
    layout = layout or data_layout(run_dir)
    submission = write_submission(run_dir / "submission.csv", predictions, list(test_images), layout=layout)

    best_single = max(names, key=lambda n: tuning.single_map5[n])
    summary = {
        "models": {
            t.name: {
                "family": t.family,
                "val_map5": tuning.single_map5[t.name],
                "threshold": tuning.single_threshold[t.name],
                "trial_val_map5": t.result.get("val_map5"),
                "weight": tuning.weights[t.name],
                "val_map5_by_bin": bins,
            }
            for t, bins in zip(trials, per_bin)
        },
        "ensemble": {"val_map5": tuning.val_map5, "cv_map5": tuning.cv_map5, "threshold": threshold,
                     "test_threshold": test_threshold,
                     "expected_test_map5": outer.map5 if outer else None,
                     "expected_test_map5_std": outer.std if outer else None},
        "expected_test_map5": outer.map5 if outer else None,
        "expected_test_map5_std": outer.std if outer else None,
        "outer": outer.to_dict() if outer else None,
        "expected_test_map5_low": estimate.get("low"),
        "expected_test_map5_high": estimate.get("high"),
        "estimate": estimate or None,
        "val_map5": tuning.val_map5,
        "best_single": best_single,
        "weights": tuning.weights,
        "threshold": threshold,
        "test_threshold": test_threshold,
        "threshold_rule": "prior" if prior is not None else ("fixed" if fixed is not None else "tuned"),
        "new_prior": prior,
        "val_new_first_share": new_first_share(blended_val, threshold),
        "test_new_first_share": new_first_share(blended_test, test_threshold),
        "val_new_share": float((truth_idx == -1).mean()) if len(truth_idx) else 0.0,
        "test_mix": None if mix is None else mix.to_dict(),
        "layout": layout,
        "optuna_trials": tuning.n_trials,
        "study": tuning.study_name,
        "n_val": int(len(val_images)),
        "n_test": int(len(test_images)),
        "submission": str(submission),
        "notes": notes,
    }
    write_json(ens_dir / "weights.json", {
        "models": names,
        "weights": tuning.weights,
        "threshold": threshold,
        "test_threshold": test_threshold,
        "new_prior": prior,
        "threshold_scale": "normalised blend (see normalizers)",
        "val_map5": tuning.val_map5,
        "cv_map5": tuning.cv_map5,
        "expected_test_map5": outer.map5 if outer else None,
        "expected_test_map5_std": outer.std if outer else None,
        "outer_folds": len(outer.folds) if outer else 0,
        "folds": ecfg.folds,
        "seed": ecfg.seed,
        "study": tuning.study_name,
        "optuna_trials": tuning.n_trials,
        "normalizers": {n: norms[n].to_dict() for n in names},
        "test_normalizers": {n: test_norms[n].to_dict() for n in names},
        "final_fit": sorted(refit - {CLASSIFIER_NAME}),
    })
    write_json(ens_dir / "summary.json", summary)
    fit_run_calibration(run_dir, seed=ecfg.seed)  # p_correct for identify, from this blend's validation
    return summary
