"""``matches.html``: a person reviews every match and exports the decisions ``enroll`` reads.

Self-contained like the run report (thumbnails inline, no network, no server). Each photo —
or, with encounters, each encounter's photos together — sits beside its five candidates
(for each, the gallery photo most like it) with their scores, the least certain first:
the smallest ``p_correct`` when the run is calibrated, else the smallest ``margin`` (the
best score's distance to the new-individual threshold or its lead over the runner-up,
whichever is smaller). Rows accepted by ``--auto-accept-fmr`` are not shown. Per card a
person accepts one candidate, marks it as a new individual with a name, or skips it;
"Export decisions" writes ``decisions.csv`` (``image,path,decision,id``; decision =
accept | new | skip; one row per photo, with an ``encounter`` column when grouped, so an
encounter's decision covers all its photos) through the browser's download and also
shows it in the page, for copying.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..io import write_text
from ..labels import NEW_WHALE
from ..report.gallery import thumbnail_uri
from ..report.html import CSS, esc, note
from .encounter_matches import SEP
from .gallery_pixels import GalleryPixels

PAGE_CSS = """
.qrow { padding:12px 0; border-bottom:1px dashed var(--line); }
.qrow.decided { background:#f3faf5; } .qrow.skipped { background:#f6f6f6; opacity:.75; }
.qhead { font-size:13px; color:var(--muted); margin-bottom:6px; } .qhead b { color:var(--ink); }
.tile button { margin-top:4px; width:100%; font-size:12px; cursor:pointer; }
.tile.chosen { border-color:var(--good); background:#eaf6ef; }
.controls { margin-top:8px; display:flex; gap:8px; align-items:center; flex-wrap:wrap; font-size:13px; }
.controls input { font-size:13px; padding:2px 6px; width:180px; }
.status { font-weight:600; color:var(--accent); }
.toolbar { position:sticky; top:0; z-index:5; background:#fff; border-bottom:1px solid var(--line);
           padding:8px 32px; display:flex; gap:14px; align-items:center; font-size:14px; }
.toolbar button { font-size:14px; cursor:pointer; }
textarea#decisions-csv { width:100%; height:140px; font-family:ui-monospace, Menlo, Consolas, monospace; font-size:12px; }
.badge.enr { background:#6b5bd2; }
"""

SCRIPT = r"""
(function () {
  var decisions = {};
  function rowOf(el) { while (el && !el.classList.contains('qrow')) { el = el.parentNode; } return el; }
  function show(row) {
    var d = decisions[row.dataset.image];
    row.classList.toggle('decided', !!d && d.decision !== 'skip');
    row.classList.toggle('skipped', !!d && d.decision === 'skip');
    Array.prototype.forEach.call(row.querySelectorAll('.tile.cand'), function (t) {
      t.classList.toggle('chosen', !!d && d.decision === 'accept' && t.dataset.id === d.id);
    });
    row.querySelector('.status').textContent = !d ? 'undecided' :
      d.decision === 'accept' ? 'accepted ' + d.id : d.decision === 'new' ? 'new individual ' + d.id : 'skipped';
    document.getElementById('count').textContent = Object.keys(decisions).length;
  }
  function decide(row, decision, id) {
    decisions[row.dataset.image] = {decision: decision, id: id || ''};
    show(row);
  }
  document.addEventListener('click', function (ev) {
    var b = ev.target;
    if (!b.dataset || !b.dataset.act) { return; }
    var row = rowOf(b);
    if (b.dataset.act === 'accept') { decide(row, 'accept', b.dataset.id); }
    else if (b.dataset.act === 'skip') { decide(row, 'skip', ''); }
    else if (b.dataset.act === 'new') {
      var name = row.querySelector('input.newname').value.trim();
      if (!name) { row.querySelector('.status').textContent = 'type a name for the new individual first'; return; }
      decide(row, 'new', name);
    } else if (b.dataset.act === 'undo') { delete decisions[row.dataset.image]; show(row); }
  });
  function field(v) { v = String(v); return /[",\n\r]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
  var byEncounter = document.body.dataset.encounters === '1';
  window.whaleflowDecisionsCsv = function () {
    var lines = [byEncounter ? 'image,path,decision,id,encounter' : 'image,path,decision,id'];
    Array.prototype.forEach.call(document.querySelectorAll('.qrow'), function (row) {
      var d = decisions[row.dataset.image];
      if (!d) { return; }
      // an encounter's decision is every one of its photos' decision
      var images = JSON.parse(row.dataset.images), paths = JSON.parse(row.dataset.paths);
      images.forEach(function (im, i) {
        var cells = [im, paths[i], d.decision, d.id];
        if (byEncounter) { cells.push(row.dataset.image); }
        lines.push(cells.map(field).join(','));
      });
    });
    return lines.join('\n') + '\n';
  };
  document.getElementById('export').addEventListener('click', function () {
    var csv = window.whaleflowDecisionsCsv();
    document.getElementById('decisions-csv').value = csv;
    try {
      var a = document.createElement('a');
      a.href = URL.createObjectURL(new Blob([csv], {type: 'text/csv'}));
      a.download = 'decisions.csv';
      document.body.appendChild(a); a.click(); a.remove();
    } catch (e) { /* the text box still holds the CSV */ }
  });
})();
"""


def _uri(pixels: np.ndarray | None) -> str | None:
    return None if pixels is None else thumbnail_uri(Image.fromarray(np.asarray(pixels)))


def _tile(label: str, uri: str | None, caption: str, *, cls: str = "", button: str = "", extra: str = "") -> str:
    img = f'<img src="{uri}" alt="{esc(label)}">' if uri else '<div class="ph missing">no photo</div>'
    return (f'<div class="tile {cls}" data-id="{esc(label)}">{img}<div class="lab" title="{esc(label)}">{esc(label)}'
            f'</div><div class="cap">{caption}</div>{extra}{button}</div>')


def _row(rec: dict, query_uris: list, gallery: GalleryPixels, enrolled: set, threshold: float) -> str:
    """One card: a photo (or an encounter's photos) beside its five candidates."""
    import json

    labels, scores = rec["predictions"].split(), [float(s) for s in rec["scores"].split()]
    closest = [rec.get(f"closest_{k}", "") for k in range(1, 6)]
    encounter = "encounter" in rec
    key = rec["encounter"] if encounter else rec["image"]
    images = rec["images"].split(SEP) if encounter else [rec["image"]]
    paths = rec["paths"].split(SEP) if encounter else [rec["path"]]
    tiles = [_tile(im, uri, "photo", cls="query") for im, uri in zip(images, query_uris)]
    for rank, (lab, score, near) in enumerate(zip(labels, scores, closest), start=1):
        if lab == NEW_WHALE:
            what = f"p {score:.3f}" if encounter else f"best match below threshold {threshold:.3f}"
            tiles.append(f'<div class="tile"><div class="ph newwhale"><span>new?</span><small>{what}</small></div>'
                         f'<div class="lab">{NEW_WHALE}</div><div class="cap">#{rank}</div></div>')
            continue
        badge = ' <span class="badge enr">enrolled</span>' if lab in enrolled else ""
        tiles.append(_tile(lab, _uri(gallery.get(near)) if near else None,
                           f"#{rank} · {score:.3f}{badge}", cls="cand",
                           button=f'<button data-act="accept" data-id="{esc(lab)}">accept</button>'))
    p = rec.get("p_correct")
    sure = f" · p(top right) {float(p):.3f}" if p is not None and p == p else ""
    head = (f'<b>{esc(key)}</b>' + (f" · {len(images)} photo(s)" if encounter else "")
            + f' · margin {float(rec["margin"]):.3f}{sure}'
            + (" · <b>new individual?</b>" if rec["new_individual"] else "")
            + (" · near-duplicate of a gallery photo" if rec.get("near_duplicate") else ""))
    controls = ('<div class="controls"><span class="status">undecided</span>'
                '<input class="newname" placeholder="name of a new individual">'
                '<button data-act="new">mark new</button><button data-act="skip">skip</button>'
                '<button data-act="undo">undo</button></div>')
    return (f'<div class="qrow" data-image="{esc(key)}" data-images="{esc(json.dumps(images))}" '
            f'data-paths="{esc(json.dumps(paths))}">'
            f'<div class="qhead">{head}</div><div class="gtiles">{"".join(tiles)}</div>{controls}</div>')


def review_order(units) -> np.ndarray:
    """Rows to review, least certain first: by p_correct when the run is calibrated (rows
    without one first), else by margin; auto-accepted rows are left out."""
    if not len(units):
        return np.zeros(0, np.int64)
    keep = ~units["auto_accepted"].to_numpy(bool) if "auto_accepted" in units else np.ones(len(units), bool)
    p = units["p_correct"].to_numpy(float) if "p_correct" in units else np.full(len(units), np.nan)
    key = np.where(np.isnan(p), -1.0, p) if not np.isnan(p).all() else units["margin"].to_numpy(float)
    order = np.argsort(key, kind="stable")
    return order[keep[order]]


def fallback_note(run) -> str:
    """What the page says about individuals a family was not trained on."""
    parts = []
    if run.classifier is not None:
        parts.append("the classifier on embeddings scores only the individuals it was trained on; for an "
                     "individual enrolled later the blend uses the other models (their k-NN galleries and "
                     "centroids), with their weights renormalised, and ranks it among the trained "
                     "individuals where that evidence alone would rank it")
    heads = sorted({f.family for f in run.families if getattr(f.task, "CLOSED_SET_HEAD", False)})
    if heads:
        parts.append(f"the {' and '.join(heads)} head likewise knows only its training individuals: enrolled "
                     "ones are scored by its k-NN part alone, ranked the same way")
    return ("Enrolled individuals: " + "; ".join(parts) + ".") if parts else ""


def write_page(run, matches, path: str | Path) -> Path:
    """Write the review page for ``matches`` (see the module docstring)."""
    units = matches.units
    by_encounter = matches.encounters is not None
    row_of = {im: i for i, im in enumerate(matches.frame["image"])}

    def uris(rec: dict) -> list:
        images = rec["images"].split(SEP) if by_encounter else [rec["image"]]
        return [_uri(matches.pixels[row_of[im]]) if matches.pixels is not None else None for im in images]

    order = review_order(units)
    gallery = GalleryPixels(run)
    enrolled = set(run.enrolled.ids.tolist())
    recs = [units.iloc[i].to_dict() for i in order]
    rows = [_row(rec, uris(rec), gallery, enrolled, run.threshold) for rec in recs]
    notes = [note(esc(n)) for n in matches.notes]
    if "auto_accepted" in units:
        notes.append(note(esc(f"{int(units['auto_accepted'].sum())} of {len(units)} "
                              f"{'encounters' if by_encounter else 'photos'} were accepted automatically "
                              f"({matches.decisions_csv.name if matches.decisions_csv else 'auto decisions'}); "
                              "this page holds the rest."), info=True))
    fb = fallback_note(run)
    if fb:
        notes.append(note(esc(fb), info=True))
    what = f"{len(units)} encounter(s) of {len(matches.frame)} photo(s)" if by_encounter else f"{len(units)} photo(s)"
    lead = (f"{what} against {len(set(run.families[0].gallery.ids))} individuals of "
            f"{esc(run.run_dir)}; least certain first. Accept a candidate, mark a new individual with a name, "
            "or skip; then export the decisions for <code>whaleflow enroll RUN_DIR decisions.csv</code>.")
    body = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>whaleflow matches</title>"
            f"<style>{CSS}{PAGE_CSS}</style></head><body data-encounters=\"{int(by_encounter)}\"><header><h1>whaleflow matches</h1>"
            f"<div class=\"meta\">{lead}</div></header>"
            '<div class="toolbar"><button id="export">Export decisions (decisions.csv)</button>'
            '<span><span id="count">0</span> decided</span></div>'
            f"<main><section>{''.join(notes)}{''.join(rows)}</section>"
            '<section><h2>decisions.csv</h2><textarea id="decisions-csv" readonly></textarea></section></main>'
            f"<script>{SCRIPT}</script></body></html>\n")
    return write_text(path, body)
