"""Box-model IoU only: fit on a synthetic set's first ``--rows`` boxes, predict every other photo.

The quick loop for tuning the box model (no identification run): prints the held-out IoU,
the mean IoU of the predicted boxes against the true ones (plain, with the mirror averaged in, and
with one look only), and the fit's wall and CPU seconds. Every setting not given is the ``boxes``
config section's default, so the plain command measures what ``prepare`` fits.

    python benchmarks/box_iou.py --data /tmp/box11 --seed 11 --individuals 200
    python benchmarks/box_iou.py --data /tmp/wide_small --seed 101 --individuals 110 \\
        --size 384x192 --scale 0.3,0.6 --tint 0.3 --canvas 128x256
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from whaleflow.config import BoxesConfig  # noqa: E402
from whaleflow.locate.fitting import fit_from_config, read_listed  # noqa: E402
from whaleflow.locate.iou import box_iou  # noqa: E402
from whaleflow.locate.refine import RefineAugment  # noqa: E402


def make_data(args) -> Path:
    """The synthetic set (made once; a folder holding one is reused)."""
    data = Path(args.data)
    if not (data / "train.csv").is_file():
        from whaleflow.data.synthetic import generate_synthetic
        from whaleflow.data.synthetic_style import SynthStyle

        w, h = (int(v) for v in args.size.split("x"))
        lo, hi = (float(v) for v in args.scale.split(","))
        generate_synthetic(data, individuals=args.individuals, seed=args.seed, width=w, height=h,
                           style=SynthStyle(scale=(lo, hi), tint=args.tint))
    return data


def photo_path(data: Path, name: str) -> Path:
    return data / "train" / name if (data / "train" / name).is_file() else data / "test" / name


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--individuals", type=int, default=200)
    p.add_argument("--size", default="192x128", help="photo width x height of a new set")
    p.add_argument("--scale", default="0.55,1.0")
    p.add_argument("--tint", type=float, default=0.0)
    p.add_argument("--rows", type=int, default=150)
    d = BoxesConfig()
    p.add_argument("--canvas", default="x".join(map(str, d.canvas)), help="box model canvas height x width")
    p.add_argument("--views", type=int, default=d.views)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--refine-views", type=int, default=d.refine_views, help="crops per photo for the second look (0: one look)")
    p.add_argument("--margin", type=float, default=None, help="the second look's margin around the first box")
    p.add_argument("--stride", type=int, default=d.stride, help="the head's grid: 16, or 8 (finer, slower)")
    p.add_argument("--frozen-stages", type=int, default=d.frozen_stages,
                   help="5: the backbone frozen; 4: its stride-32 stages train")
    p.add_argument("--holdout", type=float, default=d.holdout, help="share of the listed photos kept out of the fit")
    p.add_argument("--no-refit", action="store_true", help="keep the fit without the held-out photos")
    p.add_argument("--heads", type=int, default=d.heads, help="heads trained on the same features, boxes averaged")
    args = p.parse_args(argv)
    data = make_data(args)
    boxes = pd.read_csv(data / "boxes.csv", dtype={"Image": str})
    listed, rest = boxes.head(args.rows), boxes.iloc[args.rows:]
    cols = ["x0", "y0", "x1", "y1"]
    bc = dataclasses.replace(d, canvas=[int(v) for v in args.canvas.split("x")], views=args.views, epochs=args.epochs,
                             refine_views=args.refine_views, stride=args.stride, frozen_stages=args.frozen_stages,
                             holdout=args.holdout, refit=not args.no_refit, heads=args.heads)
    model = fit_from_config(read_listed([photo_path(data, n) for n in listed["Image"]]), listed[cols].to_numpy(float),
                            bc, **({} if args.margin is None else {"refine": RefineAugment(margin=args.margin)}))
    photos = read_listed([photo_path(data, n) for n in rest["Image"]])
    out = {"photos": len(photos), **{k: model.metrics[k] for k in ("held_out_iou", "seconds", "seconds_views", "cpu_seconds",
                                                               "threads", "refine_views")}}
    for mirror in (False, True):  # one fit, scored plain and with the mirror averaged in
        model.settings["mirror"] = mirror
        iou = box_iou(model.predict_pixels(photos)[:, :4], rest[cols].to_numpy(float))
        out["mirror" if mirror else "plain"] = {"mean_iou": round(float(iou.mean()), 4),
                                                "below_0.5": int((iou < 0.5).sum())}
    if model.settings.get("refine"):  # the same fit without its second look: what the second look adds
        model.settings.update(mirror=False, refine=None)
        iou = box_iou(model.predict_pixels(photos)[:, :4], rest[cols].to_numpy(float))
        out["one_look"] = {"mean_iou": round(float(iou.mean()), 4), "below_0.5": int((iou < 0.5).sum())}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
