"""Does LAP hard-example mining help? The siamese model alone, mining against random pairs.

Both arms train the same siamese model (``--config``'s ``--model``, default the
demo's ``siamese_compact``) on the same prepared split of a ``whaleflow synth`` set
(default 200 individuals, data seed 7: the demo uses 100 individuals and seed 0),
with the same training seeds, stages and epochs; they differ only in
``mining.solver``: the config's miner (``mining``) or ``none`` (``random``: random
pairs every epoch, the miner is never built). Before the first mining round the two
arms are the same run, so the difference is what mining did. For each training seed
it prints validation MAP@5 (new_whale threshold tuned on validation, best epoch's
weights, as a trial exports them) and test MAP@5 (that threshold, against the
synthetic ``answers.csv``), and mining − random. Finished trials with unchanged
settings are reused (delete ``--out`` to retrain everything).

Usage (one free core, ~27 minutes at the defaults: ~6–7 min per run)::

    taskset -c 1 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        python benchmarks/mining_ablation.py --out runs/mining_ablation

The measurement of issue 11 (400 individuals, ~15 min per run; one core per arm, run the
arms side by side with ``--arms mining`` / ``--arms random`` under ``taskset -c 0`` / ``1``)::

    python benchmarks/mining_ablation.py --out runs/abl400 --individuals 400 --data-seed 11 --seeds 1 2

gave mining − random test MAP@5 +0.032 (seed 1) and +0.034 (seed 2) with ``random_share: 0.5``
(+0.027 / +0.028 with 0.2). Also tried and dropped: keeping the previous round's negatives
in the pool, +0.018 / +0.064 with 0.2 and +0.024 / +0.058 with 0.5 (not better on every seed). A variant of both arms::

    python benchmarks/mining_ablation.py --seeds 1 --set mining.random_share=0.3 mining.every=1
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_STAGES = "[{size: 48, epochs: 16, lr: 0.001}, {size: 56, epochs: 8, lr: 0.0005}]"
DEFAULT_MINING = "{solver: dense, start: 4, every: 1, random_share: 0.5, mirror_negatives: false}"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/mining_ablation", help="run folder (data, prepared cache, trials)")
    p.add_argument("--individuals", type=int, default=200)
    p.add_argument("--data-seed", type=int, default=7, help="synthetic data seed (the demo uses 0)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="training seeds")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--config", default=str(ROOT / "configs" / "demo.yaml"))
    p.add_argument("--model", default="siamese_compact", help="the siamese model of --config")
    p.add_argument("--stages", default=DEFAULT_STAGES, help="YAML list of stages (same for both arms)")
    p.add_argument("--mining", default=DEFAULT_MINING, help="YAML mapping: the mining arm's mining section")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="overrides of the model for both arms, e.g. mining.random_share=0.3 batch_size=32")
    p.add_argument("--arms", nargs="+", default=["mining", "random"], choices=["mining", "random"])
    return p.parse_args(argv)


def build_configs(args):
    """(run Config, {arm: ModelConfig}) — the arms differ only in their mining section."""
    from whaleflow.config import ModelConfig, apply_override, from_dict, load_config, to_dict

    data = Path(args.out) / f"data-synth-{args.individuals}-{args.data_seed}"
    cfg = load_config(args.config, [f"data.root={data}", f"output.dir={args.out}", "output.quiet=true",
                                    "data.boxes=boxes.csv"])
    model = next((m for m in cfg.models if m.name == args.model), None)
    if model is None or model.family != "siamese":
        raise SystemExit(f"{args.config} has no siamese model named {args.model!r}")
    raw = to_dict(model)
    for item in [f"stages={args.stages}", f"mining={args.mining}", *args.overrides]:
        apply_override(raw, item)
    mined = from_dict(ModelConfig, raw, where=f"{args.model} (ablation)")
    if mined.mining.solver == "none":
        raise SystemExit("the mining arm needs a solver (dense or sparse)")
    arms = {"mining": mined, "random": mined.with_sections(mining=from_dict(type(mined.mining), {"solver": "none"}))}
    cfg = cfg.replace(models=[mined])
    return cfg, {a: arms[a] for a in args.arms}


def test_map5(trial_dir: Path, answers: Path, threshold: float) -> tuple[float, float]:
    """MAP@5 of the exported test scores against the synthetic answers, new_whale at
    ``threshold``; and the ranking alone: MAP@5 of the known test queries with no new_whale
    (no threshold in it, so it shows what the pairs taught the network with less noise)."""
    from whaleflow.inference import ClassScores
    from whaleflow.inference.topk import predict_labels
    from whaleflow.labels import NEW_WHALE
    from whaleflow.metrics import map_at_k
    from whaleflow.submission import read_answers

    cs = ClassScores.load(trial_dir / "scores_test.npz")
    truth = read_answers(answers)
    pred = dict(zip(cs.images, predict_labels(cs.scores, cs.classes, threshold)))
    images = [i for i in truth if i in pred]
    ranked = dict(zip(cs.images, predict_labels(cs.scores, cs.classes, float("-inf"))))
    known = [i for i in images if truth[i] != NEW_WHALE and truth[i] in set(cs.classes)]
    return (map_at_k([pred[i] for i in images], [truth[i] for i in images]),
            map_at_k([ranked[i] for i in known], [truth[i] for i in known]))


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.threads))
    from whaleflow.data.synthetic import generate_synthetic
    from whaleflow.pipeline import run_prepare
    from whaleflow.training import train_model

    cfg, arms = build_configs(args)
    root = Path(cfg.data.root)
    if not (root / "train.csv").exists():
        generate_synthetic(root, individuals=args.individuals, seed=args.data_seed)
    prepared = run_prepare(cfg, progress=False)
    out = Path(args.out)
    results = []
    for seed in args.seeds:
        run_cfg = cfg.replace(train=dataclasses.replace(cfg.train, seed=seed))
        for arm, model in arms.items():
            trial = out / "trials" / f"{arm}-seed{seed}"
            t0 = time.time()
            res = train_model(run_cfg, model, prepared, trial, progress=False)
            test, ranking = test_map5(trial, root / "answers.csv", res["threshold"])
            row = {"seed": seed, "arm": arm, "val_map5": res["val_map5"], "test_map5": test,
                   "test_known_map5": ranking,
                   "best_epoch": res["best_epoch"], "train_seconds": res["seconds"],
                   "wall_seconds": time.time() - t0}
            results.append(row)
            print(json.dumps(row), flush=True)
    (out / "ablation.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    print_table(results)
    return 0


def print_table(results) -> None:
    by = {(r["seed"], r["arm"]): r for r in results}
    print(f"\n{'seed':>4}  {'arm':<7} {'val MAP@5':>9} {'test MAP@5':>10} {'test known':>10} {'best ep':>7} "
          f"{'train s':>8}")
    for r in results:
        print(f"{r['seed']:>4}  {r['arm']:<7} {r['val_map5']:>9.4f} {r['test_map5']:>10.4f} "
              f"{r.get('test_known_map5', float('nan')):>10.4f} {r['best_epoch'] + 1:>7} {r['train_seconds']:>8.0f}")
    for seed in sorted({r["seed"] for r in results}):
        m, n = by.get((seed, "mining")), by.get((seed, "random"))
        if m and n:
            print(f"seed {seed}: mining − random  val {m['val_map5'] - n['val_map5']:+.4f}  "
                  f"test {m['test_map5'] - n['test_map5']:+.4f}  "
                  f"test known {m.get('test_known_map5', 0) - n.get('test_known_map5', 0):+.4f}")


if __name__ == "__main__":
    sys.exit(main())
