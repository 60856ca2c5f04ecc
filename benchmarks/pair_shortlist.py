"""Siamese class scoring: the pair head on every gallery photo (Q·G) against each query's shortlist.

At each gallery size (``--classes``, ``--per-class`` photos each) ``--queries`` queries are
scored both ways, in the same run on the same features and head:

* ``full``       the head on every query × gallery pair, per view, then per class (what
                 :meth:`SiameseTask.score_views` does up to ``predict.pair_shortlist`` classes)
* ``shortlist``  :func:`whaleflow.families.pair_shortlist.shortlisted_scores` with ``--m``

Features are class centres plus noise (two flip views) and the head is the rehearsal's tiny
one (``--hidden``) with random weights: this mode measures cost only, CPU seconds of each
(``time.process_time``, one torch thread: the machine is shared, CPU time is what counts)
and their ratio. The last line: ``pair_shortlist: classes C ratio R``.

``--trial DIR`` (a trained siamese trial: its ``model.pt`` and ``gallery.npz``) checks the
shortlist on a real head instead: every other photo of each individual with two or more
becomes a query against the rest, and per ``--ms`` shortlist size it prints how often the
shortlisted top 5 and top 1 are the full ones and both MAP@5 (a shortlist as large as the
class count is the full scoring).

    python benchmarks/pair_shortlist.py --classes 500,1250,2500,5004
    python benchmarks/pair_shortlist.py --trial runs/demo/trials/siamese_compact --ms 5,10,20,30,50
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
    return PairHead(d, hidden=hidden).eval()


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


def map5(scores: np.ndarray, truth: np.ndarray) -> float:
    hit = np.argsort(-scores, axis=1)[:, :5] == truth[:, None]
    return float((hit / np.arange(1, 6)).sum(axis=1).mean())


def trial_check(trial: str, ms: list[int]) -> None:
    """The shortlist on a trained head and its gallery's pooled features (see the docstring)."""
    payload = torch.load(f"{trial}/model.pt", weights_only=True)
    state = {k[len("head."):]: v for k, v in payload["model"]["model"].items() if k.startswith("head.")}
    head = PairHead(state["diff.weight"].shape[1], hidden=payload["model_config"]["head_layers"])
    head.load_state_dict(state)
    head.eval()
    with np.load(f"{trial}/gallery.npz") as gz:
        views = {f: gz[f"view{int(f)}"] for f in (False, True) if f"view{int(f)}" in gz.files}
        classes, labels = np.unique(gz["ids"], return_inverse=True)
    is_q = np.zeros(len(labels), bool)
    for c in range(len(classes)):
        members = np.flatnonzero(labels == c)
        is_q[members[: len(members) - 1 : 2]] = True  # every other photo; the last stays in the gallery
    q = {f: v[is_q] for f, v in views.items()}
    g = {f: v[~is_q] for f, v in views.items()}
    truth, gl, c = labels[is_q], labels[~is_q], len(classes)
    full = aggregate_by_class(np.mean([np.concatenate([b for _, b in score_blocks(
        torch.as_tensor(q[f]), torch.as_tensor(g[f]), head, transform=torch.sigmoid)]) for f in q], axis=0), gl, c)
    f5 = np.argsort(-full, axis=1)[:, :5]
    print(f"{trial}: {len(truth)} queries, {len(gl)} gallery photos, {c} individuals; full MAP@5 {map5(full, truth):.4f}")
    print("| shortlist M | M / classes | top-5 same | top-1 same | MAP@5 |")
    print("|---|---|---|---|---|")
    for m in ms:
        s = shortlisted_scores(q, g, gl, c, head, shortlist=m)
        s5 = np.argsort(-s, axis=1)[:, :5]
        print(f"| {m} | {m / c:.2f} | {(s5 == f5).all(axis=1).mean():.3f} | {(s5[:, 0] == f5[:, 0]).mean():.3f} | "
              f"{map5(s, truth):.4f} |")


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
    ap.add_argument("--trial", help="a trained siamese trial folder: check the shortlist on its head")
    ap.add_argument("--ms", default="5,10,20,30,50", help="with --trial: shortlist sizes")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.trial:
        trial_check(args.trial, [int(m) for m in args.ms.split(",")])
        return
    head = make_head(args.dim, tuple(int(h) for h in args.hidden.split(",") if h))
    print("| classes | gallery photos | full CPU s | shortlist CPU s | ratio |")
    print("|---|---|---|---|---|")
    for c in (int(x) for x in args.classes.split(",")):
        q, g, labels = make_data(args.queries, c, args.per_class, args.dim)
        full, t_full = timed(lambda: full_scores(q, g, labels, c, head))
        short, t_short = timed(lambda: shortlisted_scores(q, g, labels, c, head, shortlist=args.m))
        assert full.shape == short.shape
        print(f"| {c:,} | {len(labels):,} | {t_full:.2f} | {t_short:.2f} | {t_full / t_short:.1f} |", flush=True)
    print(f"pair_shortlist: classes {c} ratio {t_full / t_short:.1f}")


if __name__ == "__main__":
    main()
