"""identify of a run whose blend verifies local features: the submission's top 5 again."""
from __future__ import annotations

import pandas as pd

from whaleflow.config import load_config
from whaleflow.ensemble.driver import run_ensemble
from whaleflow.identify import identify, load_run
from whaleflow.local.local_trial import LOCAL_NAME
from whaleflow.submission import read_submission


def test_identify_reproduces_a_blend_with_local_matching(run_copy):
    run, data = run_copy
    cfg = load_config(run / "config.yaml", [f"output.dir={run}", "ensemble.local_match.enabled=true",
                                             "ensemble.local_match.shortlist=4", "ensemble.outer_folds=0"])
    summary = run_ensemble(cfg, run, progress=False)
    assert LOCAL_NAME in summary["models"]
    assert (run / "prepared" / "crop_boxes.csv").is_file()  # the boxes the run cropped to, read again
    tr = load_run(run, device="cpu")
    assert LOCAL_NAME in tr.names and tr.local is not None
    paths = pd.read_csv(run / "prepared" / "index.csv", dtype=str, keep_default_na=False)
    paths = paths.loc[paths["split"] == "test", "path"].tolist()
    m = identify(tr, paths, out=None, page=False, boxes=data / "boxes.csv")
    sub = read_submission(run / "submission.csv")
    assert m.top5() == {im: sub[im] for im in m.top5()}
    assert tr.local.feats  # the gallery's keypoints were read: the local model took part
