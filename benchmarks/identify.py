"""Photos/s of ``whaleflow identify`` on CPU, against the bare forward passes it cannot avoid.

On a finished run (the demo run by default: ``make demo`` writes ``runs/demo``) it identifies
the run's own test photos (and checks the top 5 equal ``submission.csv``), timing:

(a) the baseline: every family's network over the already prepared pixels, with flip TTA
    (what any identification must compute at least);
(b) ``identify`` end to end: decode, crop, grey, letterbox, (a), scoring against the
    gallery, the classifier, the blend, near-duplicate hashing, ``matches.csv`` and the
    review page.

Loading the run (models, galleries) is timed apart: it is paid once per session. Both
run in this process with ``--threads`` torch threads; (a) and (b) alternate for
``--rounds`` rounds and the best round of each counts, so other processes on a shared
machine disturb the ratio less.

    .venv/bin/python benchmarks/identify.py [RUN_DIR] [--rounds 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from whaleflow.identify import identify, load_run  # noqa: E402
from whaleflow.identify.photos import open_boxes, prepare_photos  # noqa: E402
from whaleflow.submission import read_submission  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", default="runs/demo")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir)
    t0 = time.perf_counter()
    run = load_run(run_dir, device="cpu")
    load_s = time.perf_counter() - t0
    idx = run.photos
    paths = idx.loc[idx["split"] == "test", "path"].tolist()
    boxes = None
    if run.cfg.data.boxes:
        b = Path(run.cfg.data.boxes)
        boxes = b if b.is_file() else Path(run.cfg.data.root) / b
    pixels = prepare_photos([Path(p) for p in paths], size=run.size, boxes=open_boxes(boxes),
                            box_margin=run.cfg.data.box_margin, grayscale=run.cfg.prepare.grayscale).pixels
    best_a = best_b = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            t = time.perf_counter()
            for fam in run.families:
                fam.vectors(pixels)
            best_a = min(best_a, time.perf_counter() - t)
            t = time.perf_counter()
            m = identify(run, paths, out=Path(tmp) / "matches.csv", boxes=boxes)
            best_b = min(best_b, time.perf_counter() - t)
    sub = read_submission(run_dir / "submission.csv")
    same = sum(m.top5()[im] == sub[im] for im in m.top5())
    n = len(paths)
    out = {
        "run": str(run_dir), "photos": n, "families": [f.name for f in run.families], "threads": args.threads,
        "load_run_s": round(load_s, 2),
        "forward_only_photos_per_s": round(n / best_a, 1),
        "identify_photos_per_s": round(n / best_b, 1),
        "identify_over_forward_time": round(best_b / best_a, 2),
        "top5_equal_to_submission": f"{same}/{len(m.top5())}",
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
