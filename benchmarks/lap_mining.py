"""LAP hard-negative mining: dense scipy vs the sparse k-NN path, at HWI scale.

Data: a simulated HWI training set — N images of long-tailed individuals (counts
p(c) ∝ (c + 2.8)^-3.24 on 1..73: mean 3.14 images per individual and ~44 %
singletons, as HWI's 15,697 images of 5,004 known whales), unit-norm embeddings
clustered twice (families of look-alike individuals, then individuals, then images
with noise); scores are cosine similarities, same-individual cells forbidden.

Methods, each run in a fresh subprocess so its peak memory can be measured
(``ru_maxrss`` minus the resident size once the inputs are ready):

* ``dense``         scipy ``linear_sum_assignment`` on the N×N score matrix
* ``sparse``        ``sparse_hard_negatives`` from the features (k-NN + LAPJVsp)
* ``sparse-matrix`` ``sparse_hard_negatives_from_scores`` (top-k of the matrix)

Hardness = mean (noiseless) score of the mined negatives; "vs dense" divides by
the dense optimum's. ``--noise`` adds mining noise (the sparse path from features
then adds k random candidates per row, as the miner does). Usage::

    python benchmarks/lap_mining.py                      # N = 2000, 5000, 15697
    python benchmarks/lap_mining.py --sizes 2000 --k 20 50 --skip-dense-above 5000
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HWI_N = 15_697


def simulate_hwi(n: int, dim: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 (n, dim) unit-norm, labels int64 (n,)) as described above."""
    rng = np.random.default_rng(seed)
    c = np.arange(1, 74)
    p = (c + 2.8) ** -3.24
    counts = rng.choice(c, size=int(n / 3.14) + 50, p=p / p.sum())
    counts = counts[np.cumsum(counts) <= n]
    counts = np.concatenate([counts, np.ones(n - counts.sum(), dtype=counts.dtype)])
    labels = np.repeat(np.arange(len(counts)), counts)
    n_ids = len(counts)

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    families = unit(rng.standard_normal((max(1, n_ids // 8), dim)))
    fam = rng.integers(0, len(families), size=n_ids)
    ids = unit(families[fam] + 0.9 * unit(rng.standard_normal((n_ids, dim))))
    f = unit(ids[labels] + 0.6 * unit(rng.standard_normal((n, dim))))
    return f.astype(np.float32), labels


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(method: str, n: int, k: int, dim: int, seed: int, noise: float = 0.0) -> dict:
    """Run one method on one simulated set in this process; return its numbers."""
    import torch

    from whaleflow.mining import hard_negatives, sparse_hard_negatives, sparse_hard_negatives_from_scores

    f, labels = simulate_hwi(n, dim, seed)
    scores = None
    if method != "sparse":
        with torch.inference_mode():
            t = torch.from_numpy(f)
            scores = (t @ t.T).numpy()
    base = _rss_mb()
    info: dict = {}
    t0 = time.perf_counter()
    kw = dict(noise=noise, rng=seed, info=info)
    if method == "dense":
        partner = hard_negatives(scores, labels, **kw)
    elif method == "sparse":
        partner = sparse_hard_negatives(f, labels, k=k, random_candidates=k if noise > 0 else 0, **kw)
    else:
        partner = sparse_hard_negatives_from_scores(scores, labels, k=k, **kw)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    ok = partner >= 0
    assert (labels[partner[ok]] != labels[ok]).all(), "a forbidden cell was chosen"
    hardness = float(np.mean(np.sum(f[ok] * f[partner[ok]], axis=1, dtype=np.float64)))
    return {
        "method": method, "n": n, "k": k if method != "dense" else None, "seconds": seconds,
        "peak_mb": max(0.0, peak), "hardness": hardness,
        "distinct": int(len(np.unique(partner[ok]))), "individuals": int(labels.max() + 1),
        "info": {key: v for key, v in info.items() if isinstance(v, (int, float, bool))},
    }


def run_child(method: str, n: int, k: int, dim: int, seed: int, noise: float) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, str(n), str(k), str(dim), str(seed), str(noise)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, HWI_N])
    ap.add_argument("--k", type=int, nargs="+", default=[50], help="neighbours per image (sparse)")
    ap.add_argument("--dim", type=int, default=128, help="embedding dimension")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", type=float, default=0.0, help="noise std (hardness is always noiseless)")
    ap.add_argument("--skip-dense-above", type=int, default=None, metavar="N")
    ap.add_argument("--no-matrix-variant", action="store_true", help="skip sparse-on-matrix rows")
    ap.add_argument("--json", default=None, help="also write all results to this file")
    ap.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        method, n, k, dim, seed, noise = args.worker
        print(json.dumps(worker(method, int(n), int(k), int(dim), int(seed), float(noise))))
        return

    import torch

    print(f"# LAP mining benchmark: dim={args.dim}, seed={args.seed}, noise={args.noise}, torch threads={torch.get_num_threads()}, "
          f"cpus={os.cpu_count()}")
    head = (f"{'N':>6} {'ids':>5} {'method':<14} {'k':>4} {'seconds':>8} {'peak MB':>8} {'hardness':>9} "
            f"{'vs dense':>8} {'distinct':>8} {'unmatched':>9} {'fallback':>8} {'cand s':>6} {'solve s':>7}")
    print(head)
    results = []
    for n in args.sizes:
        runs = []
        if args.skip_dense_above is None or n <= args.skip_dense_above:
            runs.append(("dense", 0))
        for k in args.k:
            runs.append(("sparse", k))
            if not args.no_matrix_variant:
                runs.append(("sparse-matrix", k))
        dense_h = None
        for method, k in runs:
            r = run_child(method, n, k, args.dim, args.seed, args.noise)
            results.append(r)
            if method == "dense":
                dense_h = r["hardness"]
            i = r["info"]
            rel = f"{r['hardness'] / dense_h:8.2%}" if dense_h else f"{'n/a':>8}"
            print(f"{n:>6} {r['individuals']:>5} {method:<14} {k or '':>4} {r['seconds']:>8.2f} {r['peak_mb']:>8.0f} "
                  f"{r['hardness']:>9.4f} {rel} {r['distinct']:>8} {i.get('unmatched', ''):>9} "
                  f"{i.get('fallback_rows', 0):>8} {i.get('candidate_seconds', float('nan')):>6.2f} "
                  f"{i.get('solve_seconds', float('nan')):>7.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
