"""Accuracy against the peers a user has without whaleflow, on the fixed panel of sets.

    python benchmarks/accuracy.py --panel                       # every set, configs/cpu.yaml, through Ray
    python benchmarks/accuracy.py --panel --sets faces_few,wide_small --local
    python benchmarks/accuracy.py --panel --out runs/panel-b --set models.0.stages.0.size=128

The sets are :data:`panel_sets.PANEL`, fixed before any default was tuned on them; the
methods and the per-bin tables are :mod:`panel`. Each set's row lands in
``OUT/panel.json`` as soon as it is done (a rerun skips finished sets unless ``--redo``;
a run folder that is there resumes), and the tables are printed and written to
``OUT/panel.md``. A default may change only if it raises the panel's mean and lowers no
set by more than 0.01.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from panel import evaluate_run, panel_tables  # noqa: E402
from panel_sets import PANEL, make_panel_set  # noqa: E402

from whaleflow.config import load_config  # noqa: E402
from whaleflow.io import write_text  # noqa: E402


def run_whaleflow(cfg_path: str, overrides: list[str], local: bool) -> dict:
    cfg = load_config(cfg_path, overrides)
    if local:
        from whaleflow.pipeline import run_local

        return run_local(cfg, progress=False)
    from ray_jobs.pipeline import run_ray

    return run_ray(cfg)


def evaluate_set(name: str, args) -> dict:
    out = Path(args.out)
    root = make_panel_set(name, out / f"data-{name}")
    run_dir = out / f"run-{name}"
    # no duplicate look-up: it would hand the trained models answers the k-NN peers do not get
    overrides = [f"data.root={root}", f"output.dir={run_dir}", "predict.use_duplicates=false", "data.boxes=null",
                 "output.quiet=true", *args.overrides]
    t0 = time.time()
    summary = run_whaleflow(args.config, overrides, args.local)
    seconds = time.time() - t0
    return evaluate_run(run_dir, root, summary, seconds)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--panel", action="store_true", help="run the fixed panel (the only mode; kept for clarity)")
    p.add_argument("--sets", default=",".join(PANEL), help=f"a subset of: {', '.join(PANEL)}")
    p.add_argument("--config", default=str(ROOT / "configs" / "cpu.yaml"))
    p.add_argument("--out", default=str(ROOT / "runs" / "panel"))
    p.add_argument("--local", action="store_true", help="train in this process instead of through Ray")
    p.add_argument("--redo", action="store_true", help="evaluate sets already in panel.json again")
    p.add_argument("--set", dest="overrides", nargs="*", default=[])
    args = p.parse_args(argv)
    names = [s for s in args.sets.split(",") if s]
    unknown = [s for s in names if s not in PANEL]
    if unknown:
        raise SystemExit(f"unknown panel set(s) {unknown}: use {', '.join(PANEL)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done_path = out / "panel.json"
    results = json.loads(done_path.read_text()) if done_path.exists() else {}
    for name in names:
        if name in results and not args.redo:
            continue
        results[name] = evaluate_set(name, args)
        write_text(done_path, json.dumps(results, indent=1))
        print(f"[panel] {name}: ensemble {results[name]['rows']['ensemble']['test']:.3f}, peer "
              f"{results[name]['rows']['peer (best size)']['test']:.3f}, {results[name]['seconds']:.0f} s", flush=True)
    table = panel_tables({n: results[n] for n in names if n in results})
    write_text(out / "panel.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
