"""The classifier on embeddings at growing class counts: CPU seconds of one fit, N·C by design.

``EmbeddingClassifier`` trains a softmax over all C individuals on N photos: each epoch is
N/batch steps, each step a (batch × hidden) × (hidden × C) product forward and back plus
Adam on the hidden × C output weights, so a fit costs about N·C·hidden·epochs. The
ensemble fits it ``val_chunks + 1`` times (test-like validation chunks, then the test fit).

At each ``--classes`` C this draws ``--per-class`` synthetic embeddings per individual (class
centres plus noise, ``--dim`` wide: the rehearsal's three tiny models with flip TTA give 576)
and times ``--epochs`` epochs of one fit (CPU seconds, one torch thread), then carries them to
the configured epoch count. Printed: N, C, seconds per epoch, the full fit, the ensemble's
``val_chunks + 1`` fits, and the exponent of seconds in C between sizes (N grows with C, so
2 means N·C). Run it with ``OMP_NUM_THREADS=1`` so PCA's BLAS uses one thread too (CPU time
sums threads). The last line: ``classifier_scale: classes C fit_s S exponent E``.

    OMP_NUM_THREADS=1 python benchmarks/classifier_scale.py --classes 1250,5000     # the rehearsal's settings
    OMP_NUM_THREADS=1 python benchmarks/classifier_scale.py --classes 1250,5000 --pca 64 --hidden 256 --full-epochs 200
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from whaleflow.classify import EmbeddingClassifier


def fit_seconds(c: int, per_class: int, dim: int, pca: int, hidden: int, epochs: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(c, dim)).astype(np.float32)
    y = np.repeat(np.arange(c), per_class)
    x = centres[y] + 1.5 * rng.normal(size=(len(y), dim)).astype(np.float32)
    model = EmbeddingClassifier(pca_dim=pca, hidden=hidden, epochs=epochs, seed=seed)
    t = time.process_time()
    model.fit(x, y, num_classes=c)
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", default="1250,5000")
    ap.add_argument("--per-class", type=int, default=5, help="training photos per individual (HWI: about 5)")
    ap.add_argument("--dim", type=int, default=576)
    ap.add_argument("--pca", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=3, help="epochs timed")
    ap.add_argument("--full-epochs", type=int, default=50, help="epochs of a real fit (the rehearsal: 50)")
    ap.add_argument("--fits", type=int, default=5, help="fits per ensemble (val_chunks + 1)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    fit_seconds(50, 2, args.dim, args.pca, args.hidden, 1)  # warm-up: imports, first allocations
    print("| individuals C | photos N | s per epoch | one fit s | ensemble's fits s |")
    print("|---|---|---|---|---|")
    prev = None
    for c in (int(x) for x in args.classes.split(",")):
        # one epoch and 1 + --epochs: their difference is the epochs alone, the rest PCA and set-up
        one = fit_seconds(c, args.per_class, args.dim, args.pca, args.hidden, 1)
        s = fit_seconds(c, args.per_class, args.dim, args.pca, args.hidden, 1 + args.epochs)
        per_epoch = (s - one) / args.epochs
        base = max(0.0, one - per_epoch)
        full = base + per_epoch * args.full_epochs
        print(f"| {c:,} | {c * args.per_class:,} | {per_epoch:.2f} | {full:.0f} | {full * args.fits:.0f} |", flush=True)
        exp = float(np.log(full / prev[1]) / np.log(c / prev[0])) if prev else float("nan")
        prev = (c, full)
    print(f"classifier_scale: classes {c} fit_s {full:.0f} exponent {exp:.2f}")


if __name__ == "__main__":
    main()
