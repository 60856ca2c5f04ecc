"""The report's "How sure is sure" section: the reliability of the run's calibrated ``p_correct``.

Reads ``ensemble/calibration.json`` (:mod:`whaleflow.identify.run_calibration`): the
held-out (outer-fold) ``p_correct`` of every validation query and whether its top
candidate was right. The figure bins the predictions (10 equal bins) and plots the mean
prediction against the observed share right, with the diagonal a calibrated run would
follow and each bin's count; the table states what ``identify --auto-accept-fmr`` would
have accepted, and its observed false-match rate with a 95 % Wilson interval.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from matplotlib.figure import Figure

from . import figures as F
from .html import figure, note, section, table


def load(run_dir: str | Path):
    from ..identify.run_calibration import CALIBRATION, RunCalibration

    path = Path(run_dir) / CALIBRATION
    if not path.is_file():
        return None
    return RunCalibration.from_dict(json.loads(path.read_text(encoding="utf-8")))


def reliability_figure(run_dir: str | Path) -> Optional[Figure]:
    """Predicted p_correct against the observed share right, per bin (outer folds)."""
    cal = load(run_dir)
    if cal is None or not len(cal.oof_p):
        return None
    bins = cal.reliability(10)
    fig = F._figure(4.6, 4.0)
    ax = fig.add_subplot()
    F._style(ax)
    ax.plot([0, 1], [0, 1], color=F.BASELINE_COLOR, linestyle="--", linewidth=1, label="calibrated")
    x, y = [b["predicted"] for b in bins], [b["observed"] for b in bins]
    ax.plot(x, y, "o-", color=F.ENSEMBLE_COLOR, linewidth=1.6, label="this run (held-out folds)")
    for b in bins:
        ax.annotate(str(b["n"]), (b["predicted"], b["observed"]), textcoords="offset points", xytext=(4, -10),
                    fontsize=7, color=F.NEUTRAL)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("predicted p_correct (bin mean)", fontsize=9)
    ax.set_ylabel("observed share right", fontsize=9)
    ax.set_title("reliability of p_correct", fontsize=11, loc="left")
    ax.legend(fontsize=8, loc="lower right", frameon=False)
    return fig


def _check_rows(check, unit: str) -> list[list[str]]:
    """One table row per rate: what accepting at it did on held-out validation, and whether
    validation backs the rate (:mod:`whaleflow.identify.rate_support`)."""
    rows = []
    for r in (0.005, 0.01, 0.02, 0.05, 0.1):
        c = check(r)
        backs = "yes" if c["supported"] else f"no (needs ≥ {c['needed']} accepted, upper bound ≤ {100 * r:g} %)"
        rows.append([unit, f"{100 * r:g} %", f"{c['accepted']} of {c['queries']} ({100 * c['accepted_share']:.1f} %)",
                     f"{c['false_matches']}", f"{100 * c['observed_fmr']:.2f} %",
                     f"{100 * c['fmr_low']:.2f}–{100 * c['fmr_high']:.2f} %", backs])
    return rows


def _lowest(cal) -> str:
    from ..identify.rate_support import lowest_supported

    parts = [("photo", cal)] + [(f"encounter ({f} fusion)", e) for f, e in (cal.encounters or {}).items()]
    said = []
    for unit, c in parts:
        low = lowest_supported(c.oof_p, c.oof_right)
        said.append(f"{low * 100:g} % per {unit}" if low is not None else f"no rate per {unit}")
    return ("The lowest stated rate its validation supports (enough accepted to see one error at that rate, and "
            "the interval's upper bound under it): " + "; ".join(said) + ". identify accepts nothing at a rate "
            "validation does not support, and says so.")


def calibration_section(run_dir: str | Path, figs: dict[str, str]) -> str:
    cal = load(run_dir)
    if cal is None:
        return section("calibration", "How sure is sure",
                       note("No calibration (ensemble/calibration.json); the next identify fits one."))
    rows = _check_rows(cal.fmr_check, "photo")
    for fusion, enc in (cal.encounters or {}).items():
        rows += _check_rows(enc.fmr_check, f"encounter ({fusion}, {len(enc.oof_p)} on validation)")
    lead = (f"p_correct is the calibrated chance that a photo's top candidate is right (new individual "
            f"included), fitted on validation: temperature {cal.calibration.temperature:.3g}, then isotonic "
            f"steps; an encounter's has steps of its own, fitted on validation encounters. Checked on "
            f"{cal.folds} outer folds, each calibrated on the others. {_lowest(cal)}")
    body = table(["unit", "stated rate", "auto-accepted", "false matches", "observed FMR", "95 % interval",
                  "validation backs it"], rows, numeric=(3,))
    if cal.encounters is None:
        body += note("This calibration.json is format 1 (photos only); the next identify with encounters "
                     "says how to refit it.")
    if "reliability" in figs:
        caption = "Held-out p_correct against the observed share right, in 10 bins (counts beside the points)."
        body = f'<div class="figs">{figure(figs["reliability"], "reliability", caption)}</div>' + body
    return section("calibration", "How sure is sure", body, lead=lead)
