"""The report's sections as HTML, each from :class:`RunArtifacts` and its rendered figures.

Each function takes the loaded run and a ``figs`` mapping (figure key → image ``src``,
absent when the figure could not be drawn) and returns one ``<section>``; when its
input is missing it says so in a note instead of failing, so a half-finished run still
gets a useful page.
"""
from __future__ import annotations

import pandas as pd

from ..ensemble.gallery_mix import mix_text
from ..labels import NEW_WHALE
from .artifacts import RunArtifacts
from .figures import ENSEMBLE_COLOR, model_colors
from .html import card, esc, figure, fmt, map_bar, note, notes_list, section, seconds, table


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "–"


def headline_cards(art: RunArtifacts) -> str:
    """The numbers a person looks for first: ensemble and test MAP@5, best model, misses."""
    rows = [r for r in art.model_rows() if r["val_map5"] is not None]
    ens, cards = art.ensemble_val_map5(), []
    best = max(rows, key=lambda r: r["val_map5"]) if rows else None
    if ens is not None:
        sub = (f"best single model {esc(best['name'])}: {best['val_map5']:.3f} ({ens - best['val_map5']:+.3f})"
               if best else "")
        cards.append(card("Ensemble · validation MAP@5", f"{ens:.3f}", sub, "good"))
    elif best:
        cards.append(card("Best model · validation MAP@5", f"{best['val_map5']:.3f}", esc(best["name"]), "warn"))
    expected = art.summary.get("expected_test_map5", art.ensemble_block().get("expected_test_map5"))
    if expected is not None:
        spread = art.summary.get("expected_test_map5_std", art.ensemble_block().get("expected_test_map5_std"))
        low = art.summary.get("expected_test_map5_low", art.ensemble_block().get("expected_test_map5_low"))
        high = art.summary.get("expected_test_map5_high", art.ensemble_block().get("expected_test_map5_high"))
        cards.append(card("Expected test MAP@5", f"{low:.3f} – {high:.3f}" if low is not None else f"{expected:.3f}",
                          ("over the plausible test mixes (see Gallery sizes); " if low is not None else
                           (f"± {spread:.3f} over outer folds; " if spread is not None else ""))
                          + "measured on validation images that chose nothing", "good"))
    test, base = art.summary.get("test_map5"), art.summary.get("test_map5_frequency_baseline")
    if test is not None:
        sub = f"frequency baseline {base:.3f} ({test - base:+.3f})" if base is not None else "scored on answers.csv"
        cards.append(card("Test MAP@5", f"{test:.3f}", sub, "good" if base is None or test > base else "bad"))
    weights = art.blend_weights()
    if weights:
        total = sum(max(0.0, w) for w in weights.values()) or 1.0
        top = sorted(weights.items(), key=lambda kv: -kv[1])[:3]
        cards.append(card("Models blended", str(len(weights)),
                          ", ".join(f"{esc(n)} {100 * max(0.0, w) / total:.0f} %" for n, w in top)))
    vp = art.val_predictions
    if vp is not None and len(vp):
        miss = int((vp["hit_position"] == 0).sum())
        cards.append(card("Validation misses", f"{miss} / {len(vp)}",
                          f"{_pct(miss, len(vp))} with the truth outside the top-5", "bad" if miss else "good"))
    if not cards:
        cards.append(card("Run", "no results yet", "no model finished; see the notes below", "warn"))
    return "".join(cards)


def models_section(art: RunArtifacts, figs: dict[str, str]) -> str:
    rows = art.model_rows()
    if not rows:
        return section("models", "Models", note("No model has finished: nothing to compare yet."))
    colors = model_colors([r["name"] for r in rows])
    ens, test = art.ensemble_val_map5(), art.summary.get("test_map5")
    base = art.summary.get("test_map5_frequency_baseline")
    top = max([r["val_map5"] or 0 for r in rows] + [ens or 0, test or 0, base or 0]) or 1.0
    wsum = sum(max(0.0, r["weight"] or 0.0) for r in rows) or 1.0
    body_rows, classes = [], []
    for r in rows:
        epochs = f"{r['best_epoch'] + 1} of {r['epochs']}" if r["best_epoch"] is not None and r["epochs"] else "–"
        status = "" if r["finished"] else ' <span class="badge b-miss">unfinished</span>'
        body_rows.append([f"<b>{esc(r['name'])}</b>{status}", esc(r["family"]), esc(r["backbone"]),
                          map_bar(r["val_map5"], top, colors[r["name"]]), "–",
                          f"{100 * max(0.0, r['weight']) / wsum:.0f} %" if r["weight"] is not None else "–",
                          epochs, seconds(r["seconds"])])
        classes.append("")
    if ens is not None:
        body_rows.append(["<b>ensemble</b>", "blend", f"{len(art.blend_weights())} models",
                          map_bar(ens, top, ENSEMBLE_COLOR), map_bar(test, top, "#2e8b57") if test is not None
                          else "–", "100 %", "–", seconds((art.summary.get("timings") or {}).get("ensemble_s"))])
        classes.append("ens")
    if base is not None:
        body_rows.append(["frequency baseline", "new_whale + 4 most frequent", "", "–",
                          map_bar(base, top, "#9a9a9a"), "–", "–", "–"])
        classes.append("base")
    headers = ["Model", "Family", "Backbone", "Validation MAP@5", "Test MAP@5", "Blend weight", "Best epoch",
               "Training time"]
    if test is None and base is None:
        headers.pop(4)
        body_rows = [r[:4] + r[5:] for r in body_rows]
    parts = [table(headers, body_rows, row_classes=classes)]
    if "scores" in figs:
        parts.append(figure(figs["scores"], "MAP@5 per model", width=800))
    parts += [note(f"<b>{esc(t.name)}</b>: " + esc("; ".join(t.notes))) for t in art.trials
              if t.notes and not t.finished]
    lead = ("Validation MAP@5 on the leak-free validation set, each model with its own tuned new_whale "
            "threshold; the ensemble blends them.")
    lead += (" Test MAP@5 scores the submission against the data's answers." if test is not None
             else " The data has no answers for its test images, so there is no test score.")
    return section("models", "Models", "".join(parts), lead)


