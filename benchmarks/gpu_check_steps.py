"""The project's own hot paths for ``gpu_check.py``: training step, mining round, validation step.

* **train pipeline**: a synthetic set of about ``photos`` photos prepared by the
  project (``run_prepare``: dedup, split, crops, cache), then one epoch of the real
  task (``build_task`` → ``train_epoch``: sampler, loader, augmentation, step) for a
  siamese resnet50 at 384 and a metric resnet50 at 448, against the bare model and
  loss of the same task on batches already on the device (the ceiling). Images are
  counted by a forward hook on the backbone. Target: real ≥ 80 % of bare.
* **mining round** at N = 15,697 with the HWI head ``PairHead(2048, [512, 128])``:
  ``score_candidates`` on the device (each unordered pair once, bf16/TF32, top-k
  kept there; σ = 2) + the sparse LAP on the host; the old all-ordered-pairs fp32
  scoring is timed on a slice of rows and scaled. Check: bytes sent ≤ N·k·8;
  candidate logits match fp32 ``score_pairs``.
* **validation step** at 3,000 queries × 5,004 classes: centroid scores from device
  embeddings (the metric family's path) and ``tune_threshold``, against the old grid
  sweep; check: the exhaustive sweep's threshold and MAP@5.
"""
from __future__ import annotations

import collections
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _row(*args, **kwargs):
    from gpu_check import Row

    return Row(*args, **kwargs)


