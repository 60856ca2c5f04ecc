"""The report's "Gallery sizes" section: MAP@5 by how many photos of the individual the gallery holds.

A query whose individual has one photo in the gallery is a different problem from one
with twenty, and most real individuals have one or two. This section shows, for each model
and the ensemble, validation MAP@5 per gallery-size bin (the ensemble's from the outer folds
that chose nothing), test MAP@5 per bin when the data came with answers, and the table
behind the expected range: each plausible test mix, its shares of the bins and its
estimate (:mod:`whaleflow.ensemble.estimate_range`).
"""
from __future__ import annotations

from .artifacts import RunArtifacts
from .html import esc, note, section, table

BINS = ("1", "2", "3-4", "5-8", "9+", "new")
MIX_TEXT = {"proportional": "queries ∝ photos per individual",
            "per_individual": "one query per known individual",
            "implied": "the mix whose validation puts new first as often as the test did"}


def _cells(bins: dict | None) -> list[str]:
    bins = bins or {}
    return [f"{bins[b]['map5']:.3f} <span class=\"muted\">({bins[b]['n']})</span>" if b in bins else "–"
            for b in BINS]


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def bins_section(art: RunArtifacts) -> str:
    ens = art.ensemble_block()
    estimate = ens.get("estimate") or art.summary.get("estimate") or {}
    models = art.summary.get("models") or art.ensemble_summary.get("models") or {}
    parts = []
    mixes = estimate.get("mixes") or {}
    if mixes:
        rows = [[esc(name), esc(MIX_TEXT.get(name, "")),
                 ", ".join(f"{k}: {100 * v:.0f} %" for k, v in m["shares"].items()),
                 f"{100 * m['new_share']:.0f} %", _pct(m.get("new_first")), f"{m['map5']:.3f} ± {m['se']:.3f}"]
                for name, m in mixes.items()]
        lam = (f"mixes with λ {estimate['lambda_low']:.2f}–{estimate['lambda_high']:.2f}, lowest − its error … "
               "highest + its error" if "lambda_low" in estimate else "lowest − its error … highest + its error")
        rows.append(["<b>range</b>", esc(lam), "", "", _pct(estimate.get("test_new_first")) + " (test)",
                     f"<b>{estimate['low']:.3f} – {estimate['high']:.3f}</b>"])
        parts.append("<h3>Expected test MAP@5 by test mix</h3>"
                     + table(["mix", "assumption", "known queries by gallery size", "new", "new first", "MAP@5"],
                             rows, numeric=[4, 5]))
    val_rows = [[f"<b>{esc(name)}</b>", *_cells(info.get("val_map5_by_bin"))]
                for name, info in models.items() if isinstance(info, dict) and info.get("val_map5_by_bin")]
    if estimate.get("bins"):
        val_rows.append(["<b>ensemble</b> (outer folds)", *_cells(estimate["bins"])])
    if val_rows:
        parts.append("<h3>Validation MAP@5 per gallery size</h3>"
                     + table(["model", *BINS], val_rows, numeric=list(range(1, len(BINS) + 1))))
    test_bins = art.summary.get("test_map5_by_bin") or {}
    if test_bins:
        rows = [[f"<b>{esc(name)}</b>", *_cells(b)] for name, b in test_bins.items()]
        parts.append("<h3>Test MAP@5 per gallery size</h3>"
                     + table(["model", *BINS], rows, numeric=list(range(1, len(BINS) + 1))))
    if not parts:
        return section("bins", "Gallery sizes", note("No per-gallery-size figures in this run's summary "
                                                     "(runs from before they existed, or no ensemble yet)."))
    lead = ("MAP@5 by how many photos of the query's individual the gallery holds (queries in brackets; "
            "<i>new</i>: individuals absent from it). Most real individuals have one or two photos: the "
            "expected test MAP@5 is stated as a range over the test mixes below: λ·(queries ∝ photos) + "
            "(1 − λ)·(one query per individual), for every λ whose validation puts the new individual first "
            "about as often as the test predictions did (within one standard error).")
    return section("bins", "Gallery sizes", "".join(parts), lead)
