"""How a sparse mining round's scoring grows with N: every pair against the cosine shortlist.

``score_candidates`` on random pooled features (N images, N/3 individuals) with the pair
head of a model, at a few sizes, once with ``prefilter=0`` (the head scores all N²/2 pairs)
and once with the shortlist (``--prefilter``, the default 200: the head scores N·m pairs, a
cosine matrix product finds them). Both run in the same process, one after the other, so the
ratio holds on a loaded machine; the growth exponent is the log-log slope between the
largest two sizes. Last line: ``prefilter_scale: n N full_s A prefilter_s B ratio R exp_full E1 exp_prefilter E2``.

    python benchmarks/prefilter_scale.py                      # the rehearsal's siamese_tiny head (160-d, [32, 16])
    python benchmarks/prefilter_scale.py --dim 2048 --hidden 512 128 --sizes 1000 2000 4000
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def one(n: int, dim: int, hidden, k: int, prefilter: int, seed: int = 0) -> float:
    from whaleflow.mining import score_candidates
    from whaleflow.models.pair_head import PairHead

    torch.manual_seed(seed)
    head = PairHead(dim, hidden=tuple(hidden)).eval()
    feats = torch.randn(n, dim).abs()  # pooled ReLU features are ≥ 0
    labels = np.random.default_rng(seed).integers(0, max(2, n // 3), n)
    t = time.perf_counter()
    score_candidates(feats, head, k=k, neg_labels=labels, labels=labels, noise=2.0, prefilter=prefilter)
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000, 8000, 16000])
    ap.add_argument("--dim", type=int, default=160)
    ap.add_argument("--hidden", type=int, nargs="+", default=[32, 16])
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--prefilter", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    print(f"{'N':>7} {'all pairs s':>12} {'prefilter s':>12} {'ratio':>7}")
    for n in args.sizes:
        full = one(n, args.dim, args.hidden, args.k, 0)
        pre = one(n, args.dim, args.hidden, args.k, args.prefilter)
        rows.append((n, full, pre))
        print(f"{n:>7} {full:>12.2f} {pre:>12.2f} {full / pre:>7.2f}", flush=True)
    (n0, f0, p0), (n1, f1, p1) = rows[-2], rows[-1]
    slope = lambda a, b: math.log(b / a) / math.log(n1 / n0)  # noqa: E731
    print(f"prefilter_scale: n {n1} full_s {f1:.2f} prefilter_s {p1:.2f} ratio {f1 / p1:.2f} "
          f"exp_full {slope(f0, f1):.2f} exp_prefilter {slope(p0, p1):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
