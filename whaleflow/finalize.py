"""The last step of every run, local or Ray: complete the submission, score it against
``answers.csv`` when the data folder has one (synthetic sets do), write the run's
``summary.json`` and report, and print the headline.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from .answered_bins import test_bins
from .config import Config
from .io import write_json
from .labels import NEW_WHALE
from .storage import NOT_MIRRORED, RunStore

__all__ = ["FINAL_OUTPUTS", "complete_submission", "finalize", "frequency_baseline", "print_summary", "write_report"]

#: what finalize writes
FINAL_OUTPUTS = ("summary.json", "submission.csv", "report")


def frequency_baseline(train_ids, test_images) -> dict[str, list[str]]:
    """``new_whale`` + the four most frequent known individuals, for every test image."""
    counts = Counter(i for i in train_ids if i != NEW_WHALE)
    top = [NEW_WHALE] + [c for c, _ in counts.most_common(4)]
    return {img: top for img in test_images}


def complete_submission(run_dir: Path, prepared) -> int:
    """Give test images that were skipped as unreadable a row too (Kaggle needs every one).

    They get the frequency baseline (new_whale + the four most frequent individuals):
    with no pixels, the prior is the best guess. Returns how many rows were added.
    """
    import pandas as pd

    from .submission import read_submission, write_submission

    skipped_path = Path(prepared.dir) / "skipped.csv"
    sub_path = run_dir / "submission.csv"
    if not skipped_path.exists() or not sub_path.exists():
        return 0
    skipped = pd.read_csv(skipped_path, dtype=str, keep_default_na=False)
    missing_imgs = skipped.loc[skipped["split"] == "test", "image"].tolist()
    pred = read_submission(sub_path)
    missing_imgs = [m for m in missing_imgs if m not in pred]
    if not missing_imgs:
        return 0
    idx = prepared.index
    base = frequency_baseline(idx.loc[idx["split"] == "train", "id"].tolist(), missing_imgs)
    pred.update(base)
    write_submission(sub_path, pred, list(pred), layout=getattr(prepared, "layout", "kaggle"))
    return len(missing_imgs)


def finalize(cfg: Config, prepared, ensemble: dict[str, Any], timings: dict[str, float], *, progress: bool = True) -> dict[str, Any]:
    """Score against answers.csv when present, write summary.json, print the headline."""
    from .metrics import map_at_k
    from .submission import read_answers, read_submission

    store = RunStore.for_config(cfg)
    store.pull("submission.csv")  # the ensemble may have run on another node
    run_dir = store.local
    added = complete_submission(run_dir, prepared)
    summary: dict[str, Any] = {
        "run_dir": store.location,
        "data_root": cfg.data.root,
        "data": getattr(prepared, "summary", {}),
        "models": ensemble.get("models", {}),
        "ensemble": {k: v for k, v in ensemble.items() if k != "models"},
        "val_map5": ensemble.get("val_map5"),
        "expected_test_map5": ensemble.get("expected_test_map5"),
        "expected_test_map5_std": ensemble.get("expected_test_map5_std"),
        "expected_test_map5_low": ensemble.get("expected_test_map5_low"),
        "expected_test_map5_high": ensemble.get("expected_test_map5_high"),
        "timings": timings,
        "submission_fallback_images": added,
    }
    answers_path = Path(cfg.data.root) / "answers.csv"
    if answers_path.exists():
        truth = read_answers(answers_path)
        pred = read_submission(run_dir / "submission.csv")
        images = [i for i in truth if i in pred]
        summary["test_map5"] = map_at_k([pred[i] for i in images], [truth[i] for i in images])
        summary["test_map5_by_bin"] = test_bins(run_dir, prepared.index, truth, pred)
        idx = prepared.index
        base = frequency_baseline(idx.loc[idx["split"] == "train", "id"].tolist(), images)
        summary["test_map5_frequency_baseline"] = map_at_k([base[i] for i in images], [truth[i] for i in images])
        from .pseudo_label import round_submission

        for rec in summary["ensemble"].get("pseudo_rounds") or []:  # each round's test MAP@5 too
            path = round_submission(run_dir, rec["round"])
            if path.is_file():
                rp = read_submission(path)
                rec["test_map5"] = map_at_k([rp.get(i, []) for i in images], [truth[i] for i in images])
    write_json(run_dir / "summary.json", summary)
    if store.remote:  # the report reads every trial's curves and the ensemble's files
        store.pull("trials", exclude=NOT_MIRRORED)
        store.pull("ensemble")
    summary["report"] = write_report(run_dir, quiet=cfg.output.quiet or not progress)
    for rel in FINAL_OUTPUTS:
        store.push(rel)
    if store.remote and summary["report"]:
        summary["report"] = store.uri("report/index.html")
    if progress and not cfg.output.quiet:
        print_summary(summary)
    return summary


def write_report(run_dir: Path, *, quiet: bool = True) -> str | None:
    """Build ``report/``; a failing report is reported, never a failed run (the submission stands)."""
    import logging

    from .report import build_report

    try:
        return str(build_report(run_dir, quiet=quiet))
    except Exception as exc:  # the report only reads artifacts; any bug there must not cost the run
        logging.getLogger("whaleflow").warning("could not build the report for %s: %s", run_dir, exc)
        print(f"warning: report not built ({exc}); rerun with `whaleflow report {run_dir}`")
        return None


def print_summary(summary: dict[str, Any]) -> None:
    print(f"\nrun folder: {summary['run_dir']}")
    for name, info in summary.get("models", {}).items():
        val = info.get("val_map5") if isinstance(info, dict) else info
        if val is not None:
            print(f"  {name:<28} validation MAP@5 {val:.4f}")
    if summary.get("val_map5") is not None:
        print(f"  {'ensemble':<28} validation MAP@5 {summary['val_map5']:.4f} (in-sample: it chose the blend)")
    if summary.get("expected_test_map5") is not None:
        print(f"expected test MAP@5 {summary['expected_test_map5']:.4f} ± {summary['expected_test_map5_std']:.4f} "
              "(outer folds of validation that chose nothing)")
    if summary.get("expected_test_map5_low") is not None:
        print(f"expected test MAP@5 range {summary['expected_test_map5_low']:.3f}–"
              f"{summary['expected_test_map5_high']:.3f} over the plausible test mixes (report: per-bin table)")
    if "test_map5" in summary:
        print(f"test MAP@5 {summary['test_map5']:.4f} "
              f"(frequency baseline new_whale + 4 most frequent: {summary['test_map5_frequency_baseline']:.4f})")
    print(f"submission: {summary['run_dir'].rstrip('/')}/submission.csv")
    if summary.get("report"):
        print(f"report: {summary['report']}")
    print(json.dumps({k: round(v, 1) for k, v in summary["timings"].items()}))
