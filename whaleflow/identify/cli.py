"""The ``identify`` and ``enroll`` subcommands (registered by ``ray_jobs.cli``; no Ray here)."""
from __future__ import annotations

import argparse


def add_parsers(sub) -> None:
    from ..export.cli import add_parser as add_export_parser

    p = sub.add_parser("identify", help="rank the catalogue's individuals for new photos with a trained run")
    p.add_argument("run_dir", help="a finished run folder (output.dir)")
    p.add_argument("photos", nargs="+", help="photo files or folders (searched recursively)")
    p.add_argument("--out", default="matches.csv", help="matches CSV (default matches.csv); matches.html beside it")
    p.add_argument("--boxes", default=None, help="box CSV to crop the photos as training photos were cropped")
    p.add_argument("--device", default="auto", help="auto (a GPU when visible), cpu or cuda")
    p.add_argument("--encounters", default=None, metavar="CSV",
                   help="image,encounter CSV: the photos of one sighting are matched together")
    p.add_argument("--encounter-gap", default=None, metavar="SECONDS",
                   help="photos whose EXIF times are at most this many seconds apart form one encounter")
    p.add_argument("--encounter-fusion", default="flat", metavar="WAY",
                   help="flat (default: the run's threshold on the encounter's mean score) or bayes (naive Bayes)")
    p.add_argument("--auto-accept-fmr", default=None, metavar="RATE",
                   help="accept without review where the calibrated false-match rate is at most RATE (e.g. 0.01)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")

    p = sub.add_parser("enroll", help="add the confirmed photos of a decisions CSV to a run's gallery")
    p.add_argument("run_dir", help="a finished run folder (output.dir)")
    p.add_argument("decisions", help="decisions.csv exported from matches.html (image,path,decision,id)")
    p.add_argument("--boxes", default=None, help="box CSV to crop the photos (as given to identify)")
    p.add_argument("--device", default="auto", help="auto (a GPU when visible), cpu or cuda")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")

    add_export_parser(sub)


def cmd_identify(args: argparse.Namespace) -> int:
    from .auto_accept import check_rate
    from .matching import identify

    rate = check_rate(args.auto_accept_fmr) if args.auto_accept_fmr is not None else None
    gap = _seconds(args.encounter_gap) if args.encounter_gap is not None else None
    m = identify(args.run_dir, args.photos, out=args.out, boxes=args.boxes, device=args.device,
                 progress=not args.quiet, encounters=args.encounters, encounter_gap=gap, auto_accept_fmr=rate,
                 encounter_fusion=args.encounter_fusion)
    for n in m.notes:
        print(f"note: {n}")
    new = int(m.frame["new_individual"].sum()) if len(m.frame) else 0
    print(f"identified {len(m.frame)} photo(s) ({new} likely new individuals), skipped {len(m.skipped)} unreadable")
    if m.encounters is not None:
        print(f"{len(m.encounters)} encounter(s), one row each; the photos' rows: {m.photos_csv}")
    if m.decisions is not None:
        units = m.units
        print(f"auto-accepted {int(units['auto_accepted'].sum())} of {len(units)} "
              f"({len(m.decisions)} photo decision(s)): {m.decisions_csv}; the rest go to review")
    print(f"matches: {m.csv}")
    print(f"review page: {m.page}")
    return 0


def _seconds(text: str) -> float:
    from ..errors import DataError

    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise DataError(f"--encounter-gap must be a positive number of seconds, not {text!r}.",
                        fix="e.g. --encounter-gap 120.")
    return value


def cmd_enroll(args: argparse.Namespace) -> int:
    from .enrolment import enroll
    from .gallery import ENROLL_LOG

    result = enroll(args.run_dir, args.decisions, boxes=args.boxes, device=args.device, progress=not args.quiet)
    print(result.summary())
    if result.added:
        print(f"log: {args.run_dir}/{ENROLL_LOG}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..export.cli import cmd_export

    return cmd_export(args)


COMMANDS = {"identify": cmd_identify, "enroll": cmd_enroll, "export": _export}