# ---------------------------------------------------------------- train pipeline
def _prepared(root: Path, photos: int, cache: int, small: bool):
    from whaleflow.config import load_config
    from whaleflow.data.synthetic import generate_synthetic
    from whaleflow.pipeline import run_prepare

    individuals = max(20, photos // 5)
    side = 64 if small else 512
    counts = generate_synthetic(root / "data", individuals=individuals, seed=5, width=side * 3 // 2, height=side)
    cfg = load_config("configs/demo.yaml", [f"data.root={root / 'data'}", f"output.dir={root / 'run'}",
                                            "output.quiet=true", f"prepare.cache_size={cache}"])
    return cfg, run_prepare(cfg, progress=False), counts


def _time_real(task, stage, epochs: int = 1) -> tuple[float, int]:
    model = task.model["backbone"] if isinstance(task.model, torch.nn.ModuleDict) else task.model
    seen = [0]
    hook = model.register_forward_hook(lambda m, i, o: seen.__setitem__(0, seen[0] + int(i[0].shape[0])))
    task.setup_stage(stage, fresh=True)
    try:
        task.train_epoch(0)  # warm-up: workers, cudnn autotune, first allocations
        seen[0] = 0
        _sync(task.device)
        t = time.perf_counter()
        for e in range(1, 1 + epochs):
            task.train_epoch(e)
        _sync(task.device)
        return time.perf_counter() - t, seen[0]
    finally:
        hook.remove()


def _time_bare(task, family: str, size: int, batch: int, steps: int) -> float:
    """The same model, loss and optimizer on random device batches: the step alone (images/s)."""
    from whaleflow.engine.device import autocast, to_device_images

    dev = task.device
    x = to_device_images(torch.rand(batch, 1, size, size), dev)  # on the device before the clock starts
    y = torch.arange(batch, device=dev) // 4
    task.model.train()

    def step():
        with autocast(dev):
            if family == "siamese":
                f = task.model["backbone"](x).float()
                a, b = f.chunk(2)
                loss = task.loss(task.model["head"](a, b).float(), (torch.arange(len(a), device=dev) % 2).float())
            else:
                loss = task.loss(task.model(x).float(), y)
        task.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        task.optimizer.step()

    step()
    _sync(dev)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(dev)
    return batch * steps / (time.perf_counter() - t)


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def check_pipeline(small: bool, device: torch.device) -> list:
    """Real training step (the project's loader and all) vs the bare model, siamese 384 / metric 448."""
    import dataclasses

    from whaleflow.config import StageConfig
    from whaleflow.training import build_task

    photos = 60 if small else 5000
    sizes = (32, 32) if small else (384, 448)
    backbone = "wf_compactnet" if small else "resnet50"
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        t0 = time.perf_counter()
        cfg, prepared, counts = _prepared(Path(tmp), photos, max(sizes), small)
        n_photos = len(prepared.index)
        prep_s = time.perf_counter() - t0
        cfg = cfg.replace(train=dataclasses.replace(cfg.train, device=device.type))
        for family, size, batch in (("siamese", sizes[0], 32), ("metric", sizes[1], 32)):
            base = next(m for m in cfg.models if m.family == family)
            stage = StageConfig(size=size, epochs=2, lr=1e-4)
            m = dataclasses.replace(base, backbone=backbone, batch_size=batch, stages=[stage])
            if family == "siamese":
                m = m.with_sections(mining=dataclasses.replace(base.mining, solver="none"))
            task = build_task(cfg, m, prepared)
            secs, seen = _time_real(task, stage)
            real = seen / secs
            pair = 2 if family == "siamese" else 1
            bare = _time_bare(task, family, size, batch * pair, 2 if small else 20)
            ratio = real / bare
            rows.append(_row("train pipeline", f"{family} {backbone} {size}² b{batch * pair}, {len(task.splits['train'].rows)} "
                             f"train photos (prepare {prep_s:.0f} s)", f"{real:,.0f} img/s", secs, float("nan"),
                             f"bare model {bare:,.0f} img/s; real/bare {ratio:.0%}"
                             + ("" if small or ratio >= 0.8 else " (below the 80 % target)"),
                             {"real_img_s": real, "bare_img_s": bare, "ratio": ratio, "photos": n_photos}))
            del task
    return rows


# ---------------------------------------------------------------- mining round
def check_mining(small: bool, device: torch.device) -> list:
    sys.path.insert(0, str(Path(__file__).parent))
    from lap_mining import HWI_N, simulate_hwi
    from mining_round import LegacyHead

    from whaleflow.mining import LapMiner, NoiseSchedule, score_blocks, score_candidates, score_pairs
    from whaleflow.models.pair_head import PairHead

    n, dim, hidden, k = (300, 64, (32, 16), 20) if small else (HWI_N, 2048, (512, 128), 50)
    torch.manual_seed(0)
    _, labels = simulate_hwi(n, 8, 0)
    feats = torch.randn(n, dim, device=device).relu_()
    head = PairHead(dim, hidden=hidden).to(device).eval()
    miner = LapMiner("sparse", k=k, noise=NoiseSchedule(2.0, 2.0, 0, floor=2.0), logits=True)
    _sync(device)
    t = time.perf_counter()
    cand = score_candidates(feats, head, k=k, neg_labels=labels, labels=labels, noise=2.0, seed=0,
                            block_size=4096 if device.type == "cuda" else 1024)
    _sync(device)
    score_s = time.perf_counter() - t
    t = time.perf_counter()
    pairs = miner.mine(cand, labels, 0, rng=0)
    solve_s = time.perf_counter() - t
    ok = cand.idx[:256, 0] >= 0
    ref = score_pairs(feats, head, np.arange(256)[ok], cand.idx[:256, 0][ok].astype(np.int64))
    err = float(np.abs(ref - cand.clean[:256, 0][ok].astype(np.float32)).max())
    rows = [_row(f"mining round N={n:,}", f"new: score_candidates (upper triangle, bf16) + sparse LAP, k={k}",
                 f"{n * n / score_s / 1e6:,.1f} M pairs/s", score_s + solve_s, float("nan"),
                 f"score {score_s:.1f} s + solve {solve_s:.1f} s; {cand.nbytes:,} B sent ≤ N·k·8 {n * k * 8:,}: "
                 f"{cand.nbytes <= n * k * 8}; |bf16 − fp32| {err:.3f}; {len(pairs.neg_a)} negatives",
                 {"score_s": score_s, "solve_s": solve_s, "bytes": cand.nbytes})]
    m = min(n, 1024)
    _sync(device)
    t = time.perf_counter()
    collections.deque(score_blocks(feats[:m], feats, LegacyHead(head), block_size=m, transform=None),
                      maxlen=0)  # score every block, keep none: only the time counts
    _sync(device)
    old_s = (time.perf_counter() - t) * n / m
    rows.append(_row(f"mining round N={n:,}", f"old: every ordered pair fp32, N×N to the host ({m} rows, scaled)",
                     f"{n * n / old_s / 1e6:,.1f} M pairs/s", old_s, float("nan"),
                     f"scoring new vs old ×{old_s / score_s:.1f}; old sends {n * n * 4:,} B",
                     {"score_s": old_s}))
    return rows


# ---------------------------------------------------------------- validation step
def check_validation(small: bool, device: torch.device) -> list:
    sys.path.insert(0, str(Path(__file__).parent))
    from threshold_sweep import problem

    from whaleflow.inference import centroid_scores, class_centroids
    from whaleflow.inference.topk import threshold_curve, tune_threshold

    q, c, g, d = (300, 500, 1500, 64) if small else (3000, 5004, 15_697, 512)
    rng = np.random.default_rng(0)
    gal = torch.nn.functional.normalize(torch.randn(g, d, device=device), dim=1)
    g_labels = np.concatenate([np.arange(c), rng.integers(0, c, g - c)])
    qe = torch.nn.functional.normalize(torch.randn(q, d, device=device), dim=1)
    _sync(device)
    t = time.perf_counter()
    cent = class_centroids(gal.cpu().numpy(), g_labels, c)
    scores = centroid_scores(qe.cpu().numpy(), cent)
    score_s = time.perf_counter() - t
    sc, truth = problem(q, c)
    t = time.perf_counter()
    thr, value = tune_threshold(sc, truth)
    exact_s = time.perf_counter() - t
    t = time.perf_counter()
    ts, vals = threshold_curve(sc, truth)
    grid_s = time.perf_counter() - t
    from threshold_sweep import run as sweep_run

    ex = sweep_run(q, c, repeat=1, exhaustive=True)
    return [_row(f"validation {q:,}×{c:,}", "centroid scores + exact tune_threshold",
                 f"{q / (score_s + exact_s):,.0f} queries/s", score_s + exact_s, float("nan"),
                 f"scores {score_s:.2f} s ({scores.shape}); threshold {exact_s:.2f} s vs old grid {grid_s:.1f} s "
                 f"(×{grid_s / exact_s:.0f}); = exhaustive: {ex['exhaustive_match']}"
                 + ("" if ex["exhaustive_match"] else " MISMATCH"),
                 {"score_s": score_s, "exact_s": exact_s, "grid_s": grid_s, "map5": value, "threshold": thr})]