def ensemble_section(art: RunArtifacts, figs: dict[str, str]) -> str:
    weights, thr = art.blend_weights(), art.ensemble_threshold()
    if not weights and "threshold" not in figs:
        return section("ensemble", "Ensemble", note("The ensemble has not run: no ensemble/weights.json."))
    parts = []
    if weights:
        name, w = max(weights.items(), key=lambda kv: kv[1])
        share = w / (sum(max(0.0, v) for v in weights.values()) or 1.0)
        text = f"The blend leans most on <b>{esc(name)}</b> ({100 * share:.0f} % of the weight)."
        if thr is not None:
            text += (f" new_whale is ranked in before the first prediction whose blend score is below "
                     f"<b>{thr:.3g}</b>.")
        cv, n = art.weights.get("cv_map5"), art.weights.get("optuna_trials")
        if cv is not None:
            text += (f" Cross-validated MAP@5 {float(cv):.3f} over {art.weights.get('folds', '?')} folds"
                     + (f", {n} Optuna trials" if n else "") + ".")
        parts.append(f"<p>{text}</p>")
        parts.append(expected_paragraph(art))
    parts.append(rounds_table(art))
    figs_html = [figure(figs[k], alt, cap) for k, alt, cap in (
        ("weights", "blend weights", "Share of each model in the blended class scores."),
        ("threshold", "threshold curve", "Validation MAP@5 of the blend for each new_whale threshold; "
                                         "the green point is the threshold the ensemble uses."),
    ) if k in figs]
    parts.append(f'<div class="figs">{"".join(figs_html)}</div>')
    if "threshold" not in figs:
        parts.append(note("No threshold curve (ensemble/threshold_curve.csv missing)."))
    if art.ensemble_notes():
        parts.append("<h3>Notes from the ensemble</h3>" + notes_list(art.ensemble_notes()))
    return section("ensemble", "Ensemble: what it chose", "".join(parts))


def rounds_table(art: RunArtifacts) -> str:
    """Each pseudo-labelling round's labels and its gain on validation (and on test, with answers)."""
    rounds = art.ensemble_block().get("pseudo_rounds") or []
    if len(rounds) < 2:
        return ""

    def gain(v):
        return f"{v:+.4f}" if isinstance(v, (int, float)) else "–"

    rows = [[str(r["round"]), str(r["pseudo_labels"]), fmt(r.get("val_map5")), gain(r.get("val_gain")),
             fmt(r.get("expected_test_map5")), gain(r.get("expected_gain")), fmt(r.get("test_map5"))]
            for r in rounds]
    return ("<h3>Pseudo-labelling rounds</h3>"
            + table(["Round", "Pseudo-labels", "Validation MAP@5", "Gain", "Expected test MAP@5", "Gain",
                     "Test MAP@5"], rows)
            + note("Round 0 is the run itself; each later round retrains every model with the confident test "
                   "predictions of the round before as extra training photos (never a new individual). The "
                   "gains compare the same validation queries; the submission is the last round's; the "
                   "figures above are round 0's (pseudo/round_N/ holds each round's own).", info=True))


