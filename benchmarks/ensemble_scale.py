"""The ensemble at Happywhale scale: 9 trials × (27,956 test + 7,600 validation queries) × 15,587 classes.

Synthetic trial folders are written to a temporary directory in the top-K format a
trial writes above ``predict.store_topk_above`` classes (top 100 per query: int32
ids, float16 values; :mod:`whaleflow.inference.topk_scores`), never as dense
matrices (one would be 1.7 GB). Each model sees a hidden truth (15,587 individuals,
about a third of the queries new): its true class gets a bump of random strength in
its scores, so the models disagree and blending pays (scores are drawn directly in
top-K form, see :func:`_model_scores`); a third of the models give
sigmoid probabilities, the rest cosine-like scores. Then the real
``whaleflow.ensemble.run_ensemble`` blends them end to end (normalisers, candidate
columns, cross-validated Optuna weights, threshold, submission), in a child process
whose peak resident memory (``ru_maxrss``) is reported; the classifier on embeddings
is off (the trials have no embeddings). Last line:
``ensemble_scale: peak_rss_gb X.X seconds Y``.

    python benchmarks/ensemble_scale.py                  # full scale (~6 GB of free RAM, minutes)
    python benchmarks/ensemble_scale.py --small          # a smoke test in seconds
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _model_scores(rng, truth_idx, n_classes, k, kind, strength):
    """Top-k ids/values of one synthetic model, drawn directly in top-k form (a dense
    queries × classes draw would cost minutes per model): k distinct classes per query
    (a random set, shifted per query), values like the top order statistics of
    ``n_classes`` standard normals, and the true class, when its bump lifts it above the
    k-th value, put in at its rank."""
    n = len(truth_idx)
    base = rng.choice(n_classes, k, replace=False)
    ids = (rng.integers(0, n_classes, n)[:, None] + base[None, :]) % n_classes
    top = np.sqrt(2 * np.log(n_classes))  # where the maximum of n_classes normals lies
    vals = -np.sort(-(top + 0.45 * rng.standard_normal((n, k)) - 0.9 * rng.random((n, k))), axis=1)
    known = np.flatnonzero(truth_idx >= 0)
    t_val = rng.standard_normal(len(known)) + rng.uniform(0, strength, len(known)) + top - 1.0
    lifted = t_val > vals[known, -1]
    rows, tv = known[lifted], t_val[lifted]
    here = ids[rows] == truth_idx[rows][:, None]
    slot = np.where(here.any(1), here.argmax(1), k - 1)  # already kept: move it; else replace the last
    ids[rows, slot], vals[rows, slot] = truth_idx[rows], tv
    order = np.argsort(-vals, axis=1, kind="stable")
    ids, vals = np.take_along_axis(ids, order, 1), np.take_along_axis(vals, order, 1)
    rest = vals[:, -1] - 0.01
    if kind == "prob":
        f = lambda x: 1 / (1 + np.exp(-(1.5 * x - 4)))  # noqa: E731
        return ids.astype(np.int32), f(vals).astype(np.float32), f(rest).astype(np.float32), (0.0, 1.0)
    f = lambda x: np.clip(0.2 + 0.2 * x, -1, 1)  # noqa: E731
    return ids.astype(np.int32), f(vals).astype(np.float32), f(rest).astype(np.float32), (-1.0, 1.0)


def write_trials(run: Path, models: int, n_test: int, n_val: int, n_classes: int, k: int, seed: int = 0) -> None:
    from whaleflow.inference import TopKScores
    from whaleflow.io import write_json

    rng = np.random.default_rng(seed)
    classes = np.array([f"id_{i:05d}" for i in range(n_classes)])
    truth = {}
    for split, n in (("val", n_val), ("test", n_test)):
        t = rng.integers(0, n_classes, n)
        t[rng.random(n) < 0.3] = -1  # new individuals
        truth[split] = t
    images = {s: np.array([f"{s}_{i:06d}.jpg" for i in range(len(t))]) for s, t in truth.items()}
    for m in range(models):
        kind = "prob" if m % 3 == 0 else "cos"
        d = run / "trials" / f"model_{m}"
        d.mkdir(parents=True)
        for split in ("val", "test"):
            ids, vals, rest, rng_v = _model_scores(rng, truth[split], n_classes, k, kind, 2.0 + 0.4 * m)
            t_names = np.where(truth[split] >= 0, classes[np.maximum(truth[split], 0)], "new_whale")
            TopKScores(ids, vals, rest, images[split], classes, t_names if split == "val" else None,
                       rng_v).save(d / f"scores_{split}.npz")
        write_json(d / "result.json", {"name": f"model_{m}", "family": "metric", "val_map5": 0.0, "threshold": None})


def blend(run: str, trials: int) -> dict:
    """Child process: the real ensemble on ``run``; returns its summary and peak RSS."""
    import torch

    from whaleflow.config import ClassifierConfig, Config, EnsembleConfig, OutputConfig
    from whaleflow.ensemble import run_ensemble

    torch.set_num_threads(2)
    cfg = Config(ensemble=EnsembleConfig(trials=trials, classifier=ClassifierConfig(enabled=False)),
                 output=OutputConfig(dir=run, quiet=True))
    t0 = time.perf_counter()
    summary = run_ensemble(cfg, run, progress=False)
    return {"seconds": time.perf_counter() - t0, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "val_map5": summary["val_map5"], "best_single": summary["models"][summary["best_single"]]["val_map5"],
            "notes": summary["notes"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=9)
    ap.add_argument("--test", type=int, default=27_956)
    ap.add_argument("--val", type=int, default=7_600)
    ap.add_argument("--classes", type=int, default=15_587)
    ap.add_argument("--k", type=int, default=100, help="stored classes per query (predict.store_topk)")
    ap.add_argument("--trials", type=int, default=60, help="Optuna blend trials (ensemble.trials)")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(blend(args.child, args.trials)))
        return
    if args.small:
        args.models, args.test, args.val, args.classes, args.k, args.trials = 3, 600, 300, 3000, 20, 6
    with tempfile.TemporaryDirectory(prefix="ensemble_scale_") as tmp:
        t = time.perf_counter()
        write_trials(Path(tmp), args.models, args.test, args.val, args.classes, args.k)
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*.npz"))
        print(f"# {args.models} trials × ({args.test} test + {args.val} val) × {args.classes} classes, top {args.k}: "
              f"{size / 2**20:.0f} MB of score files, written in {time.perf_counter() - t:.0f} s", flush=True)
        env = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
        cmd = [sys.executable, __file__, "--child", tmp, "--trials", str(args.trials)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
        r = json.loads(out.strip().splitlines()[-1])
    print(f"ensemble val MAP@5 {r['val_map5']:.4f} (best single {r['best_single']:.4f}); "
          + "; ".join(n for n in r["notes"] if "candidate" in n))
    print(f"ensemble_scale: peak_rss_gb {r['peak_rss_gb']:.1f} seconds {r['seconds']:.0f}")


if __name__ == "__main__":
    main()
