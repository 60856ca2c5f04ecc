"""Siamese class scoring: the pair head on every gallery photo (Q·G) against each query's shortlist.

At each gallery size (``--classes``, ``--per-class`` photos each) ``--queries`` queries are
scored both ways, in the same run on the same features and head:

* ``full``       the head on every query × gallery pair, per view, then per class (what
                 :meth:`SiameseTask.score_views` does up to ``predict.pair_shortlist`` classes)
* ``shortlist``  :func:`whaleflow.families.pair_shortlist.shortlisted_scores` with ``--m``

Features are class centres plus noise (two flip views) and the head (``--hidden``, the
rehearsal's tiny one by default) prefers close features with a little random weight
elsewhere, so the cosine shortlist is informative but not the head itself. Printed per size:
CPU seconds of each (``time.process_time``, one torch thread: the machine is shared, CPU time
is what counts), their ratio, and how often the shortlisted top 5 is the full top 5 and
contains the full top 1. The last line: ``pair_shortlist: classes C ratio R top5_same S``.

    python benchmarks/pair_shortlist.py --classes 500,1250,2500,5004
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from whaleflow.families.pair_shortlist import shortlisted_scores
from whaleflow.inference import aggregate_by_class
from whaleflow.mining import score_blocks
from whaleflow.models.pair_head import PairHead


def make_head(d: int, hidden: tuple[int, ...]) -> PairHead:
    torch.manual_seed(0)
    h = PairHead(d, hidden=hidden)
    with torch.no_grad():  # the |x−y| block of the first layer pushes every unit towards "far: different"
        h.sym.weight[:, 2 * d:] -= 0.5 / d ** 0.5
        if hidden:
            h.tail[-1].weight.abs_()
    return h.eval()


def make_data(q: int, classes: int, per_class: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d)).astype(np.float32)
    labels = np.repeat(np.arange(classes), per_class)
    q_cls = rng.integers(0, classes, q)
    g = {f: np.maximum(centres[labels] + 0.8 * rng.normal(size=(len(labels), d)), 0).astype(np.float32)
         for f in (False, True)}
    qv = {f: np.maximum(centres[q_cls] + 0.8 * rng.normal(size=(q, d)), 0).astype(np.float32) for f in (False, True)}
    return qv, g, labels


def full_scores(q, g, labels, classes, head) -> np.ndarray:
    """The family's Q·G path: sigmoid of the head per view on every pair, mean of views, max per class."""
    per_view = [np.concatenate([b for _, b in score_blocks(torch.as_tensor(q[f]), torch.as_tensor(g[f]), head,
                                                           block_size=1024, transform=torch.sigmoid)])
                for f in q]
    return aggregate_by_class(np.mean(per_view, axis=0), labels, classes, "max")


def timed(fn):
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", default="500,1250,2500,5004")
    ap.add_argument("--per-class", type=int, default=5, help="gallery photos per class (HWI: about 5)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--dim", type=int, default=160, help="pooled feature width (wf_compactnet: 160)")
    ap.add_argument("--hidden", default="32,16")
    ap.add_argument("--m", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    head = make_head(args.dim, tuple(int(h) for h in args.hidden.split(",") if h))
    print("| classes | gallery photos | full CPU s | shortlist CPU s | ratio | top-5 same | top-1 in top-5 |")
    print("|---|---|---|---|---|---|---|")
    for c in (int(x) for x in args.classes.split(",")):
        q, g, labels = make_data(args.queries, c, args.per_class, args.dim)
        full, t_full = timed(lambda: full_scores(q, g, labels, c, head))
        short, t_short = timed(lambda: shortlisted_scores(q, g, labels, c, head, shortlist=args.m))
        f5, s5 = np.argsort(-full, axis=1)[:, :5], np.argsort(-short, axis=1)[:, :5]
        same = float((f5 == s5).all(axis=1).mean())
        top1 = float((s5 == f5[:, :1]).any(axis=1).mean())
        print(f"| {c:,} | {len(labels):,} | {t_full:.2f} | {t_short:.2f} | {t_full / t_short:.1f} | {same:.3f} | "
              f"{top1:.3f} |", flush=True)
    print(f"pair_shortlist: classes {c} ratio {t_full / t_short:.1f} top5_same {same:.3f}")


if __name__ == "__main__":
    main()
