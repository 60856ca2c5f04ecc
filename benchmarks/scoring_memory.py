"""Peak memory of a trial's test scoring at HWI size: all queries at once against blocks of queries.

The real ``score_queries_named`` of the arcface and siamese families (their
intermediates are queries × gallery images: k-NN cosines, pair-head scores) scores
7,960 test queries against a 25,361-photo gallery of 5,004 individuals — HWI's test
set against its train + val photos. Vectors are random (what is measured is memory,
not accuracy) and the network is the tiny set's, so only the scoring runs; each
setting runs in a child process whose peak resident memory (``ru_maxrss``) is
reported, with ``SCORE_BLOCK_ELEMS`` at its default (blocks) and at 2^62 (one block:
the code before blocking). Last line: ``scoring_memory: family F one_block_gb X blocks_gb Y``.

    python benchmarks/scoring_memory.py [--family arcface|siamese] [--queries 7960 --gallery 25361]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def child(args) -> None:
    import torch

    import whaleflow.families.scoring_mixin as scoring
    from whaleflow.config import load_config
    from whaleflow.data.synthetic import generate_synthetic
    from whaleflow.pipeline import run_prepare
    from whaleflow.training import build_task

    torch.set_num_threads(1)
    if args.one_block:
        scoring.SCORE_BLOCK_ELEMS = 1 << 62
    with tempfile.TemporaryDirectory() as tmp:
        generate_synthetic(Path(tmp) / "d", individuals=24, seed=1, width=96, height=64)
        cfg = load_config(REPO / "configs/demo.yaml", [
            f"data.root={tmp}/d", f"output.dir={tmp}/r", "output.quiet=true", f"models.0.family={args.family}",
            "models.0.stages=[{size: 32, epochs: 1, lr: 0.002}]"])
        task = build_task(cfg, cfg.models[0], run_prepare(cfg, progress=False))
    task.setup_stage(cfg.models[0].stages[0], fresh=True)
    rng = np.random.default_rng(0)
    dim = task.gallery_vectors(task.splits["train"].rows[:2], False).shape[1]
    n_cls = len(task.classes)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def views(rows):  # rows stand for photos: a random unit vector each, per view
        return {f: torch.nn.functional.normalize(torch.as_tensor(
            np.random.default_rng(int(rows[0]) * 2 + f).standard_normal((len(rows), dim), np.float32)), dim=1).numpy()
            for f in task.views}

    task.row_views = views
    q_rows = np.arange(args.queries) + 10**6
    g_rows = np.arange(args.gallery)
    g_labels = rng.integers(0, n_cls, args.gallery)
    t = time.perf_counter()
    s = task.score_queries_named(q_rows, g_rows, g_labels, np.asarray(task.classes))
    print(json.dumps({"seconds": time.perf_counter() - t, "shape": list(s.shape), "base_bytes": base,
                      "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="arcface", choices=["arcface", "siamese"])
    ap.add_argument("--queries", type=int, default=7960)
    ap.add_argument("--gallery", type=int, default=25361)
    ap.add_argument("--one-block", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    out = {}
    for one in (True, False):
        cmd = [sys.executable, __file__, "--child", "--family", args.family, "--queries", str(args.queries),
               "--gallery", str(args.gallery)] + (["--one-block"] if one else [])
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        out["one_block" if one else "blocks"] = res
        print(f"{'one block' if one else 'blocks':9s}: {res['seconds']:.1f} s, peak {res['peak_bytes'] / 2**30:.2f} GB "
              f"(before scoring {res['base_bytes'] / 2**30:.2f} GB), scores {res['shape']}", flush=True)
    print(f"scoring_memory: family {args.family} one_block_gb {out['one_block']['peak_bytes'] / 2**30:.2f} "
          f"blocks_gb {out['blocks']['peak_bytes'] / 2**30:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
