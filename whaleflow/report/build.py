"""``build_report(run_dir)``: every report file of a run, from the run's artifacts only.

Writes ``RUN_DIR/report/``: ``index.html`` (one self-contained page: figures and
gallery thumbnails inlined as base64, so the file alone can be mailed or archived),
the same figures as PNG files beside it, and a copy of the run's ``summary.json``.
It never needs a model or a GPU, so ``whaleflow report RUN_DIR`` can rebuild the page
on any machine that has the run folder, at any stage of the run.
"""
from __future__ import annotations

import base64
import datetime as _dt
import re
import shutil
from pathlib import Path
from typing import Callable, Optional

from ..errors import DataError
from ..io import write_bytes, write_text
from ..progress import progress_bar
from . import figures as F
from .artifacts import RunArtifacts, load_run
from .gallery import ImageSource, gallery_figure, gallery_html, representatives, select_queries
from .html import esc, page
from .bins_section import bins_section
from .calibration_section import calibration_section, reliability_figure
from .data_sections import data_section, run_section
from .sections import curves_section, ensemble_section, failures_section, headline_cards, models_section

REPORT_DIR = "report"


def _safe(name: str) -> str:
    """A file-name-safe form of a trial name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "trial"


def _draw(art: RunArtifacts, rows, source: ImageSource, reps: dict) -> dict[str, Callable]:
    """Figure key → a function drawing it (``None`` when its input is missing)."""
    colors = F.model_colors([r["name"] for r in rows])
    draws: dict[str, Callable] = {
        "scores": lambda: F.scores_figure(rows, art.ensemble_val_map5(), art.summary.get("test_map5"),
                                          art.summary.get("test_map5_frequency_baseline")),
        "weights": lambda: F.weights_figure(art.blend_weights(), [r["name"] for r in rows]),
        "threshold": lambda: F.threshold_figure(art.threshold_curve, art.ensemble_threshold()),
        "hits": lambda: F.hits_figure(art.val_predictions),
        "data": lambda: F.data_figure(art.index),
        "reliability": lambda: reliability_figure(art.run_dir),
        "gallery": lambda: gallery_figure(select_queries(art.val_predictions, misses=10, late=0, hits=0),
                                          source, reps),
    }
    for t in art.trials:
        if t.metrics is not None:
            draws[f"curves_{t.name}"] = (lambda t=t: F.trial_figure(
                t.name, t.metrics, t.result.get("best_epoch"), colors.get(t.name, F.PALETTE[0])))
    return draws


def build_report(run_dir: str | Path, *, max_misses: int = 24, max_late: int = 12, max_hits: int = 6,
                 quiet: bool = True) -> Path:
    """Build ``RUN_DIR/report/`` and return the path of its ``index.html``.

    ``max_misses``, ``max_late`` and ``max_hits`` bound the gallery's rows of each kind
    (misses first). ``quiet=False`` shows a progress bar while figures are drawn.
    Raises :class:`~whaleflow.errors.DataError` when ``run_dir`` is not a folder.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError("run folder not found.", file=run_dir,
                        fix="pass the folder a run wrote (output.dir), e.g. runs/demo.")
    out = run_dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    art = load_run(run_dir)
    rows = art.model_rows()
    source = ImageSource(art.prepared_dir, art.index, art.data)
    reps = representatives(art.index)
    draws = _draw(art, rows, source, reps)

    figs: dict[str, str] = {}
    written: set[str] = set()
    with progress_bar(len(draws) + 1, "building the report", quiet=quiet, unit="figures") as bar:
        for key, draw in draws.items():
            fig = _try(draw, art.notes, key)
            if fig is not None:
                png = F.to_png(fig)
                name = f"curves_{_safe(key[len('curves_'):])}.png" if key.startswith("curves_") else f"{key}.png"
                write_bytes(out / name, png)
                written.add(name)
                figs[key] = "data:image/png;base64," + base64.b64encode(png).decode()
            bar.advance(note=key)
        chosen = select_queries(art.val_predictions, misses=max_misses, late=max_late, hits=max_hits)
        gallery = _try(lambda: gallery_html(chosen, source, reps), art.notes, "gallery") or ""
        bar.advance(note="gallery")
    for stale in out.glob("*.png"):  # figures of an earlier build that this one did not draw
        if stale.name not in written:
            stale.unlink()

    sections = [models_section(art, figs), ensemble_section(art, figs), bins_section(art),
                calibration_section(art.run_dir, figs), curves_section(art, figs),
                failures_section(art, figs, gallery, len(chosen)), data_section(art, figs), run_section(art)]
    nav = [("models", "Models"), ("ensemble", "Ensemble"), ("bins", "Gallery sizes"), ("calibration", "How sure"),
           ("curves", "Training curves"),
           ("failures", "Where it fails"), ("data", "Data"), ("run", "Run & config")]
    built = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    meta = f"{esc(run_dir.resolve())} · built {built}"
    html = page("whaleflow run report", meta, headline_cards(art), nav, sections,
                footer=f"whaleflow · rebuild with <code>whaleflow report {esc(run_dir)}</code>")
    if (run_dir / "summary.json").is_file():
        shutil.copyfile(run_dir / "summary.json", out / "summary.json")
    return write_text(out / "index.html", html)


def _try(fn: Callable, notes: list[str], what: str) -> Optional[object]:
    """Run one drawing step; a failure becomes a note on the page, not a missing report."""
    try:
        return fn()
    except Exception as exc:  # one broken artifact must not cost the whole report
        notes.append(f"{what}: could not be drawn ({type(exc).__name__}: {exc})")
        return None
