"""Full size on paper: each phase of ``scale_rehearsal.py`` extrapolated to HWI and Happywhale.

Reads the ``fits.json`` a rehearsal wrote and, per phase, carries its CPU seconds from the
largest size it ran to a target photo count along the log-log slope between its two largest
sizes, floored at 1 (no phase gets cheaper per photo; fixed costs such as imports and
starting Ray flatten the slope at small sizes, so a slope below 1 would promise too little).
Peak memory and disk are a fixed part plus a part per photo (the straight line through the
two largest sizes; a fixed part such as Ray's processes does not grow). It is an extrapolation, not a measurement: a phase whose quadratic part
is still small at the sizes run (the classifier's softmax over every individual, the siamese
head over every query × gallery pair) grows faster than its slope says.

    python benchmarks/scale_extrapolate.py runs/scale_rehearsal/fits.json
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

#: target photo counts (train + test) and individuals
TARGETS = {"HWI": (25_361 + 7_960, 5_004), "Happywhale": (51_033 + 27_956, 15_587)}


def carry(n: list[float], y: list[float], target: float) -> tuple[float, float]:
    """(value at ``target``, exponent used) from the last two finite points of y over n."""
    pts = [(a, b) for a, b in zip(n, y) if b is not None and np.isfinite(b) and b > 0]
    if not pts:
        return float("nan"), float("nan")
    if len(pts) == 1:
        return pts[0][1] * target / pts[0][0], 1.0
    (n0, y0), (n1, y1) = pts[-2], pts[-1]
    e = max(1.0, float(np.log(y1 / y0) / np.log(n1 / n0)))
    return y1 * (target / n1) ** e, e


def affine(n: list[float], y: list[float], target: float) -> float:
    """The straight line through the last two finite points of y over n, at ``target``."""
    pts = [(a, b) for a, b in zip(n, y) if b is not None and np.isfinite(b)]
    if len(pts) < 2:
        return float("nan")
    (n0, y0), (n1, y1) = pts[-2], pts[-1]
    return y1 + max(0.0, (y1 - y0) / (n1 - n0)) * (target - n1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fits")
    args = ap.parse_args()
    fits = json.load(open(args.fits))
    names = list(TARGETS)
    print("| phase | exp. | " + " | ".join(f"{t}: CPU min / GB / GB disk" for t in names) + " |")
    print("|---" * (2 + len(names)) + "|")
    totals = dict.fromkeys(names, 0.0)
    for f in fits:
        if f["phase"] == "synth":
            continue
        wall_only = ":" in f["phase"]
        series = f["seconds"] if wall_only else f["cpu_seconds"]
        cells, exp = [], float("nan")
        for t in names:
            sec, exp = carry(f["photos"], series, TARGETS[t][0])
            mem = affine(f["photos"], f["peak_bytes"], TARGETS[t][0])
            dsk = affine(f["photos"], f["disk_bytes"], TARGETS[t][0])
            if not wall_only:
                totals[t] += sec
            cells.append(f"{sec / 60:.1f}" + ("" if wall_only else f" / {mem / 2**30:.1f} / {dsk / 2**30:.2f}"))
        label = f["phase"] + (" (wall, inside tune)" if wall_only else "")
        print(f"| {label} | {exp:.2f} | " + " | ".join(cells) + " |")
    print("| all phases | | " + " | ".join(f"{totals[t] / 60:.0f}" for t in names) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
