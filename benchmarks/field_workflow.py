"""The field workflow measured on a trained synthetic run: encounters and the stated false-match rate.

    python benchmarks/field_workflow.py RUN_DIR [--sightings 80] [--seed 1] [--rates 0.01 0.05 0.1 0.2 0.3]

RUN_DIR is a finished run on a synthetic set (``whaleflow run -c configs/demo.yaml --set
data.synthetic.seed=7 …``: use a seed the demo does not use). It prints:

1. **Encounters.** :func:`whaleflow.data.sightings.generate_sightings` draws ``--sightings``
   encounters (2–4 photos each, EXIF times) of the run's individuals and of new ones;
   ``identify --encounters`` fuses each; top-1 of every photo alone against top-1 of its
   encounter (per photo and per encounter), and whether ``--encounter-gap 60`` finds the
   same encounters from the EXIF times.
2. **Auto-accept.** For each rate: the share ``identify --auto-accept-fmr`` accepts and the
   observed false-match rate among them (95 % Wilson interval) on the run's own test photos
   against ``answers.csv``, on the sightings' photos and on their encounters, beside what
   the run's validation outer folds said per photo and per encounter, and whether that
   validation backs the rate (identify accepts nothing where it does not).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from whaleflow.data.sightings import generate_sightings  # noqa: E402
from whaleflow.identify import identify, load_run  # noqa: E402
from whaleflow.identify.auto_accept import accepted_mask  # noqa: E402
from whaleflow.identify.calibration import wilson  # noqa: E402
from whaleflow.labels import NEW_WHALE  # noqa: E402


def _top1(predictions: pd.Series) -> np.ndarray:
    return np.array([p.split()[0] for p in predictions])


def accept_row(name: str, p: np.ndarray, right: np.ndarray, rate: float) -> str:
    acc = accepted_mask(pd.DataFrame({"p_correct": p}), rate)
    n, wrong = int(acc.sum()), int((acc & ~right).sum())
    lo, hi = wilson(wrong, n)
    fmr = f"{100 * wrong / n:.2f} %" if n else "–"
    return (f"| {name} | {100 * rate:g} % | {n}/{len(p)} ({100 * n / max(len(p), 1):.1f} %) | {wrong} | {fmr} | "
            f"{100 * lo:.2f}–{100 * hi:.2f} % | |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--sightings", type=int, default=80)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--weighting", default="photos", choices=["photos", "uniform"],
                    help="known individuals drawn by their training photo count (default) or uniformly")
    ap.add_argument("--fusion", default="flat", help="encounter fusion: flat or bayes")
    ap.add_argument("--rates", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.2, 0.3])
    ap.add_argument("--work", default=None, help="folder for the sightings and matches (default RUN_DIR/field)")
    args = ap.parse_args(argv)
    run = load_run(args.run_dir, device="cpu")
    work = Path(args.work or Path(args.run_dir) / "field")
    data = Path(run.cfg.data.root)
    start = time.perf_counter()
    made = generate_sightings(data, work / "sightings", sightings=args.sightings, seed=args.seed,
                             weighting=args.weighting)
    sight = work / "sightings"
    answers = pd.read_csv(sight / "answers.csv", dtype=str, keep_default_na=False)
    truth = dict(zip(answers["image"], answers["Id"]))
    m = identify(run, [sight / "photos"], encounters=sight / "encounters.csv", boxes=sight / "boxes.csv",
                 out=work / "sightings_matches.csv", page=False, encounter_fusion=args.fusion)
    gap = identify(run, [sight / "photos"], encounter_gap=60, boxes=sight / "boxes.csv", out=None, page=False)
    photos, enc = m.frame, m.encounters
    photo_right = _top1(photos["predictions"]) == photos["image"].map(truth).to_numpy()
    enc_truth = enc["images"].str.split("|").str[0].map(truth).to_numpy()
    enc_right = _top1(enc["predictions"]) == enc_truth
    per_photo_enc = np.repeat(enc_right, enc["n_photos"].to_numpy())
    same = sorted(map(sorted, gap.encounters["images"].str.split("|"))) == sorted(map(sorted, enc["images"].str.split("|")))
    print(f"sightings ({args.weighting}, fusion {args.fusion}): {made['sightings']} encounters ({made['new_sightings']} of new individuals), "
          f"{made['photos']} photos; run {args.run_dir}; {time.perf_counter() - start:.0f} s")
    print(f"--encounter-gap 60 finds the same encounters as encounters.csv: {same} "
          f"({len(gap.encounters)} vs {len(enc)})")
    print("| | photo top-1 | encounter top-1 |\n|---|---|---|")
    print(f"| per photo ({len(photos)}) | {photo_right.mean():.3f} | {per_photo_enc.mean():.3f} |")
    enc_photo_mean = pd.Series(photo_right).groupby(np.repeat(np.arange(len(enc)), enc["n_photos"])).mean()
    print(f"| per encounter ({len(enc)}; photo = mean of its photos) | {enc_photo_mean.mean():.3f} | "
          f"{enc_right.mean():.3f} |")
    new = enc_truth == NEW_WHALE
    print(f"| known-individual encounters ({(~new).sum()}) | {enc_photo_mean[~new].mean():.3f} | "
          f"{enc_right[~new].mean():.3f} |")
    print(f"| new-individual encounters ({new.sum()}) | {enc_photo_mean[new].mean():.3f} | {enc_right[new].mean():.3f} |")

    test = identify(run, [data / "test"], boxes=data / run.cfg.data.boxes if run.cfg.data.boxes else None,
                    out=None, page=False)
    ans = pd.read_csv(data / "answers.csv", dtype=str, keep_default_na=False)
    tmap = dict(zip(ans["Image"], ans["Id"]))
    test_right = _top1(test.frame["predictions"]) == test.frame["image"].map(tmap).to_numpy()
    print(f"\nrun test photos: {len(test.frame)}, top-1 right {test_right.mean():.3f}; sightings photos top-1 "
          f"{photo_right.mean():.3f}; encounters {enc_right.mean():.3f}")
    print("\nAccepted where 1 - p_correct <= the rate (identify accepts only where validation backs the rate: "
          "last column of the validation rows)")
    print("| set | stated rate | auto-accepted | false matches | observed FMR | 95 % interval | validation backs it |"
          "\n|---|---|---|---|---|---|---|")
    cal = m.calibration
    enc_cal, why = cal.for_encounters(args.fusion)
    if why:
        print(f"note: {why}")
    multi = enc["n_photos"].to_numpy() > 1
    for rate in args.rates:
        print(check_row("validation outer folds, per photo", cal.fmr_check(rate)))
        if enc_cal is not None:
            print(check_row(f"validation outer folds, per encounter ({len(enc_cal.oof_p)})", enc_cal.fmr_check(rate)))
        print(accept_row("run test photos", test.frame["p_correct"].to_numpy(float), test_right, rate))
        print(accept_row("sightings, per photo", photos["p_correct"].to_numpy(float), photo_right, rate))
        print(accept_row("sightings, per encounter", enc["p_correct"].to_numpy(float), enc_right, rate))
        print(accept_row("sightings, encounters of 2+ photos", enc["p_correct"].to_numpy(float)[multi],
                         enc_right[multi], rate))
    return 0


def check_row(name: str, c: dict) -> str:
    """A validation outer-fold check as a table row."""
    return (f"| {name} | {100 * c['rate']:g} % | {c['accepted']}/{c['queries']} ({100 * c['accepted_share']:.1f} %) | "
            f"{c['false_matches']} | " + (f"{100 * c['observed_fmr']:.2f} %" if c["accepted"] else "–")
            + f" | {100 * c['fmr_low']:.2f}–{100 * c['fmr_high']:.2f} % | {'yes' if c['supported'] else 'no'} |")


if __name__ == "__main__":
    raise SystemExit(main())
