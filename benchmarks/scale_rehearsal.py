"""The real commands at growing fractions of HWI size: seconds, memory and disk per phase, and how each grows.

HWI holds 25,361 train + 7,960 test photos of 5,004 individuals. At each fraction ``f`` of
``--sizes`` this writes ``whaleflow synth --individuals round(5600·f)`` (the generator gives
6.19 photos per individual on average, so f = 1 is about 34,700 photos (≥ HWI's 33,321 with
room for the draw's spread) of 5,600 ≥ 5,004 individuals, at a small
frame), then runs, each as its own ``whaleflow`` process:

    prepare    hashing, the duplicate graph, the split, the crop/grey cache
    tune       one tiny model per family through Ray Tune (one epoch at 32 px; the siamese one
               with ``mining.solver: sparse`` and one mining round at its N, submitted before
               its first epoch and trained on in a second, so the round is used and timed),
               with validation, test scores and export
    ensemble   the blend with the classifier on embeddings, the submission, summary and report
    ensemble_blend  the same command again: the classifier is reused (its inputs are unchanged)
               and the Optuna study starts afresh, so ensemble − ensemble_blend is the classifier
    report     ``whaleflow report`` alone (its page and galleries)
    identify   ``--identify`` (1,000) photos of other individuals against the grown catalogue
    enroll     ``--enroll`` (100) of them, half accepted as their first match, half as new

Per phase: wall seconds, peak memory of the process tree (the sum of every descendant's
proportional set size, PSS, sampled from /proc twice a second: Ray's workers and shared object
store are counted once, not once per process) and the disk the phase wrote. Between sizes, the
growth exponent is the least-squares slope of log(seconds) and log(memory) on log(photos).
Fixed costs (Python and torch imports, starting Ray) flatten the slope at small sizes, so the
slope between the two largest sizes is shown too. Score files use the top-K format at every
size (``predict.store_topk_above: 200``): HWI's 5,004 individuals are above the default 2,000,
so small runs take the path a full run takes.

The last line is ``scale_rehearsal: photos N exponent_max X peak_rss_gb Y`` (N at the largest
size, X the largest time or memory exponent over the phases not in ``KNOWN_SUPERLINEAR``, Y the
largest peak of any phase). This machine is shared: run it niced, alone.

    python benchmarks/scale_rehearsal.py                          # 1/4, 1/2 and full HWI size
    python benchmarks/scale_rehearsal.py --sizes 0.0625,0.125,0.25 --out runs/scale
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from proc_tree import run_phase

HWI_INDIVIDUALS = 5600  # see the docstring: HWI's photo count at f = 1
PHASES = ("synth", "prepare", "tune", "ensemble", "ensemble_blend", "report", "identify", "enroll")
#: phases whose algorithm grows faster than linearly by design, shown but not in exponent_max
KNOWN_SUPERLINEAR = {
    "ensemble": "its classifier on embeddings trains a softmax over all C individuals on N photos, "
                "N·C; ensemble_blend is the rest of the command and counts",
}

CONFIG = """\
# scale_rehearsal: one tiny model per family, one epoch at 32 px, CPU
data: {{root: {root}, boxes: boxes.csv}}
prepare: {{val_fraction: 0.15, new_whale_val_fraction: 0.28}}
train: {{seed: 0, device: cpu, eval_every: 1}}
predict: {{flip_tta: true, store_topk_above: 200}}
models:
  - {{name: siamese_tiny, family: siamese, backbone: wf_compactnet, head_layers: [32, 16], batch_size: 64,
     augment: siamese, mining: {{solver: sparse, start: 0, every: 2, k: 50, prefilter: 200}},
     stages: [{{size: 32, epochs: 2, lr: 0.001}}]}}
  - {{name: metric_tiny, family: metric, backbone: wf_compactnet, embedding_dim: 64, batch_size: 64,
     p_individuals: 16, k_images: 4, augment: metric, stages: [{{size: 32, epochs: 1, lr: 0.001}}]}}
  - {{name: arcface_tiny, family: arcface, backbone: wf_compactnet, embedding_dim: 64, batch_size: 64,
     augment: metric, stages: [{{size: 32, epochs: 1, lr: 0.001}}]}}
