"""All-pairs scoring with the pair head: blocked scoring vs a per-pair loop.

Three ways to score pairs of N feature vectors with :class:`PairHead`:

* ``loop``      one ``head(x[i:i+1], x[j:j+1])`` call per pair (a random subset)
* ``expanded``  ``head(x_rows, x_cols)`` on every pair of a row subset, expanded
  into a batch (generic broadcasting; what any head gets)
* ``blocked``   :func:`whaleflow.mining.score_all_pairs` on all N² pairs
  (``PairHead.score_matrix`` per tile; the symmetric head scores half the tiles)

Each prints pairs/s (fastest of ``--repeat`` runs, so other load on the machine
skews less) and the ratio to the loop. Usage::

    python benchmarks/pair_scoring.py                 # N=1024, D=512, CPU
    python benchmarks/pair_scoring.py --n 8192 --device cuda
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from whaleflow.mining import score_all_pairs
from whaleflow.models.pair_head import PairHead


class Expanded(nn.Module):
    """Hides ``score_matrix`` so scoring falls back to expanded pairs."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, x, y):
        return self.head(x, y)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_rate(fn, pairs: int, repeat: int, device: torch.device):
    """Pairs/s of the fastest of ``repeat`` runs (robust to other load), and the result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        _sync(device)
        t = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return pairs / best, out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1024, help="images (all N² pairs are scored)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per method; the fastest counts")
    ap.add_argument("--dim", type=int, default=512, help="feature dimension (512: resnet34)")
    ap.add_argument("--hidden", type=int, nargs="*", default=[64, 32])
    ap.add_argument("--loop-pairs", type=int, default=2000)
    ap.add_argument("--expanded-rows", type=int, default=128)
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    f = torch.randn(args.n, args.dim, device=device)
    rows = []
    for symmetric in (True, False):
        head = PairHead(args.dim, hidden=args.hidden, symmetric=symmetric).to(device).eval()
        rng = np.random.default_rng(args.seed)
        i = rng.integers(0, args.n, args.loop_pairs)
        j = rng.integers(0, args.n, args.loop_pairs)
        sub = f[: args.expanded_rows]

        def loop():
            with torch.inference_mode():
                return torch.cat([head(f[a : a + 1], f[b : b + 1]) for a, b in zip(i, j)]).cpu().numpy()

        loop_rate, looped = best_rate(loop, args.loop_pairs, args.repeat, device)
        exp_rate, expanded = best_rate(lambda: score_all_pairs(sub, Expanded(head), block_size=args.block_size),
                                       len(sub) ** 2, args.repeat, device)
        full_rate, full = best_rate(lambda: score_all_pairs(f, head, block_size=args.block_size),
                                    args.n**2, args.repeat, device)
        err = max(float(np.abs(full[i, j] - looped).max()), float(np.abs(full[: len(sub), : len(sub)] - expanded).max()))
        name = "symmetric" if symmetric else "one order"
        rows += [
            (name, "loop", args.loop_pairs, loop_rate, 1.0, None),
            (name, "expanded", len(sub) ** 2, exp_rate, exp_rate / loop_rate, None),
            (name, "blocked", args.n**2, full_rate, full_rate / loop_rate, err),
        ]
    print(f"# pair scoring: N={args.n}, D={args.dim}, hidden={args.hidden}, device={device}, "
          f"threads={torch.get_num_threads()}, block={args.block_size}")
    print(f"{'head':<10} {'method':<9} {'pairs':>10} {'pairs/s':>12} {'vs loop':>9} {'max |diff|':>10}")
    for name, method, n, rate, ratio, err in rows:
        e = f"{err:10.1e}" if err is not None else f"{'':>10}"
        print(f"{name:<10} {method:<9} {n:>10} {rate:>12,.0f} {ratio:>8.0f}x {e}")


if __name__ == "__main__":
    main()
