"""Crops from a box model against whole frames and true boxes, on a synthetic set the demo never used.

One table, one split, the same seeds: ``configs/cpu.yaml`` trained three times on the same
photos, cropped three ways —

* whole frames (``data.boxes=null``);
* predicted boxes: the box file cut to its first ``--rows`` rows, so ``prepare`` learns a box
  model from those and predicts every other photo's box;
* true boxes (the set's full ``boxes.csv``);

beside the accuracy panel's rows for the same split (:func:`panel.evaluate_run`): the frequency
baseline, raw-pixel k-NN and the frozen pretrained Lite0 k-NN peer at its best size (on the
original photos), and each model alone. It also prints the predicted boxes' mean IoU against the
true ones (every photo the cut file does not list) and the box model's fit time.

    python benchmarks/box_accuracy.py --out runs/box_accuracy            # 200 individuals, seed 11
    python benchmarks/box_accuracy.py --variants whole,true              # some of them (reused later)

A variant whose run folder already holds ``summary.json`` is read, not trained again.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import run_whaleflow  # noqa: E402
from panel import evaluate_run  # noqa: E402

from whaleflow.locate.iou import box_iou  # noqa: E402


def box_file(variant: str, data: Path, rows: int) -> str:
    """The data.boxes value of a variant (the cut file is written next to the data)."""
    if variant == "whole":
        return "null"
    if variant == "true":
        return str(data / "boxes.csv")
    cut = data / f"boxes_first{rows}.csv"
    if not cut.is_file():
        pd.read_csv(data / "boxes.csv").head(rows).to_csv(cut, index=False)
    return str(cut)


def run_variant(variant: str, args) -> dict:
    data, run_dir = Path(args.data), Path(args.out) / f"run-{variant}"
    overrides = [f"data.root={data}", f"data.boxes={box_file(variant, data, args.rows)}", f"output.dir={run_dir}",
                 "predict.use_duplicates=false", *args.overrides]
    t0 = time.time()
    if (run_dir / "summary.json").is_file():
        summary = json.loads((run_dir / "summary.json").read_text())
    else:
        summary = run_whaleflow(args.config, overrides, local=True)
    # the panel's own row: frequency, raw-pixel k-NN, the frozen peer at its best size, each model, the ensemble
    out = {**evaluate_run(run_dir, data, summary, round(time.time() - t0)),
           "boxes": json.loads((run_dir / "prepared" / "summary.json").read_text())["boxes"]}
    pred = run_dir / "prepared" / "boxes_predicted.csv"
    if pred.is_file():
        p = pd.read_csv(pred, dtype={"Image": str})
        t = pd.read_csv(data / "boxes.csv", dtype={"Image": str}).set_index("Image").loc[p["Image"]]
        iou = box_iou(p[["x0", "y0", "x1", "y1"]].to_numpy(float), t[["x0", "y0", "x1", "y1"]].to_numpy(float))
        out["iou"] = {"photos": len(iou), "mean": float(iou.mean()), "p10": float(np.percentile(iou, 10)),
                      "below_0.5": int((iou < 0.5).sum()),
                      "score_corr": float(np.corrcoef(iou, p["score"])[0, 1]) if len(iou) > 2 else None}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "runs" / "box_accuracy" / "data"))
    p.add_argument("--out", default=str(ROOT / "runs" / "box_accuracy"))
    p.add_argument("--config", default=str(ROOT / "configs" / "cpu.yaml"))
    p.add_argument("--variants", default="whole,predicted,true")
    p.add_argument("--rows", type=int, default=150, help="rows of the box file kept for the predicted variant")
    p.add_argument("--individuals", type=int, default=200)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--set", dest="overrides", nargs="*", default=[])
    args = p.parse_args(argv)
    if not (Path(args.data) / "train.csv").is_file():
        from whaleflow.data.synthetic import generate_synthetic

        generate_synthetic(args.data, individuals=args.individuals, seed=args.seed)
    res = {v: run_variant(v, args) for v in args.variants.split(",")}
    fmt = lambda v: "" if v is None or not np.isfinite(v) else f"{v:.3f}"  # noqa: E731
    names = list(dict.fromkeys(name for r in res.values() for name in r["rows"]))
    print("\n| method | " + " | ".join(f"{v} (val / test)" for v in res) + " |")
    print("|---|" + "---|" * len(res))
    for name in names:
        cells = [r["rows"].get(name, {}) for r in res.values()]
        print(f"| {name} | " + " | ".join(f"{fmt(c.get('val'))} / {fmt(c.get('test'))}" if c else "" for c in cells) + " |")
    for v, r in res.items():
        if "iou" in r:
            m = r["boxes"].get("model") or {}
            print(f"\n{v}: {r['iou']['photos']} predicted boxes, mean IoU against the true boxes {r['iou']['mean']:.3f} "
                  f"(10th percentile {r['iou']['p10']:.3f}, {r['iou']['below_0.5']} below 0.5, score–IoU correlation "
                  f"{fmt(r['iou']['score_corr'])}); box model held-out IoU {fmt(m.get('held_out_iou'))}, fit "
                  f"{m.get('fit_seconds')} s wall / {m.get('fit_cpu_seconds')} s CPU")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "box_accuracy.json").write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
