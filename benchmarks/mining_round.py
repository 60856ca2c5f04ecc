"""One sparse mining round at HWI scale: the old path (every ordered pair, N×N to the miner)
against the new one (each unordered pair once, top-k per row on the device, N·k to the miner).

A round is head scoring + solve. The HWI head is ``PairHead(2048, hidden=[512, 128])``
on 2,048-d (resnet50-sized) features; the solver is ``mining.solver: sparse`` with
``k = 50`` at the HWI configs' starting noise (σ = 2 logits).

* **old**: ``score_blocks`` over all N² ordered pairs with the pair head as it was
  (two GEMMs per tile, :func:`legacy_score_matrix`), the row blocks assembled into the
  N×N float32 matrix (what ``LocalMiningClient`` / the MiningActor held), then
  ``LapMiner.mine`` on it (noise on all N² cells, top-k per row, LAPJVsp).
* **new**: ``score_candidates`` (symmetric head: upper triangle only, fused GEMM,
  the round's noise drawn on the device, running top-k per row) then ``LapMiner.mine``
  on the candidates.

Scoring every pair of 15,697 images with this head costs hours on a CPU (~2·10⁶
multiply-adds per pair, 2.5·10⁸ pairs), so **scoring is measured on a subset**: both
paths score the same ``--score-n`` images in full (all their pairs), and each path's
time is scaled to N by its pair count (N²/n²; the triangle's diagonal overhead is
smaller at N than at n, so the scaled new time is if anything pessimistic: at the old
defaults, 640 images in one 1,024 tile, every pair sat in the one diagonal tile and the
round measured 1.87×; at 1,536 images in 512 tiles, half the tiles are diagonal, 2.17×;
at N with 1,024 tiles 16 of 136 are). **The
solve runs at full N** for both, on a simulated HWI logit matrix (clustered
embeddings, long-tailed individuals: ``lap_mining.simulate_hwi``), the new path on
that matrix's top-k candidates (built outside the timing). Last line:
``mining_round: speedup X.XX bytes_old B bytes_new C (N·k·8 = D)``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lap_mining import HWI_N, simulate_hwi  # noqa: E402


def legacy_score_matrix(head, xa: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
    """``PairHead.score_matrix`` before this change (``x*y`` and ``|x−y|`` in two GEMMs)."""
    D = head.in_features
    w = head.sym.weight
    wp, wm, wa = w[:, :D], w[:, D : 2 * D], w[:, 2 * D :]
    pa, pb = xa @ wp.T, xb @ wp.T
    da, db = xa @ head.diff.weight.T, xb @ head.diff.weight.T
    xa3, xb3 = xa[:, None, :], xb[None, :, :]
    s = (pa[:, None, :] + pb[None, :, :]) + head.sym.bias
    s = s + (xa3 * xb3) @ wm.T
    s = s + (xa3 - xb3).abs() @ wa.T
    return head._combine(s, da[:, None, :] - db[None, :, :])


class LegacyHead(torch.nn.Module):
    """The old head as the old scoring saw it: ``score_matrix`` of two GEMMs, no symmetry used."""

    def __init__(self, head):
        super().__init__()
        self.head = head

    def score_matrix(self, xa, xb):
        return legacy_score_matrix(self.head, xa, xb)

    def forward(self, x, y):
        return self.head(x, y)


def old_scoring(feats, head, block: int) -> np.ndarray:
    from whaleflow.mining import score_blocks

    n = len(feats)
    matrix = np.empty((n, n), np.float32)  # what LocalMiningClient assembled
    for start, rows in score_blocks(feats, feats, LegacyHead(head), block_size=block, transform=None):
        matrix[start : start + len(rows)] = rows
    return matrix


def candidates_from_matrix(scores: np.ndarray, labels: np.ndarray, k: int, noise: float, seed: int):
    """The ``PairCandidates`` ``score_candidates`` would send for this logit matrix (noisy top-w)."""
    from whaleflow.mining import PairCandidates
    from whaleflow.mining.candidates import positive_groups

    n = len(scores)
    groups = positive_groups(labels, n)
    w = k - -(-2 * sum(len(g) ** 2 for g in groups) // (8 * n))
    idx, val, clean = (np.empty((n, w), t) for t in (np.int64, np.float32, np.float32))
    lab = torch.as_tensor(labels)
    gen = torch.Generator().manual_seed(seed)
    for s in range(0, n, 2048):
        blk = torch.from_numpy(scores[s : s + 2048].copy())
        blk.masked_fill_(lab[s : s + 2048, None] == lab[None, :], float("-inf"))
        v, i = torch.topk(blk + noise * torch.randn(blk.shape, generator=gen), w, dim=1)
        idx[s : s + 2048], val[s : s + 2048] = i.numpy(), v.numpy()
        clean[s : s + 2048] = torch.gather(blk, 1, i).numpy()
    pos = np.concatenate([scores[np.ix_(g, g)].ravel() for g in groups]) if groups else np.zeros(0)
    return PairCandidates(idx.astype(np.int32), val.astype(np.float16), clean.astype(np.float16),
                          pos.astype(np.float16), noise, True)


def run(n: int, score_n: int, dim: int, hidden, k: int, noise: float, block: int, seed: int = 0) -> dict:
    from whaleflow.mining import LapMiner, NoiseSchedule, score_candidates
    from whaleflow.models.pair_head import PairHead

    torch.manual_seed(seed)
    head = PairHead(dim, hidden=tuple(hidden)).eval()
    feats = torch.randn(score_n, dim).abs()  # pooled ReLU features are ≥ 0
    sub_labels = np.random.default_rng(seed).integers(0, max(2, score_n // 3), score_n)
    t = time.perf_counter()
    old_m = old_scoring(feats, head, block)
    t_old_score = time.perf_counter() - t
    t = time.perf_counter()
    cand_sub = score_candidates(feats, head, k=k, neg_labels=sub_labels, labels=sub_labels, noise=noise,
                                block_size=block)
    t_new_score = time.perf_counter() - t
    # the new path's candidates are the old matrix's top-k (float16 values)
    np.testing.assert_allclose(old_m[np.arange(score_n), cand_sub.idx[:, 0]],
                               cand_sub.clean[:, 0].astype(np.float32), atol=0.05, rtol=1e-2)
    del old_m
    scale = (n / score_n) ** 2

    # ---- the solve at full N, on a simulated HWI logit matrix
    f, labels = simulate_hwi(n, 128, seed)
    with torch.inference_mode():
        ft = torch.from_numpy(f)
        logits = (ft @ ft.T * 8.0 - 4.0).numpy()
    miner = LapMiner("sparse", k=k, noise=NoiseSchedule(noise, noise, 0, floor=noise), logits=True)
    t = time.perf_counter()
    held = np.empty_like(logits)  # the old client/actor copies every row block into its matrix
    for s in range(0, n, block):
        held[s : s + block] = logits[s : s + block]
    old_pairs = miner.mine(held, labels, 0, rng=seed)
    t_old_solve = time.perf_counter() - t
    bytes_old = held.nbytes
    del held
    cand = candidates_from_matrix(logits, labels, k, noise, seed)
    t = time.perf_counter()
    new_pairs = miner.mine(cand, labels, 0, rng=seed)
    t_new_solve = time.perf_counter() - t
    hard = lambda p: float(np.mean(logits[p.neg_a, p.neg_b]))  # noqa: E731
    old_round = t_old_score * scale + t_old_solve
    new_round = t_new_score * scale + t_new_solve
    return {
        "n": n, "score_n": score_n, "dim": dim, "hidden": list(hidden), "k": k,
        "old_score_s": t_old_score * scale, "new_score_s": t_new_score * scale,
        "old_solve_s": t_old_solve, "new_solve_s": t_new_solve,
        "old_round_s": old_round, "new_round_s": new_round, "speedup": old_round / new_round,
        "score_speedup": t_old_score / t_new_score,
        "bytes_old": int(bytes_old), "bytes_new": int(cand.nbytes), "bytes_limit": n * k * 8,
        "hardness_old": hard(old_pairs), "hardness_new": hard(new_pairs),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=HWI_N, help="images in the round (the solve runs at this size)")
    ap.add_argument("--score-n", type=int, default=1536, help="images whose pairs are scored (scaled to --n)")
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--hidden", type=int, nargs="+", default=[512, 128])
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--noise", type=float, default=2.0)
    ap.add_argument("--block-size", type=int, default=512,
                    help="tile side; at --score-n it sets how much of the subset is diagonal tiles")
    ap.add_argument("--small", action="store_true", help="tiny sizes (a smoke test in seconds)")
    args = ap.parse_args(argv)
    if args.small:
        args.n, args.score_n, args.dim, args.hidden, args.k = 1500, 200, 64, [32, 16], 20
    r = run(args.n, args.score_n, args.dim, args.hidden, args.k, args.noise, args.block_size)
    print(f"# mining round: N={r['n']}, head [{', '.join(map(str, r['hidden']))}] on {r['dim']}-d features, "
          f"k={r['k']}, threads={torch.get_num_threads()}; scoring measured on {r['score_n']} images, scaled by pairs")
    print(f"{'path':<5} {'score s':>10} {'solve s':>8} {'round s':>10} {'bytes':>14} {'hardness':>9}")
    for p in ("old", "new"):
        print(f"{p:<5} {r[p + '_score_s']:>10.0f} {r[p + '_solve_s']:>8.2f} {r[p + '_round_s']:>10.0f} "
              f"{r['bytes_' + p]:>14,} {r['hardness_' + p]:>9.3f}")
    print(f"scoring alone: {r['score_speedup']:.2f}x")
    print(f"mining_round: speedup {r['speedup']:.2f} bytes_old {r['bytes_old']} bytes_new {r['bytes_new']} "
          f"(N·k·8 = {r['bytes_limit']})")


if __name__ == "__main__":
    main()
