"""The ``export`` subcommand (registered beside identify and enroll; no Ray here)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a run's catalogue (plus enrolled photos) for another tool")
    p.add_argument("run_dir", help="a finished run folder (output.dir)")
    p.add_argument("--format", required=True,
                   help="capture-history (a CSV), camtrapdp (a folder) or catalog (a folder)")
    p.add_argument("--out", required=True, help="the CSV (capture-history) or folder (camtrapdp, catalog) to write")
    p.add_argument("--dates", default=None, metavar="CSV",
                   help="image,date CSV; without it each photo's EXIF DateTimeOriginal is read")
    p.add_argument("--occasion", default="day", help="capture-history occasion: day, week, month, year or Nd (10d)")
    p.add_argument("--boxes", default=None, metavar="CSV", help="box CSV of enrolled photos (as given to enroll)")
    p.add_argument("--latitude", type=float, default=None, help="camtrapdp: the deployment's latitude (WGS84)")
    p.add_argument("--longitude", type=float, default=None, help="camtrapdp: the deployment's longitude (WGS84)")
    p.add_argument("--deployment", default="whaleflow", help="camtrapdp: the deploymentID (default whaleflow)")
    p.add_argument("--scientific-name", default="Megaptera novaeangliae", help="camtrapdp: the species")
    p.add_argument("--utc-offset", default="Z", help="camtrapdp: zone of EXIF times, e.g. -03:00 (default Z, UTC)")
    p.add_argument("--contributor", default="whaleflow user", help="camtrapdp: datapackage contributor")
    p.add_argument("--name", default="whaleflow-catalogue", help="camtrapdp: package and project name")


def cmd_export(args: argparse.Namespace) -> int:
    from ..errors import DataError
    from . import formats
    from .records import load_records

    writers = formats()
    if args.format not in writers:
        raise DataError(f"unknown export format {args.format!r}.", fix=f"use one of {', '.join(sorted(writers))}.")
    records = load_records(args.run_dir, dates=args.dates, boxes=args.boxes)
    print(writers[args.format](records, Path(args.out), args))
    return 0


COMMANDS = {"export": cmd_export}
