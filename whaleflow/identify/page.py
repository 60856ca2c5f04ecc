"""``matches.html``: a person reviews every match and exports the decisions ``enroll`` reads.

Self-contained like the run report (thumbnails inline, no network, no server). Each photo
sits beside its five candidates — for each, the gallery photo most like it — with the
blended scores, the least certain decisions first (smallest ``margin`` in matches.csv:
the best score's distance to the new-individual threshold or its lead over the
runner-up, whichever is smaller). Per photo a person accepts one candidate, marks it as
a new individual with a name, or skips it; "Export decisions" writes
``decisions.csv`` (``image,path,decision,id``; decision = accept | new | skip) through the
browser's download and also shows it in the page, for copying.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..io import write_text
from ..labels import NEW_WHALE
from ..report.gallery import thumbnail_uri
from ..report.html import CSS, esc, note

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
    decisions[row.dataset.image] = {decision: decision, id: id || '', path: row.dataset.path};
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
  window.whaleflowDecisionsCsv = function () {
    var lines = ['image,path,decision,id'];
    Array.prototype.forEach.call(document.querySelectorAll('.qrow'), function (row) {
      var d = decisions[row.dataset.image];
      if (d) { lines.push([row.dataset.image, d.path, d.decision, d.id].map(field).join(',')); }
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


class _GalleryPixels:
    """Pixels of a gallery photo by name: the run's image cache, or the enrolled file."""

    def __init__(self, run):
        idx = run.prepared.index
        train = idx[idx["split"] == "train"]
        self.rows = dict(zip(train["image"], train["row"].astype(int)))
        self.images = run.prepared.images
        e = run.enrolled
        self.enrolled = {im: i for i, im in enumerate(e.images)} if len(e) else {}
        self.enrolled_pixels = e.pixels

    def get(self, image: str) -> np.ndarray | None:
        if image in self.enrolled:
            return self.enrolled_pixels[self.enrolled[image]]
        row = self.rows.get(image)
        return None if row is None or row >= len(self.images) else self.images[row]


def _tile(label: str, uri: str | None, caption: str, *, cls: str = "", button: str = "", extra: str = "") -> str:
    img = f'<img src="{uri}" alt="{esc(label)}">' if uri else '<div class="ph missing">no photo</div>'
    return (f'<div class="tile {cls}" data-id="{esc(label)}">{img}<div class="lab" title="{esc(label)}">{esc(label)}'
            f'</div><div class="cap">{caption}</div>{extra}{button}</div>')


def _row(rec: dict, query_uri: str | None, gallery: _GalleryPixels, enrolled: set, threshold: float) -> str:
    labels, scores = rec["predictions"].split(), [float(s) for s in rec["scores"].split()]
    closest = [rec.get(f"closest_{k}", "") for k in range(1, 6)]
    tiles = [_tile(rec["image"], query_uri, "photo", cls="query")]
    for rank, (lab, score, near) in enumerate(zip(labels, scores, closest), start=1):
        if lab == NEW_WHALE:
            tiles.append('<div class="tile"><div class="ph newwhale"><span>new?</span><small>best match below '
                         f'threshold {threshold:.3f}</small></div><div class="lab">{NEW_WHALE}</div>'
                         f'<div class="cap">#{rank}</div></div>')
            continue
        badge = ' <span class="badge enr">enrolled</span>' if lab in enrolled else ""
        tiles.append(_tile(lab, _uri(gallery.get(near)) if near else None,
                           f"#{rank} · {score:.3f}{badge}", cls="cand",
                           button=f'<button data-act="accept" data-id="{esc(lab)}">accept</button>'))
    head = (f'<b>{esc(rec["image"])}</b> · margin {float(rec["margin"]):.3f}'
            + (" · <b>new individual?</b>" if rec["new_individual"] else "")
            + (" · near-duplicate of a gallery photo" if rec.get("near_duplicate") else ""))
    controls = ('<div class="controls"><span class="status">undecided</span>'
                '<input class="newname" placeholder="name of a new individual">'
                '<button data-act="new">mark new</button><button data-act="skip">skip</button>'
                '<button data-act="undo">undo</button></div>')
    return (f'<div class="qrow" data-image="{esc(rec["image"])}" data-path="{esc(rec["path"])}">'
            f'<div class="qhead">{head}</div><div class="gtiles">{"".join(tiles)}</div>{controls}</div>')


def fallback_note(run) -> str:
    """What the page says about individuals a family was not trained on."""
    parts = []
    if run.classifier is not None:
        parts.append("the classifier on embeddings scores only the individuals it was trained on; for an "
                     "individual enrolled later the blend uses the other models (their k-NN galleries and "
                     "centroids), with their weights renormalised, and ranks it among the trained "
                     "individuals where that evidence alone would rank it")
    if any(f.family == "arcface" for f in run.families):
        parts.append("the arcface head likewise knows only its training individuals: enrolled ones are "
                     "scored by its k-NN part alone, ranked the same way")
    return ("Enrolled individuals: " + "; ".join(parts) + ".") if parts else ""


def write_page(run, matches, path: str | Path) -> Path:
    """Write the review page for ``matches`` (see the module docstring)."""
    frame = matches.frame
    order = np.argsort(frame["margin"].to_numpy(float), kind="stable") if len(frame) else []
    gallery = _GalleryPixels(run)
    enrolled = set(run.enrolled.ids.tolist())
    rows = [_row(frame.iloc[i].to_dict(), _uri(matches.pixels[i]) if matches.pixels is not None else None,
                 gallery, enrolled, run.threshold) for i in order]
    notes = [note(esc(n)) for n in matches.notes]
    fb = fallback_note(run)
    if fb:
        notes.append(note(esc(fb), info=True))
    lead = (f"{len(frame)} photo(s) against {len(set(run.families[0].gallery.ids))} individuals of "
            f"{esc(run.run_dir)}; least certain first. Accept a candidate, mark a new individual with a name, "
            "or skip; then export the decisions for <code>whaleflow enroll RUN_DIR decisions.csv</code>.")
    body = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>whaleflow matches</title>"
            f"<style>{CSS}{PAGE_CSS}</style></head><body><header><h1>whaleflow matches</h1>"
            f"<div class=\"meta\">{lead}</div></header>"
            '<div class="toolbar"><button id="export">Export decisions (decisions.csv)</button>'
            '<span><span id="count">0</span> decided</span></div>'
            f"<main><section>{''.join(notes)}{''.join(rows)}</section>"
            '<section><h2>decisions.csv</h2><textarea id="decisions-csv" readonly></textarea></section></main>'
            f"<script>{SCRIPT}</script></body></html>\n")
    return write_text(path, body)
