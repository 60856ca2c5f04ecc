"""Images/s delivered to a training step: the old synchronous path against the loader.

HWI settings: a cache at 672² read at 384 with the siamese augmentation set, and at 448
with the metric set (what `configs/hwi_*.yaml` train at).

(old) what the families did before: in the training loop, one image at a time, read the
      row from the 672 cache, resize to the stage size, flip, augment, normalise to
      float32 on the CPU (``CachedImages.batch``);
(new) :class:`whaleflow.data.loader.BatchLoader` with ``--workers`` processes reading the
      cache of the stage's own size (no resize), sending uint8 batches, normalised by the
      step (``to_device_images``; on the CPU here, on the GPU in training).

Both deliver the same batches (rows, flips) and count an image once it is a normalised
float tensor in the step's hands. Then the overlap: a fixed-duration stand-in for the
GPU step (``time.sleep``, which leaves the CPU to the workers) sized to the loader's own
time per batch, so that load ≈ compute; an epoch of the loader with that step should
take max(load, compute), not their sum: ``overlap`` = epoch / max(load, compute)
(target ≤ 1.2). Also the per-size-cache speed-up alone: one thread, siamese set at 384
read from a 384 cache vs from the 672 cache.

Rounds alternate old and new and the best round of each counts (as ``timeit``), so other
processes on a shared machine disturb the ratios less. Last line:
``train_input: speedup X.XX overlap Y.YY`` (speedup: the smaller of the two settings).

    .venv/bin/python benchmarks/train_input.py [--images 256] [--workers 2] [--rounds 3] [--passes 4]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from whaleflow.data.augment import build_augment  # noqa: E402
from whaleflow.data.cache import build_caches  # noqa: E402
from whaleflow.data.dataset import CachedImages  # noqa: E402
from whaleflow.data.loader import BatchLoader, BatchSpec, batch_seed  # noqa: E402
from whaleflow.data.synthetic import generate_synthetic  # noqa: E402
from whaleflow.engine.device import to_device_images  # noqa: E402

CPU = torch.device("cpu")
SETTINGS = (("siamese", 384, 64), ("metric", 448, 32))  # augmentation set, stage size, batch


def make_caches(folder: Path, images: int, sizes) -> dict:
    """A synthetic set of about ``images`` photos (768×480) cached at every size in one build."""
    data = folder / "data"
    if not (data / "train.csv").is_file():
        generate_synthetic(data, individuals=max(4, images // 4), seed=0, width=768, height=480)
    paths = sorted((data / "train").glob("*.jpg")) + sorted((data / "test").glob("*.jpg"))
    paths = paths[:images]
    items = pd.DataFrame({"image": [p.name for p in paths], "split": [p.parent.name for p in paths],
                          "path": [str(p) for p in paths]})
    caches = build_caches(items, folder / "cache", sizes=[(s, s) for s in sizes], workers=2, keep=len(sizes))
    return {c.shape: c.images for c in caches}


def epoch_specs(n: int, batch: int, size: int, epoch: int, passes: int = 1):
    """The batches of ``passes`` shuffled passes over ``n`` images (one "epoch" here: with a
    few hundred images a single pass is too few batches to keep two workers busy)."""
    rng = np.random.default_rng(epoch)
    order = np.concatenate([rng.permutation(n) for _ in range(passes)])
    flips = rng.random(len(order)) < 0.5
    return [BatchSpec(order[s:s + batch], flips[s:s + batch], (size, size), batch_seed(0, epoch, i),
                      np.zeros(batch, np.int64))
            for i, s in enumerate(range(0, len(order) - batch + 1, batch))]


def run_old(images: np.ndarray, augment, specs, step_s: float = 0.0) -> float:
    """Images/s of the synchronous path: each batch built in the loop, then the step."""
    ds = CachedImages(images, augment=augment)
    start = time.perf_counter()
    n = 0
    for spec in specs:
        x = to_device_images(ds.batch(spec.rows, spec.flips, spec.size), CPU)
        n += len(x)
        if step_s:
            time.sleep(step_s)
    return n / (time.perf_counter() - start)


def run_new(loader: BatchLoader, specs, step_s: float = 0.0) -> float:
    start = time.perf_counter()
    n = 0
    for pixels, _ in loader.epoch(specs):
        x = to_device_images(pixels, CPU)
        n += len(x)
        if step_s:
            time.sleep(step_s)
    return n / (time.perf_counter() - start)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--passes", type=int, default=4, help="passes over the images per timed epoch")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    result: dict = {"images": args.images, "workers": args.workers, "rounds": args.rounds,
                    "load_average": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        caches = make_caches(Path(tmp), args.images, [672, 448, 384])
        n = len(caches[(672, 672)])
        result["cache_build_s"] = round(time.perf_counter() - t, 1)
        print(f"{n} images cached at 672, 448, 384 in {result['cache_build_s']} s; load average "
              f"{result['load_average']:.1f}; best of {args.rounds} rounds")
        speedups, overlap = [], None
        for name, size, batch in SETTINGS:
            augment = build_augment(name, seed=0)
            loader = BatchLoader({(size, size): caches[(size, size)]}, build_augment(name, seed=0),
                                 workers=args.workers, prefetch=4)
            run_new(loader, epoch_specs(n, batch, size, 99)[:2 * max(1, args.workers)])  # start the workers
            old = new = 0.0
            for r in range(args.rounds):
                specs = epoch_specs(n, batch, size, r, args.passes)
                old = max(old, run_old(caches[(672, 672)], augment, specs))
                new = max(new, run_new(loader, specs))
            speedups.append(new / old)
            result[name] = {"size": size, "batch": batch, "old_sync_672_cache_per_s": round(old, 1),
                            f"new_{args.workers}_workers_own_cache_per_s": round(new, 1),
                            "speedup": round(new / old, 2)}
            print(f"[{name} at {size}] old, synchronous, 672 cache : {old:8.1f} images/s")
            print(f"[{name} at {size}] new, {args.workers} workers, {size} cache  : {new:8.1f} images/s"
                  f"   ({new / old:.2f}×)")
            if name == "siamese":  # the overlap, on the setting a GPU step is fastest on
                specs = epoch_specs(n, batch, size, 7, args.passes)
                load_s = len(specs) * batch / new        # the loader alone, per epoch
                step_s = load_s / len(specs)             # a step as long as a batch takes to load
                compute_s = step_s * len(specs)
                t = time.perf_counter()
                run_new(loader, specs, step_s=step_s)
                epoch_s = time.perf_counter() - t
                overlap = epoch_s / max(load_s, compute_s)
                result["overlap"] = {"load_s": round(load_s, 3), "compute_s": round(compute_s, 3),
                                     "epoch_s": round(epoch_s, 3), "sum_s": round(load_s + compute_s, 3),
                                     "ratio": round(overlap, 2)}
                print(f"[overlap] load {load_s:.2f} s + stand-in GPU step {compute_s:.2f} s: epoch {epoch_s:.2f} s "
                      f"= {overlap:.2f} × max (the sum would be {(load_s + compute_s) / max(load_s, compute_s):.2f} ×)")
            loader.close()
        # the per-size cache alone: one thread, no workers
        augment = build_augment("siamese", seed=0)
        from_672 = from_384 = 0.0
        for r in range(args.rounds):
            specs = epoch_specs(n, 64, 384, r, args.passes)
            from_672 = max(from_672, run_old(caches[(672, 672)], augment, specs))
            from_384 = max(from_384, run_old(caches[(384, 384)], augment, specs))
        result["per_size_cache"] = {"siamese_384_from_672_per_s": round(from_672, 1),
                                    "siamese_384_from_384_per_s": round(from_384, 1),
                                    "speedup": round(from_384 / from_672, 2)}
        print(f"[per-size cache] siamese at 384, 1 thread: from the 672 cache {from_672:.1f} images/s, "
              f"from a 384 cache {from_384:.1f} images/s ({from_384 / from_672:.2f}×)")
    speedup = min(speedups)
    result.update(speedup=round(speedup, 2), load_average_end=os.getloadavg()[0])
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"load average at the end {result['load_average_end']:.1f}")
    print(f"train_input: speedup {speedup:.2f} overlap {overlap:.2f}")
    return result


if __name__ == "__main__":
    main()
