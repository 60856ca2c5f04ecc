"""The new_whale threshold of one validation: the old grid of top-5 passes vs the exact sweep.

At HWI scale (3,000 validation queries × 5,004 known individuals) the validation
after every epoch tunes the new_whale threshold. Three numbers, on one random
matrix with a planted truth (¼ new_whale):

* ``top5 pass``  one ``insert_new_whale`` on the full matrix (the unit of cost)
* ``grid``       ``threshold_curve``: ~161 candidate thresholds, a full pass each (before)
* ``exact``      ``tune_threshold`` now: one top-k pass + a sort of the n·k values

and an exhaustive check: every distinct top-5 value (+ one above the maximum) tried
with ``insert_new_whale`` on the top-5 columns (the same lists as on the full matrix),
whose best MAP@5 the exact sweep must equal. Last line:
``threshold_sweep: exact_vs_top5 X.XX grid_vs_top5 Y.YY exhaustive_match True``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def problem(n: int, c: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, c, size=n)
    truth[rng.random(n) < 0.25] = -1
    scores = rng.standard_normal((n, c), dtype=np.float32)
    known = truth >= 0
    scores[known, truth[known]] += rng.uniform(0, 4, size=known.sum()).astype(np.float32)
    return scores, truth


def best_of(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def run(n: int = 3000, c: int = 5004, repeat: int = 3, exhaustive: bool = True, seed: int = 0) -> dict:
    from whaleflow.inference.topk import _ranked, insert_new_whale, threshold_curve, tune_threshold
    from whaleflow.metrics import map_at_k_indices

    scores, truth = problem(n, c, seed)
    t_pass, _ = best_of(lambda: insert_new_whale(scores, 0.0), repeat)
    t_exact, (thr, value) = best_of(lambda: tune_threshold(scores, truth), repeat)
    t_grid, (ts, vals) = best_of(lambda: threshold_curve(scores, truth), 1)
    out = {"n": n, "classes": c, "top5_s": t_pass, "exact_s": t_exact, "grid_s": t_grid,
           "threshold": thr, "map5": value, "grid_map5": float(vals.max()),
           "exact_vs_top5": t_exact / t_pass, "grid_vs_top5": t_grid / t_pass}
    reproduced = map_at_k_indices(insert_new_whale(scores, thr), truth)
    out["reproduced"] = abs(reproduced - value) < 1e-12
    if exhaustive:
        idx, top = _ranked(scores, 5)
        cands = np.unique(top)
        cands = np.r_[cands, np.nextafter(cands[-1], np.float32(np.inf))]
        # new_whale among the top-5 columns only: the lists equal those on the full matrix
        best = max(map_at_k_indices(np.where(insert_new_whale(top, t) >= 0,
                                             np.take_along_axis(idx, np.maximum(insert_new_whale(top, t), 0), 1), -1),
                                    truth) for t in cands)
        out["exhaustive_map5"] = float(best)
        out["exhaustive_match"] = bool(abs(best - value) < 1e-12 and out["reproduced"])
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--classes", type=int, default=5004)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-exhaustive", action="store_true")
    args = ap.parse_args(argv)
    r = run(args.n, args.classes, args.repeat, not args.no_exhaustive)
    print(f"# threshold sweep at {r['n']} × {r['classes']}")
    print(f"{'method':<12} {'seconds':>8} {'vs top5':>8} {'threshold':>10} {'MAP@5':>8}")
    print(f"{'top5 pass':<12} {r['top5_s']:>8.3f} {1.0:>8.2f}")
    print(f"{'grid (old)':<12} {r['grid_s']:>8.3f} {r['grid_vs_top5']:>8.2f} {'':>10} {r['grid_map5']:>8.4f}")
    print(f"{'exact (new)':<12} {r['exact_s']:>8.3f} {r['exact_vs_top5']:>8.2f} {r['threshold']:>10.4f} {r['map5']:>8.4f}")
    if "exhaustive_map5" in r:
        print(f"{'exhaustive':<12} {'':>8} {'':>8} {'':>10} {r['exhaustive_map5']:>8.4f}")
    print(f"threshold_sweep: exact_vs_top5 {r['exact_vs_top5']:.2f} grid_vs_top5 {r['grid_vs_top5']:.2f} "
          f"exhaustive_match {r.get('exhaustive_match')}")


if __name__ == "__main__":
    main()
