"""Images/s delivered to a training step: the old synchronous path against the loader.

HWI settings: a cache at 672² read at 384 with the siamese augmentation set, and at 448
with the metric set (what `configs/hwi_*.yaml` train at).

(old) what the families did before: in the training loop, one image at a time, read the
      row from the 672 cache, resize to the stage size, flip, augment, normalise to
      float32 on the CPU (``CachedImages.batch``);
(new) :class:`whaleflow.data.loader.BatchLoader` with ``--workers`` processes reading the
      cache of the stage's own size (no resize: part 2's per-size caches), flipping and
      augmenting, and handing the step a uint8 batch.

Both build the same batches (rows, flips, augmentation set). An image counts once it is in
the step's hands: for the old path a normalised float32 tensor (it normalised on the CPU,
in the loop); for the new path the uint8 tensor, because training normalises it on the GPU
as the step's first, asynchronous op (``to_device_images``): on the CPU here that
arithmetic would be the main process's own work (≈1,200 images/s at 384², one thread),
which on a GPU machine costs the CPU a kernel launch. Worker start-up (≈10 s with the fork
server under load) happens before the clock: persistent workers start once per fit.

Then the overlap: a fixed-duration stand-in for the GPU step (``time.sleep``, which holds
no GIL and leaves the CPU to the workers) as long as the loader's own time per batch, so
that load = compute, the hardest case; an epoch with that step should take
max(load, compute), not their sum: ``overlap`` = epoch / max(load, compute) (target ≤ 1.2),
from the fastest round of the loader alone and the fastest round with the step.
Also the per-size-cache speed-up alone: one thread, siamese set at 384 read from a 384
cache vs from the 672 cache.

Each line also gives the CPU milliseconds an image cost, summed over every process involved
(``/proc/<pid>/stat`` of the workers). Unlike images/s they hardly depend on how busy the
machine is, so ``on 2 free cores`` = old CPU per image / (new CPU per image / 2) says what
the loader gives when its two workers each have a core, which a shared machine may not
allow while it measures; the workers' figure includes moving each batch to the main
process (each worker refills its own shared-memory slots, :mod:`whaleflow.data.slots`; the
training process copies each batch out of its slot).

Rounds alternate old and new and the best round of each counts (as ``timeit``: other
processes on a shared machine only ever add time), so they disturb the ratios less. Last line:
``train_input: speedup X.XX overlap Y.YY`` (speedup: the smaller of the two settings).

    .venv/bin/python benchmarks/train_input.py [--images 256] [--workers 2] [--rounds 3] [--passes 4] [--work DIR]
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


def _cpu_s(pids=()) -> float:
    """CPU seconds (user + system) used so far by this process and the processes ``pids``."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _worker_pids(loader: BatchLoader) -> list[int]:
    it = getattr(loader._loader, "_iterator", None)
    return [w.pid for w in getattr(it, "_workers", [])]


class Rate:
    """Best images/s over rounds, and the CPU milliseconds each image cost (all processes)."""

    def __init__(self):
        self.best, self.images, self.cpu = 0.0, 0, 0.0

    def add(self, images: int, wall: float, cpu: float) -> None:
        self.best = max(self.best, images / wall)
        self.images += images
        self.cpu += cpu

    @property
    def cpu_ms(self) -> float:
        return 1e3 * self.cpu / max(self.images, 1)


def run_old(images: np.ndarray, augment, specs, rate: Rate | None = None) -> float:
    """Images/s of the synchronous path: each batch built in the loop."""
    ds = CachedImages(images, augment=augment)
    start, cpu = time.perf_counter(), _cpu_s()
    n = 0
    for spec in specs:
        x = to_device_images(ds.batch(spec.rows, spec.flips, spec.size), CPU)
        n += len(x)
    wall = time.perf_counter() - start
    if rate is not None:
        rate.add(n, wall, _cpu_s() - cpu)
    return n / wall


