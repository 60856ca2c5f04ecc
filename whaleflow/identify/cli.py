"""The ``identify`` and ``enroll`` subcommands (registered by ``ray_jobs.cli``; no Ray here)."""
from __future__ import annotations

import argparse


def add_parsers(sub) -> None:
    p = sub.add_parser("identify", help="rank the catalogue's individuals for new photos with a trained run")
    p.add_argument("run_dir", help="a finished run folder (output.dir)")
    p.add_argument("photos", nargs="+", help="photo files or folders (searched recursively)")
    p.add_argument("--out", default="matches.csv", help="matches CSV (default matches.csv); matches.html beside it")
    p.add_argument("--boxes", default=None, help="box CSV to crop the photos as training photos were cropped")
    p.add_argument("--device", default="auto", help="auto (a GPU when visible), cpu or cuda")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")

    p = sub.add_parser("enroll", help="add the confirmed photos of a decisions CSV to a run's gallery")
    p.add_argument("run_dir", help="a finished run folder (output.dir)")
    p.add_argument("decisions", help="decisions.csv exported from matches.html (image,path,decision,id)")
    p.add_argument("--boxes", default=None, help="box CSV to crop the photos (as given to identify)")
    p.add_argument("--device", default="auto", help="auto (a GPU when visible), cpu or cuda")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")


def cmd_identify(args: argparse.Namespace) -> int:
    from .matching import identify

    m = identify(args.run_dir, args.photos, out=args.out, boxes=args.boxes, device=args.device,
                 progress=not args.quiet)
    for n in m.notes:
        print(f"note: {n}")
    new = int(m.frame["new_individual"].sum()) if len(m.frame) else 0
    print(f"identified {len(m.frame)} photo(s) ({new} likely new individuals), skipped {len(m.skipped)} unreadable")
    print(f"matches: {m.csv}")
    print(f"review page: {m.page}")
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    from .enrolment import enroll
    from .gallery import ENROLL_LOG

    result = enroll(args.run_dir, args.decisions, boxes=args.boxes, device=args.device, progress=not args.quiet)
    print(result.summary())
    if result.added:
        print(f"log: {args.run_dir}/{ENROLL_LOG}")
    return 0


COMMANDS = {"identify": cmd_identify, "enroll": cmd_enroll}