def expected_paragraph(art: RunArtifacts) -> str:
    """The expected test MAP@5 from the outer folds, per fold, beside the validation figure."""
    outer = art.ensemble_block().get("outer") or art.ensemble_summary.get("outer") or art.summary.get("outer")
    if not outer:
        return note("No expected test MAP@5: ensemble.outer_folds < 2 or too few validation images.", info=True)
    per = ", ".join(f"{f['map5']:.3f} ({f['images']} images)" for f in outer["folds"])
    val = art.ensemble_val_map5()
    text = (f"<b>Expected test MAP@5 {outer['map5']:.3f} ± {outer['std']:.3f}</b> (standard deviation over "
            f"{outer['n_folds']} outer folds: {per}). Each outer fold was scored with the weights and the "
            "threshold that the same search chose on the other folds, so no image scored took part in a "
            "choice made for it.")
    if val is not None:
        text += (f" The validation MAP@5 of {val:.3f} is in-sample: the weights and the threshold were chosen "
                 "on those very images.")
    mix = art.ensemble_summary.get("test_mix") or art.summary.get("test_mix")
    if mix:
        text += (f" Known-individual queries were weighted to the test set's expected mix of {esc(mix_text(mix))}; "
                 "on four synthetic sets this weighted figure came out 0.02–0.05 below the real test MAP@5 (the "
                 "test predictions come from fits on more photos).")
    else:
        text += " Still optimistic by a little: each model's best epoch was picked on all of validation."
    test = art.summary.get("test_map5")
    if test is not None:
        text += f" The real test MAP@5 of this run is {test:.3f} ({test - outer['map5']:+.3f})."
    return f"<p>{text}</p>"


def curves_section(art: RunArtifacts, figs: dict[str, str]) -> str:
    if not art.trials:
        return section("curves", "Training curves", note("No trial folders."))
    parts = []
    for t in art.trials:
        key = f"curves_{t.name}"
        res = t.result
        facts = []
        if res.get("best_epoch") is not None and res.get("epochs"):
            facts.append(f"best epoch {int(res['best_epoch']) + 1} of {res['epochs']}")
        if res.get("val_map5") is not None:
            facts.append(f"validation MAP@5 {float(res['val_map5']):.4f}")
        if res.get("seconds") is not None:
            facts.append(f"trained in {seconds(res['seconds'])}")
        m = t.metrics
        if m is not None and "mining_seconds" in m and m["mining_seconds"].notna().any():
            src = sorted({str(v) for v in m.get("mining_source", pd.Series(dtype=str)) if str(v)})
            facts.append(f"hard-pair mining{' (' + ', '.join(src) + ')' if src else ''} "
                         f"{m['mining_seconds'].dropna().mean():.2f} s per pass")
        if "sources" in res:
            facts.append("built from " + ", ".join(map(str, res["sources"])))
        head = f"<h3>{esc(t.name)} <small style=\"color:#62707d;font-weight:400\">{esc(t.family)}"
        head += f" · {esc(res.get('backbone', ''))}</small></h3>" if res.get("backbone") else "</small></h3>"
        body = f"<p class=\"lead\">{esc(' · '.join(facts))}</p>" if facts else ""
        if key in figs:
            body += figure(figs[key], f"training curves of {t.name}", width=860)
        elif t.name == "classifier" and t.finished:
            body += note("Trained in one short fit on the other models' embeddings: no per-epoch curves.", info=True)
        else:
            body += note(esc("; ".join(t.notes) or "no metrics.csv: no training curves for this model"))
        parts.append(head + body)
    lead = ("Loss and validation MAP@5 per epoch; shaded bands are the image-size stages of progressive resizing. "
            "For a siamese model that mines, the third panel shows each mining round: the model's mean "
            "probability of \u201csame\u201d for the mined negatives and positives, and the share of mined "
            "negatives it already puts below 0.5 (near 1: mining is too easy; near 0: too hard).")
    return section("curves", "Training curves", "".join(parts), lead)


def failures_section(art: RunArtifacts, figs: dict[str, str], gallery: str, shown: int) -> str:
    vp = art.val_predictions
    if vp is None or not len(vp):
        return section("failures", "Where it fails",
                       note("No ensemble/val_predictions.csv: no per-image validation results to show."))
    pos, is_new = vp["hit_position"], vp["truth"] == NEW_WHALE
    miss = pos == 0
    n = len(vp)
    top5 = vp["top5"].astype(str).str.split()
    first_nw = top5.str[0] == NEW_WHALE
    facts = (f"Of {n} validation images, {int((pos == 1).sum())} ({_pct((pos == 1).sum(), n)}) were found first, "
             f"{int((pos > 1).sum())} later in the top-5, and <b>{int(miss.sum())}</b> missed. Among the misses, "
             f"{int((miss & is_new).sum())} are new individuals ranked behind five known ones (threshold too low "
             f"for them), {int((miss & ~is_new & first_nw).sum())} are known individuals the model called "
             f"new_whale first and then did not find, and {int((miss & ~is_new & ~first_nw).sum())} are known "
             f"individuals confused with others.")
    parts = [f"<p>{facts}</p>"]
    if "hits" in figs:
        parts.append(figure(figs["hits"], "position of the truth", width=700))
    parts.append(f"<h3>Retrieval gallery ({shown} of {n} queries; worst misses first)</h3>"
                 "<p class=\"lead\">Each row: the query photo, the ensemble's top-5 (a training photo of each "
                 "predicted individual; the correct one framed green), then the right answer. Misses are "
                 "ordered by the blend's top-1 score, the most confidently wrong first.</p>")
    parts.append(gallery or note("No gallery rows."))
    return section("failures", "Where it fails", "".join(parts))