def run_new(loader: BatchLoader, specs, step_s: float = 0.0, rate: Rate | None = None) -> float:
    """Images/s of the loader: uint8 batches in the step's hands (it normalises them on the
    device); with ``step_s``, a stand-in step of that many seconds after each batch."""
    pids = _worker_pids(loader)
    start, cpu = time.perf_counter(), _cpu_s(pids)
    n = 0
    for pixels, _ in loader.epoch(specs):
        assert pixels.dtype == torch.uint8
        n += len(pixels)
        if step_s:
            time.sleep(step_s)
    wall = time.perf_counter() - start
    if rate is not None:
        rate.add(n, wall, _cpu_s(pids) - cpu)
    return n / wall


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prefetch", type=int, default=None, help="batches each worker keeps ready (default: train.prefetch's)")
    ap.add_argument("--passes", type=int, default=4, help="passes over the images per timed epoch")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=None, help="keep the synthetic photos and caches here between runs")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import cv2

    from whaleflow.config import TrainConfig

    prefetch = args.prefetch or TrainConfig().prefetch

    cv2.setNumThreads(1)  # the old path in one thread, as the issue measured it (cv2's pool would take both cores)
    result: dict = {"images": args.images, "workers": args.workers, "rounds": args.rounds,
                    "load_average": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        caches = make_caches(args.work or Path(tmp), args.images, [672, 448, 384])
        n = len(caches[(672, 672)])
        result["cache_build_s"] = round(time.perf_counter() - t, 1)
        print(f"{n} images cached at 672, 448, 384 in {result['cache_build_s']} s; load average "
              f"{result['load_average']:.1f}; best of {args.rounds} rounds")
        speedups, overlap = [], None
        for name, size, batch in SETTINGS:
            augment = build_augment(name, seed=0)
            loader = BatchLoader({(size, size): caches[(size, size)]}, build_augment(name, seed=0),
                                 workers=args.workers, prefetch=prefetch)
            run_new(loader, epoch_specs(n, batch, size, 99)[:2 * max(1, args.workers)])  # start the workers
            inline = BatchLoader({(size, size): caches[(size, size)]}, build_augment(name, seed=0), workers=0)
            r_old, r_new, r_one = Rate(), Rate(), Rate()
            for r in range(args.rounds):
                specs = epoch_specs(n, batch, size, r, args.passes)
                run_old(caches[(672, 672)], augment, specs, rate=r_old)
                run_new(loader, specs, rate=r_new)
                run_new(inline, specs, rate=r_one)
            old, new, one = r_old.best, r_new.best, r_one.best
            speedups.append(new / old)
            # CPU per image does not depend on how busy the machine is: what 2 free cores would give
            # (the workers' CPU spread over them, the main process's share included)
            free = r_old.cpu_ms / (r_new.cpu_ms / max(1, min(args.workers, 2)))
            result[name] = {"size": size, "batch": batch, "old_sync_672_cache_per_s": round(old, 1),
                            f"new_{args.workers}_workers_own_cache_per_s": round(new, 1),
                            "new_in_process_own_cache_per_s": round(one, 1),
                            "cpu_ms_per_image": {"old": round(r_old.cpu_ms, 3), "in_process": round(r_one.cpu_ms, 3),
                                                 "workers": round(r_new.cpu_ms, 3)},
                            "speedup": round(new / old, 2), "speedup_on_2_free_cores_from_cpu_time": round(free, 2)}
            print(f"[{name} at {size}] old, synchronous, 672 cache : {old:8.1f} images/s  {r_old.cpu_ms:6.2f} ms CPU/image")
            print(f"[{name} at {size}] new, in process, {size} cache : {one:8.1f} images/s  {r_one.cpu_ms:6.2f} ms CPU/image"
                  f"   ({one / old:.2f}×)")
            print(f"[{name} at {size}] new, {args.workers} workers, {size} cache  : {new:8.1f} images/s  {r_new.cpu_ms:6.2f} ms CPU/image"
                  f"   ({new / old:.2f}×; from CPU time, on {max(1, min(args.workers, 2))} free cores {free:.2f}×)")
            if name == "siamese":  # the overlap, on the setting a GPU step is fastest on
                passes = 3 * args.passes                  # a longer epoch: its first batch's wait counts less
                n_batches = len(epoch_specs(n, batch, size, 0, passes))
                step_s = batch / new                     # a step as long as the loader takes per batch
                compute_s = step_s * n_batches
                load_s = epoch_s = float("inf")
                for r in range(args.rounds):             # adjacent: the loader alone, then with the step
                    specs = epoch_specs(n, batch, size, 7 + r, passes)
                    t = time.perf_counter()
                    run_new(loader, specs)
                    load_s = min(load_s, time.perf_counter() - t)
                    t = time.perf_counter()
                    run_new(loader, specs, step_s=step_s)
                    epoch_s = min(epoch_s, time.perf_counter() - t)
                overlap = epoch_s / max(load_s, compute_s)
                result["overlap"] = {"batches": n_batches, "step_s": round(step_s, 4), "load_s": round(load_s, 3),
                                     "compute_s": round(compute_s, 3), "epoch_s": round(epoch_s, 3),
                                     "sum_s": round(load_s + compute_s, 3), "ratio": round(overlap, 2)}
                print(f"[overlap] {n_batches} batches: load {load_s:.2f} s, stand-in GPU step {step_s * 1e3:.1f} ms "
                      f"× {n_batches} = {compute_s:.2f} s: epoch {epoch_s:.2f} s = {overlap:.2f} × max "
                      f"(the sum would be {(load_s + compute_s) / max(load_s, compute_s):.2f} ×)")
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
