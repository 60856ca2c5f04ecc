"""The ``whaleflow`` command line.

It lives in the Ray layer because ``run``/``tune``/``ensemble`` launch Ray jobs; the
commands that need no cluster (``synth``, ``prepare``, ``score``, ``report``) import
only the library. Errors a user can fix print as one line (exit 2), never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO_ROOT / "configs" / "demo.yaml"


def _add_config_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--config", "-c", required=required, help="YAML config (see configs/)")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE",
                   help="dotted overrides, e.g. --set train.seed=3 data.root=/data/hwi")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")


def _add_ray_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=None, help="Ray cluster to join: 'auto' or HOST:PORT (default: a local Ray)")
    # a rerun continues an interrupted run by itself; --resume is accepted for old scripts and does the same
    p.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--local", action="store_true", help="no Ray: train the models one after another in this process")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="whaleflow", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic data set in the Kaggle HWI layout (or Happywhale's)")
    p.add_argument("out")
    p.add_argument("--individuals", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=192)
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--layout", choices=["kaggle", "happywhale"], default="kaggle",
                   help="kaggle: train.csv Image,Id with new_whale; happywhale: image,species,individual_id")
    p.add_argument("--scale", type=float, nargs=2, default=[0.55, 1.0], metavar=("LOW", "HIGH"),
                   help="the fluke's span as a fraction of the frame width (default 0.55 1.0)")
    p.add_argument("--shots", choices=["zipf", "heavy"], default="zipf",
                   help="photos per individual: zipf (the demo's) or heavy (about half have one photo)")
    p.add_argument("--test-mix", choices=["proportional", "one_per_individual"], default="proportional",
                   help="test photos in proportion to train photos, or one per known individual")
    p.add_argument("--occlusion", type=float, default=0.0, help="chance of splash bands across the fluke")
    p.add_argument("--tint", type=float, default=0.0, help="strength of a colour tint over the photo (0-1)")

    p = sub.add_parser("prepare", help="check the data, dedup, split, crop and cache it")
    _add_config_args(p)

    p = sub.add_parser("run", help="prepare + train every model + ensemble → submission.csv")
    _add_config_args(p)
    _add_ray_args(p)

    p = sub.add_parser("tune", help="train the config's models as a Ray Tune experiment")
    _add_config_args(p)
    _add_ray_args(p)

    p = sub.add_parser("ensemble", help="blend the finished trials of a run into submission.csv")
    _add_config_args(p)
    p.add_argument("--address", default=None)
    p.add_argument("--local", action="store_true")

    p = sub.add_parser("score", help="MAP@5 of a submission against an answers CSV")
    p.add_argument("submission")
    p.add_argument("answers")

    p = sub.add_parser("report", help="rebuild RUN_DIR/report/ from a run's artifacts")
    p.add_argument("run_dir")

    from whaleflow.identify.cli import add_parsers as add_identify_parsers

    add_identify_parsers(sub)

    from whaleflow.locate.cli import add_parsers as add_boxes_parsers

    add_boxes_parsers(sub)

    p = sub.add_parser("demo", help="the whole pipeline on the embedded synthetic data (CPU)")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--local", action="store_true")
    return parser


def _config(args, extra=()):
    from whaleflow.config import load_config

    overrides = list(args.overrides) + list(extra)
    if getattr(args, "quiet", False):
        overrides.append("output.quiet=true")
    if getattr(args, "address", None):
        overrides.append(f"ray.address={args.address}")
    return load_config(args.config, overrides)


def cmd_synth(args) -> int:
    from whaleflow.data.synthetic import generate_synthetic
    from whaleflow.data.synthetic_style import SynthStyle

    style = SynthStyle(scale=tuple(args.scale), shots=args.shots, test_mix=args.test_mix,
                       occlusion=args.occlusion, tint=args.tint)
    summary = generate_synthetic(args.out, individuals=args.individuals, seed=args.seed, width=args.width,
                                 height=args.height, layout=args.layout, style=style)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in summary.items() if not isinstance(v, (dict, list))))
    return 0


def cmd_prepare(args) -> int:
    from whaleflow.pipeline import run_prepare, start_run

    cfg = start_run(_config(args), progress=not args.quiet)
    run_prepare(cfg, progress=not args.quiet)
    return 0


def _run(cfg, args) -> int:
    if args.local:
        from whaleflow.pipeline import run_local

        run_local(cfg, resume=True, progress=not cfg.output.quiet)
    else:
        from .pipeline import run_ray

        run_ray(cfg, progress=not cfg.output.quiet)
    return 0


def cmd_run(args) -> int:
    return _run(_config(args), args)


def cmd_tune(args) -> int:
    from .pipeline import run_tune

    run_tune(_config(args), progress=not args.quiet)
    return 0


def cmd_ensemble(args) -> int:
    cfg = _config(args)
    if args.local:
        from whaleflow.pipeline import ENSEMBLE_STEPS, run_local

        run_local(cfg, steps=ENSEMBLE_STEPS, progress=not cfg.output.quiet)
    else:
        from .pipeline import run_ensemble_job

        run_ensemble_job(cfg, progress=not cfg.output.quiet)
    return 0


def cmd_score(args) -> int:
    from whaleflow.submission import score_submission

    print(f"MAP@5 {score_submission(args.submission, args.answers):.5f}")
    return 0


def cmd_report(args) -> int:
    from whaleflow.report import build_report
    from whaleflow.storage import NOT_MIRRORED, RunStore, is_uri

    if not is_uri(args.run_dir):
        print(f"report: {build_report(Path(args.run_dir))}")
        return 0
    store = RunStore(args.run_dir)  # a run folder in a bucket: read into this machine's copy, report pushed back
    store.check()
    for rel in ("summary.json", "config.yaml", "prepared", "trials", "ensemble"):
        store.pull(rel, exclude=NOT_MIRRORED)
    build_report(store.local)
    store.push("report")
    print(f"report: {store.uri('report/index.html')} (a local copy under {store.local})")
    return 0


def cmd_demo(args) -> int:
    from whaleflow.config import load_config

    overrides = [f"output.dir={args.out}", *args.overrides]
    if args.quiet:
        overrides.append("output.quiet=true")
    cfg = load_config(DEMO_CONFIG, overrides)
    return _run(cfg, args)


COMMANDS = {
    "synth": cmd_synth,
    "prepare": cmd_prepare,
    "run": cmd_run,
    "tune": cmd_tune,
    "ensemble": cmd_ensemble,
    "score": cmd_score,
    "report": cmd_report,
    "demo": cmd_demo,
}


def main(argv=None) -> int:
    from whaleflow.errors import WhaleflowError
    from whaleflow.identify.cli import COMMANDS as IDENTIFY_COMMANDS
    from whaleflow.locate.cli import COMMANDS as BOXES_COMMANDS

    COMMANDS.update(IDENTIFY_COMMANDS)
    COMMANDS.update(BOXES_COMMANDS)
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except WhaleflowError as exc:
        print(f"whaleflow {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        detail = f" with {exc}" if str(exc) else ""
        print(f"whaleflow {args.command}: interrupted{detail}; rerun the same command to continue (finished "
              "trials are kept, unfinished ones resume from their last checkpoint).", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
