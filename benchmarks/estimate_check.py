"""Does the stated range hold the real test MAP@5, and how wide is it? Recomputed from finished runs.

Every run keeps what its range was computed from (``ensemble/estimate_inputs.npz``), so a change to
:mod:`whaleflow.ensemble.estimate_range` is checked here on the panel's runs without training again:

    python benchmarks/estimate_check.py runs/panel/run-*            # one row per run
    python benchmarks/estimate_check.py runs/panel/run-* --z 1.5    # a wider band of plausible mixes

Per run: the real test MAP@5, the range as the run stated it, the range recomputed now, whether it
holds and its width, the plausible λ band and the implied mix's estimate.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from whaleflow.ensemble.estimate_range import RANGE_MIN_QUERIES, range_from_file  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--z", type=float, default=1.0)
    p.add_argument("--min-queries", type=int, default=RANGE_MIN_QUERIES)
    args = p.parse_args(argv)
    print("| run | test MAP@5 | stated range | recomputed range | holds | width | λ band | implied |")
    print("|---|---|---|---|---|---|---|---|")
    widths, held = [], 0
    for run in args.runs:
        summary = json.loads((run / "summary.json").read_text())
        real = summary.get("test_map5")
        out = range_from_file(run / "ensemble" / "estimate_inputs.npz", z=args.z, min_queries=args.min_queries)
        if not out or real is None:
            print(f"| {run.name} | {real} | – | – | – | – | – | – |")
            continue
        ok = out["low"] <= real <= out["high"]
        held += ok
        widths.append(out["high"] - out["low"])
        implied = out["mixes"].get("implied")
        print(f"| {run.name} | {real:.3f} | {summary.get('expected_test_map5_low', float('nan')):.3f}–"
              f"{summary.get('expected_test_map5_high', float('nan')):.3f} | {out['low']:.3f}–{out['high']:.3f} | "
              f"{'yes' if ok else 'NO'} | {widths[-1]:.3f} | {out['lambda_low']:.2f}–{out['lambda_high']:.2f} | "
              f"{'–' if implied is None else '%.3f (λ %.2f)' % (implied['map5'], implied['lambda'])} |")
    if widths:
        print(f"\nholds on {held} of {len(widths)}; widest {max(widths):.3f}, mean width {np.mean(widths):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
