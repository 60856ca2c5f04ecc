"""``whaleflow boxes fit`` and ``whaleflow boxes predict``: the box model outside a run.

    whaleflow boxes fit DATA --boxes boxes.csv --out box_model.pt
    whaleflow boxes predict box_model.pt photos/ more.jpg --out boxes.csv

``fit`` finds the photos under DATA (recursively, by file name as the box file names them),
checks each row (a photo DATA does not hold, an impossible box: one line each, naming the
row, and the row is left out) and fits on the rest. ``predict`` writes
``Image,x0,y0,x1,y1,score``, a file ``data.boxes`` and ``identify --boxes`` read as they are.
Registered by ``ray_jobs.cli``; no Ray here.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd


def add_parsers(sub) -> None:
    p = sub.add_parser("boxes", help="fit a box model on a few hundred boxes, or predict boxes with one")
    act = p.add_subparsers(dest="boxes_command", required=True)
    f = act.add_parser("fit", help="fit a box model on the photos a box CSV lists")
    f.add_argument("data", help="folder holding the photos (searched recursively)")
    f.add_argument("--boxes", required=True, help="box CSV (Image,x0,y0,x1,y1 or any layout prepare reads)")
    f.add_argument("--out", required=True, help="model file to write, e.g. box_model.pt")
    f.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                   help="settings of the boxes section, e.g. --set boxes.epochs=60 boxes.views=12")
    f.add_argument("--quiet", "-q", action="store_true")
    q = act.add_parser("predict", help="predict a box for each photo with a fitted box model")
    q.add_argument("model", help="a model file from `whaleflow boxes fit` (or a run's box_model/model.pt)")
    q.add_argument("photos", nargs="+", help="photo files or folders (searched recursively)")
    q.add_argument("--out", default="boxes.csv", help="CSV to write (Image,x0,y0,x1,y1,score)")
    q.add_argument("--quiet", "-q", action="store_true")


def _photo_table(folder) -> pd.DataFrame:
    from ..data.images import CorruptImage, image_size
    from ..identify.photos import list_photos

    paths = list_photos([folder])
    rows, seen = [], set()
    for p in paths:
        if p.name in seen:  # the box file names photos by file name: the first one found is used
            continue
        seen.add(p.name)
        try:
            w, h = image_size(p)
        except CorruptImage:  # unreadable: a row naming it is reported as naming no readable photo
            continue
        rows.append((p.name, str(p), w, h))
    return pd.DataFrame(rows, columns=["image", "path", "width", "height"])


def cmd_fit(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..data.boxes import read_boxes
    from ..errors import DataError
    from .box_source import check_listed
    from .fitting import fit_from_config, read_listed

    bc = load_config(None, list(args.overrides)).boxes
    photos = _photo_table(args.data)
    table = read_boxes(args.boxes)
    usable, problems = check_listed(table, photos)
    for p in table.problems + problems:
        print(f"whaleflow boxes fit: warning: {p['message']}", file=sys.stderr)
    if len(usable) < 2:
        raise DataError(f"only {len(usable)} usable boxes for photos under {args.data}.", file=args.boxes,
                        fix="list boxes for photos in that folder (Image,x0,y0,x1,y1), a hundred or more.")
    listed = photos[photos["image"].isin(usable)].sort_values("image")
    boxes = np.array([usable[im][:4] for im in listed["image"]], dtype=np.float64)
    model = fit_from_config(read_listed(listed["path"].tolist()), boxes, bc, progress=not args.quiet)
    model.save(args.out)
    m = model.metrics
    iou = f"mean IoU {m['held_out_iou']:.3f} on {m['held_out']} held-out photos" if m["held_out"] else "no held-out photos"
    iou += " (measured before the fit on all of them)" if m.get("refit") else ""
    print(f"box model: fitted on {m['trained_on']} photos in {m['seconds']:.0f} s ({m['cpu_seconds']:.0f} s of CPU); "
          f"{iou} → {args.out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..identify.photos import list_photos, photo_names
    from ..io import write_csv
    from .boxer import load_boxer

    boxer = load_boxer(args.model)
    paths = list_photos(args.photos)
    pred, skipped = boxer.predict(paths, photo_names(paths), progress=not args.quiet)
    write_csv(args.out, pred)
    for s in skipped:
        print(f"whaleflow boxes predict: skipped {s['reason']}", file=sys.stderr)
    worst = pred.nsmallest(3, "score")
    print(f"predicted {len(pred)} boxes (mean score {pred['score'].mean():.2f}; lowest: "
          + ", ".join(f"{r.Image} {r.score:.2f}" for r in worst.itertuples()) + f"), skipped {len(skipped)} → {args.out}")
    return 0


def cmd_boxes(args: argparse.Namespace) -> int:
    return {"fit": cmd_fit, "predict": cmd_predict}[args.boxes_command](args)


COMMANDS = {"boxes": cmd_boxes}
