"""Read a run folder into one object for the report, tolerating whatever is missing.

The report is built from files only (a run copied from a cluster, a run that died
before the ensemble, a run without answers), so every reader here returns ``None``
or an empty frame for an absent or unreadable file and records a note saying what
was missing; the page then shows the note instead of the section's content.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

TRIAL_CLASSIFIER = "classifier"


@dataclass
class Trial:
    """One model's folder under ``trials/``: its result, per-epoch metrics, and notes."""

    name: str
    path: Path
    result: dict = field(default_factory=dict)
    metrics: Optional[pd.DataFrame] = None
    notes: list[str] = field(default_factory=list)

    @property
    def family(self) -> str:
        return str(self.result.get("family", "unknown"))

    @property
    def finished(self) -> bool:
        return bool(self.result)


@dataclass
class RunArtifacts:
    """Everything the report shows, read from ``run_dir``."""

    run_dir: Path
    config_text: Optional[str] = None
    summary: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)          # prepared/summary.json
    index: Optional[pd.DataFrame] = None              # prepared/index.csv
    duplicates: Optional[pd.DataFrame] = None
    leaks: Optional[pd.DataFrame] = None
    conflicts: Optional[pd.DataFrame] = None
    trials: list[Trial] = field(default_factory=list)
    weights: dict = field(default_factory=dict)       # ensemble/weights.json
    ensemble_summary: dict = field(default_factory=dict)
    threshold_curve: Optional[pd.DataFrame] = None    # threshold, map5
    val_predictions: Optional[pd.DataFrame] = None    # image, truth, top5, hit_position, top1_score
    notes: list[str] = field(default_factory=list)

    @property
    def prepared_dir(self) -> Path:
        return self.run_dir / "prepared"

    def model_rows(self) -> list[dict[str, Any]]:
        """One row per model for the score table: name, family, backbone, MAP@5s, weight, epochs, time.

        ``val_map5`` is the ensemble's per-model figure (its own tuned threshold on the
        common validation set) when the ensemble ran, else the trial's own result.
        """
        models = self.summary.get("models") or self.ensemble_summary.get("models") or {}
        weights = self.blend_weights()
        by_name = {t.name: t for t in self.trials}
        names = list(models) + [t.name for t in self.trials if t.name not in models]
        rows = []
        for name in names:
            info = models.get(name) if isinstance(models.get(name), dict) else {}
            trial = by_name.get(name)
            res = trial.result if trial else {}
            val = info.get("val_map5", res.get("val_map5"))
            rows.append({
                "name": name,
                "family": info.get("family") or res.get("family") or "unknown",
                "backbone": res.get("backbone") or ("embeddings + PCA" if name == TRIAL_CLASSIFIER else ""),
                "val_map5": _num(val),
                "trial_val_map5": _num(info.get("trial_val_map5", res.get("val_map5"))),
                "weight": _num(weights.get(name, info.get("weight"))),
                "best_epoch": res.get("best_epoch"),
                "epochs": res.get("epochs"),
                "seconds": _num(res.get("seconds")),
                "finished": bool(res) or bool(info),
            })
        return rows

    def blend_weights(self) -> dict[str, float]:
        w = self.weights.get("weights") or self.ensemble_block().get("weights") or {}
        return {str(k): float(v) for k, v in w.items()}

    def ensemble_block(self) -> dict:
        """The ensemble part of the run summary (``summary.json`` nests it under ``ensemble``)."""
        ens = self.summary.get("ensemble") or {}
        return ens if isinstance(ens, dict) else {}

    def ensemble_val_map5(self) -> Optional[float]:
        for v in (self.summary.get("val_map5"), self.weights.get("val_map5"),
                  self.ensemble_summary.get("val_map5")):
            if _num(v) is not None:
                return _num(v)
        return None

    def ensemble_threshold(self) -> Optional[float]:
        for v in (self.weights.get("threshold"), self.ensemble_block().get("threshold"),
                  self.ensemble_summary.get("threshold")):
            if _num(v) is not None:
                return _num(v)
        return None

    def ensemble_notes(self) -> list[str]:
        notes = self.ensemble_block().get("notes") or self.ensemble_summary.get("notes") or []
        return [str(n) for n in notes]


