"""The run report: one HTML page (plus PNG figures) a person reads instead of JSON.

``build_report(run_dir)`` reads a run folder's artifacts (config, summaries, trial
metrics, ensemble weights, threshold curve, per-image validation predictions, the
prepared image cache) and writes ``RUN_DIR/report/index.html``: how well each model
did, what the ensemble chose, the training curves, and a gallery of where it fails.

Modules: :mod:`.artifacts` (reading, tolerant of missing files), :mod:`.figures`
(matplotlib charts), :mod:`.gallery` (retrieval gallery), :mod:`.sections` and
:mod:`.html` (the page), :mod:`.build` (putting it together).
"""
from .artifacts import RunArtifacts, Trial, load_run
from .build import build_report
from .gallery import select_queries

__all__ = ["build_report", "load_run", "RunArtifacts", "Trial", "select_queries"]