ensemble: {{trials: 20, folds: 3, outer_folds: 3, classifier: {{enabled: true, pca_dim: 32, hidden: 128, epochs: 50}}}}
ray: {{gpus_per_trial: 0, cpus_per_trial: 1, max_concurrent_trials: 1}}
output: {{dir: {run}, quiet: true}}
"""


def disk(*paths: Path) -> int:
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total


def new_photos(base: Path, n: int, width: int, height: int, wf: list[str]) -> tuple[Path, Path]:
    """``n`` photos of individuals no rehearsal set holds (another seed), copied into one folder."""
    src, dst = base / "new_src", base / "new_photos"
    if not (dst / "boxes.csv").exists():
        run_phase([*wf, "synth", str(src), "--individuals", str(n // 3 + 20), "--seed", "977",
                   "--width", str(width), "--height", str(height)], base / "new_src.log")
        files = sorted((src / "train").glob("*")) + sorted((src / "test").glob("*"))
        if len(files) < n:
            raise SystemExit(f"scale_rehearsal: only {len(files)} new photos generated, {n} asked")
        dst.mkdir(parents=True, exist_ok=True)
        for f in files[:n]:
            shutil.copy(f, dst / f.name)
        shutil.copy(src / "boxes.csv", dst / "boxes.csv")
    return dst, dst / "boxes.csv"


def decisions(matches: Path, out: Path, n: int) -> None:
    """The first ``n`` identified photos: even rows accepted as their best known match, odd ones new."""
    m = pd.read_csv(matches).head(n)
    rows = []
    for i, rec in enumerate(m.itertuples()):
        known = [p for p in str(rec.predictions).split() if p not in ("new_whale", "new_individual")]
        if i % 2 == 0 and known:
            rows.append((rec.image, rec.path, "accept", known[0]))
        else:
            rows.append((rec.image, rec.path, "new", f"rehearsal_new_{i:04d}"))
    pd.DataFrame(rows, columns=["image", "path", "decision", "id"]).to_csv(out, index=False)


def rehearse(frac: float, base: Path, args, wf: list[str]) -> dict:
    """Every phase at one fraction of HWI; a dict of photos and per-phase seconds/memory/disk."""
    d = base / f"f{frac:g}"
    data, run = d / "data", d / "run"
    if run.exists():
        shutil.rmtree(run)  # a rerun measures from scratch (the data set is kept: it is seeded)
    if data.exists() and not (data / "train.csv").exists():
        shutil.rmtree(data)  # a generation cut short
    d.mkdir(parents=True, exist_ok=True)
    cfg = d / "config.yaml"
    cfg.write_text(CONFIG.format(root=data.resolve(), run=run.resolve()))
    photos_dir, boxes = new_photos(base, args.identify, args.width, args.height, wf)
    res: dict = {"fraction": frac, "individuals": round(HWI_INDIVIDUALS * frac)}
    steps = {
        "synth": ([*wf, "synth", str(data), "--individuals", str(res["individuals"]), "--width", str(args.width),
                   "--height", str(args.height)], [data]),
        "prepare": ([*wf, "prepare", "--config", str(cfg), "--quiet"], [run / "prepared"]),
        "tune": ([*wf, "tune", "--config", str(cfg), "--quiet"], [run / "trials"]),
        "ensemble": ([*wf, "ensemble", "--config", str(cfg), "--local", "--quiet"],
                     [run / "ensemble", run / "trials" / "classifier", run / "submission.csv", run / "report"]),
        "ensemble_blend": ([*wf, "ensemble", "--config", str(cfg), "--local", "--quiet"], [run / "ensemble"]),
        "report": ([*wf, "report", str(run)], [run / "report"]),
        "identify": ([*wf, "identify", str(run), str(photos_dir), "--out", str(d / "matches.csv"), "--boxes",
                      str(boxes), "--device", "cpu", "--quiet"], [d / "matches.csv", d / "matches.html"]),
        "enroll": ([*wf, "enroll", str(run), str(d / "decisions.csv"), "--boxes", str(boxes), "--device", "cpu",
                    "--quiet"], [run / "gallery"]),
    }
    for phase in PHASES:
        if phase == "synth" and (data / "train.csv").exists():
            cmd, outs = None, steps[phase][1]
            prev = json.loads((d / "result.json").read_text())["phases"]["synth"] if (d / "result.json").exists() \
                else {"seconds": float("nan"), "cpu_seconds": float("nan"), "peak_bytes": 0}
        else:
            cmd, outs = steps[phase]
        if phase == "ensemble_blend":  # the same blend again, its classifier reused: ensemble − this = classifier
            (run / "ensemble" / "optuna.db").unlink()
        if phase == "enroll":
            decisions(d / "matches.csv", d / "decisions.csv", args.enroll)
        if cmd is not None:
            prev = run_phase(cmd, d / f"{phase}.log", args.threads)
        res.setdefault("phases", {})[phase] = dict(prev, disk_bytes=disk(*outs))
        if phase == "synth":
            res["photos"] = int(sum(1 for p in (data / "train").iterdir()) + sum(1 for p in (data / "test").iterdir()))
        p = res["phases"][phase]
        print(f"  f={frac:g} {phase:9s} {p['seconds']:8.1f} s wall {p['cpu_seconds']:8.1f} s CPU "
              f"{p['peak_bytes'] / 2**30:6.2f} GB {p['disk_bytes'] / 2**20:8.1f} MB", flush=True)
    res["phases"].update(trial_rows(run / "trials"))
    (d / "result.json").write_text(json.dumps(res, indent=1, default=str))
    return res


def trial_rows(trials: Path) -> dict[str, dict]:
    """Inside ``tune``, from each trial's own files: its wall seconds (``result.json``: build,
    epochs, validation, test scores, export) and the siamese mining solve (``metrics.csv``).
    Wall only (CPU and memory are the phase's), so not in exponent_max."""
    nan = float("nan")
    out = {}
    for t in sorted(trials.iterdir()):
        if (t / "result.json").exists() and t.name != "classifier":
            out[f"tune:{t.name}"] = {"seconds": json.loads((t / "result.json").read_text())["seconds"]}
            m = pd.read_csv(t / "metrics.csv")
            if "mining_seconds" in m and m["mining_seconds"].notna().any():
                out[f"tune:{t.name} mining solve"] = {"seconds": float(m["mining_seconds"].max())}
    return {k: dict(cpu_seconds=nan, peak_bytes=nan, disk_bytes=nan, **v) for k, v in out.items()}


def slope(x, y) -> float:
    """Least-squares slope of log y on log x (nan with fewer than two usable points)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0) & np.isfinite(y)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def table(results: list[dict]) -> tuple[str, float, list[dict]]:
    """The markdown table, the largest exponent outside KNOWN_SUPERLINEAR, and per-phase fits.

    Exponents of CPU seconds count (wall time on a shared machine follows its load); wall
    seconds' exponent is shown beside them."""
    n = [r["photos"] for r in results]
    head = " | ".join(f"{r['photos']:,} photos: wall s / CPU s / GB / MB" for r in results)
    lines = [f"| phase | {head} | CPU exp. (fit, last pair) | wall exp. | memory exp. | disk exp. |",
             "|---" * (5 + len(results)) + "|"]
    worst, fits = 0.0, []
    for phase in results[-1]["phases"]:
        ph = [r["phases"].get(phase, {"seconds": float("nan"), "cpu_seconds": float("nan"),
                                      "peak_bytes": float("nan"), "disk_bytes": float("nan")}) for r in results]
        sec, cpu, mem, dsk = ([p[k] for p in ph] for k in ("seconds", "cpu_seconds", "peak_bytes", "disk_bytes"))
        e_c, e_w, e_m, e_d = slope(n, cpu), slope(n, sec), slope(n, mem), slope(n, dsk)
        last = slope(n[-2:], cpu[-2:]) if len(n) > 1 else float("nan")
        cells = " | ".join(f"{s:.0f} / {c:.0f} / {m / 2**30:.2f} / {b / 2**20:.0f}"
                           for s, c, m, b in zip(sec, cpu, mem, dsk))
        name = phase + (f" ({KNOWN_SUPERLINEAR[phase]})" if phase in KNOWN_SUPERLINEAR else "")
        lines.append(f"| {name} | {cells} | {e_c:.2f}, {last:.2f} | {e_w:.2f} | {e_m:.2f} | {e_d:.2f} |")
        fits.append(dict(phase=phase, photos=n, seconds=sec, cpu_seconds=cpu, peak_bytes=mem, disk_bytes=dsk,
                         cpu_exp=e_c, cpu_exp_last=last, wall_exp=e_w, mem_exp=e_m, disk_exp=e_d))
        if phase not in KNOWN_SUPERLINEAR and phase != "synth" and ":" not in phase:
            worst = max([worst] + [e for e in (e_c, last, e_m) if np.isfinite(e)])
    return "\n".join(lines), worst, fits


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="0.25,0.5,1", help="fractions of HWI size (f × 5,600 individuals)")
    ap.add_argument("--out", default="runs/scale_rehearsal")
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--identify", type=int, default=1000, help="new photos identify ranks")
    ap.add_argument("--enroll", type=int, default=100, help="of those, photos enroll adds")
    ap.add_argument("--threads", type=int, default=0,
                    help="OMP/MKL threads per command (0: their default; 1 on a shared, loaded machine)")
    ap.add_argument("--table-only", action="store_true", help="no runs: the table from each size's result.json")
    args = ap.parse_args()
    base = Path(args.out).resolve()
    base.mkdir(parents=True, exist_ok=True)
    wf = [sys.executable, "-m", "ray_jobs.cli"]
    t0 = time.perf_counter()
    results = []
    for frac in sorted(float(s) for s in args.sizes.split(",")):
        if args.table_only:
            results.append(json.loads((base / f"f{frac:g}" / "result.json").read_text()))
            continue
        print(f"f={frac:g}: {round(HWI_INDIVIDUALS * frac)} individuals", flush=True)
        results.append(rehearse(frac, base, args, wf))
    text, worst, fits = table(results)
    (base / "fits.json").write_text(json.dumps(fits, indent=1))
    print(text)
    if KNOWN_SUPERLINEAR:
        print("left out of exponent_max: " + "; ".join(f"{k}: {v}" for k, v in KNOWN_SUPERLINEAR.items()))
    print(f"whole rehearsal {time.perf_counter() - t0:.0f} s; fits in {base / 'fits.json'}")
    peak = max(p["peak_bytes"] for r in results for k, p in r["phases"].items() if ":" not in k)
    print(f"scale_rehearsal: photos {results[-1]['photos']} exponent_max {worst:.2f} peak_rss_gb {peak / 2**30:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