def _num(v) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def _read_json(path: Path, notes: list[str], what: str) -> dict:
    if not path.is_file():
        notes.append(f"{what}: {path.name} not found")
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        notes.append(f"{what}: {path.name} unreadable ({exc})")
        return {}
    return obj if isinstance(obj, dict) else {}


def _read_csv(path: Path, notes: list[str], what: str, *, required: bool = True, **kwargs) -> Optional[pd.DataFrame]:
    if not path.is_file():
        if required:
            notes.append(f"{what}: {path.name} not found")
        return None
    try:
        return pd.read_csv(path, keep_default_na=False, **kwargs)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        notes.append(f"{what}: {path.name} unreadable ({exc})")
        return None


def _read_metrics(trial: Trial) -> None:
    frame = _read_csv(trial.path / "metrics.csv", trial.notes, "metrics", required=False)
    if frame is None:
        if trial.name != TRIAL_CLASSIFIER:  # the classifier trains in seconds and logs no epochs
            trial.notes.append("no metrics.csv: no training curves for this model")
        return
    for col in frame.columns:
        if col != "mining_source":
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    if not len(frame) or "epoch" not in frame:
        trial.notes.append("metrics.csv holds no epochs")
        return
    trial.metrics = frame.sort_values("epoch").reset_index(drop=True)


def load_run(run_dir: str | Path) -> RunArtifacts:
    """Read every report input of ``run_dir``; absent pieces leave notes, never errors."""
    run_dir = Path(run_dir)
    art = RunArtifacts(run_dir=run_dir)
    notes = art.notes
    cfg = run_dir / "config.yaml"
    art.config_text = cfg.read_text(encoding="utf-8") if cfg.is_file() else None
    if art.config_text is None:
        notes.append("config.yaml not found: the configuration is not shown")
    art.summary = _read_json(run_dir / "summary.json", notes, "run summary")

    pdir = art.prepared_dir
    art.data = _read_json(pdir / "summary.json", [], "data") or dict(art.summary.get("data") or {})
    if not art.data:
        notes.append("no data summary (prepared/summary.json): the data section is empty")
    art.index = _read_csv(pdir / "index.csv", notes, "prepared index", dtype=str)
    art.duplicates = _read_csv(pdir / "duplicates.csv", [], "duplicates", required=False, dtype=str)
    art.leaks = _read_csv(pdir / "leaks.csv", [], "leaks", required=False, dtype=str)
    art.conflicts = _read_csv(pdir / "conflicts.csv", [], "conflicts", required=False, dtype=str)

    tdir = run_dir / "trials"
    if tdir.is_dir():
        for d in sorted(p for p in tdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            trial = Trial(d.name, d)
            trial.result = _read_json(d / "result.json", [], "result")
            if not trial.result:
                trial.notes.append("unfinished: no result.json")
            _read_metrics(trial)
            art.trials.append(trial)
    else:
        notes.append("no trials/ folder: no model was trained")
    # models the ensemble used first (its order), then the rest
    order = list((art.summary.get("models") or {}).keys())
    art.trials.sort(key=lambda t: (order.index(t.name) if t.name in order else len(order), t.name))

    edir = run_dir / "ensemble"
    art.weights = _read_json(edir / "weights.json", notes, "ensemble")
    art.ensemble_summary = _read_json(edir / "summary.json", [], "ensemble")
    art.threshold_curve = _read_csv(edir / "threshold_curve.csv", notes, "ensemble")
    if art.threshold_curve is not None:
        art.threshold_curve = art.threshold_curve.apply(pd.to_numeric, errors="coerce").dropna()
    vp = _read_csv(edir / "val_predictions.csv", notes, "ensemble", dtype=str)
    if vp is not None and {"image", "truth", "top5"} <= set(vp.columns):
        if "hit_position" in vp:
            vp["hit_position"] = pd.to_numeric(vp["hit_position"], errors="coerce").fillna(0).astype(int)
        else:  # derive it: 1-based position of the truth in the top-5, 0 for a miss
            vp["hit_position"] = [next((j + 1 for j, lab in enumerate(str(p).split()) if lab == t), 0)
                                  for p, t in zip(vp["top5"], vp["truth"])]
        if "top1_score" in vp:
            vp["top1_score"] = pd.to_numeric(vp["top1_score"], errors="coerce")
        art.val_predictions = vp
    elif vp is not None:
        notes.append("ensemble: val_predictions.csv lacks image/truth/top5 columns")
    return art
