"""Images/s of the data path: per-sample decode vs the prepared cache, on the same images.

(a) what a naive loader does for every sample, every epoch: decode the JPEG, crop to
    its box, convert to grey, letterbox-resize to the training size, augment;
(b) what whaleflow does: read the row from the uint8 memmap cache (built once, timed
    separately), augment.

Both run single-threaded on the same images with the same augmentation, so the ratio
is the speed-up per core. Images are a synthetic set at an HWI-like size (1024×640
JPEGs by default) with a box per image. Target: (b) ≥ 10× (a) for the siamese set
(the metric set's affine warp alone costs more than a cache read, so its ratio is
bounded by the augmentation, not by the loader). (a) and (b) alternate for
``--rounds`` rounds and the best round of each counts (as ``timeit`` does), so other
processes on a shared machine disturb the ratio less.

    .venv/bin/python benchmarks/data_pipeline.py [--individuals 20] [--size 384] [--augment siamese,metric]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from whaleflow.data.augment import build_augment  # noqa: E402
from whaleflow.data.boxes import crop_image, read_boxes  # noqa: E402
from whaleflow.data.cache import build_cache, letterbox  # noqa: E402
from whaleflow.data.dataset import CachedImages  # noqa: E402
from whaleflow.data.images import read_gray  # noqa: E402
from whaleflow.data.synthetic import generate_synthetic  # noqa: E402


def make_data(folder: Path, individuals: int, width: int, height: int, seed: int):
    """A synthetic Kaggle-layout set plus a box file (a box on 60–95% of each image)."""
    if not (folder / "train.csv").is_file():
        generate_synthetic(folder, individuals=individuals, seed=seed, width=width, height=height)
    paths = sorted((folder / "train").glob("*.jpg")) + sorted((folder / "test").glob("*.jpg"))
    rng = np.random.default_rng(seed)
    rows = []
    for p in paths:
        fw, fh = rng.uniform(0.6, 0.95, 2)
        x0, y0 = rng.uniform(0, 1 - fw) * width, rng.uniform(0, 1 - fh) * height
        rows.append((p.name, round(x0), round(y0), round(x0 + fw * width), round(y0 + fh * height)))
    boxes = folder / "boxes.csv"
    pd.DataFrame(rows, columns=["Image", "x0", "y0", "x1", "y1"]).to_csv(boxes, index=False)
    items = pd.DataFrame({"image": [p.name for p in paths],
                          "split": [p.parent.name for p in paths], "path": [str(p) for p in paths]})
    return items, boxes


def bench_decode(items, boxes, size, augment, margin, passes):
    """(a): decode + crop + grey + resize + augment, per sample."""
    table = read_boxes(boxes)
    n = 0
    start = time.perf_counter()
    for _ in range(passes):
        for name, path in zip(items["image"], items["path"]):
            img = read_gray(path)
            crop, _, _ = crop_image(img, name, table, margin)
            augment(letterbox(crop, size))
            n += 1
    return n / (time.perf_counter() - start)


def bench_cache(cache, size, augment, passes, batch, seed=0):
    """(b): rows from the memmap + augment, in batches as a trainer asks for them."""
    ds = CachedImages(cache.images, augment=augment)
    rng = np.random.default_rng(seed)
    n = 0
    start = time.perf_counter()
    for _ in range(passes):
        order = rng.permutation(len(ds))
        for s in range(0, len(order), batch):
            rows = order[s:s + batch]
            ds.batch(rows, rng.random(len(rows)) < 0.5, size)
            n += len(rows)
    return n / (time.perf_counter() - start)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--individuals", type=int, default=20)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--height", type=int, default=640)
    ap.add_argument("--size", type=int, default=384, help="cache and training size")
    ap.add_argument("--augment", default="siamese,metric", help="comma-separated augmentation sets")
    ap.add_argument("--margin", type=float, default=0.05)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--data", type=Path, default=None, help="reuse/keep the generated set here")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)

    result = {"rounds": args.rounds, "size": args.size, "image_size": f"{args.width}x{args.height}"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data or Path(tmp) / "data"
        t = time.perf_counter()
        items, boxes = make_data(folder, args.individuals, args.width, args.height, seed=0)
        result.update(images=len(items), generate_s=round(time.perf_counter() - t, 1))
        t = time.perf_counter()
        cache = build_cache(items, Path(tmp) / "cache", size=args.size, boxes=boxes,
                            box_margin=args.margin, workers=2)
        result["cache_build_s_2_workers"] = round(time.perf_counter() - t, 2)
        print(f"{len(items)} images {args.width}×{args.height} → {args.size}², 1 thread, "
              f"best of {args.rounds} rounds")
        result["cache_only_per_s"] = round(max(bench_cache(cache, args.size, None, 1, args.batch)
                                               for _ in range(args.rounds)), 1)
        for name in args.augment.split(","):
            augment = build_augment(name, seed=0)
            a = b = 0.0
            for _ in range(args.rounds):
                a = max(a, bench_decode(items, boxes, args.size, augment, args.margin, 1))
                b = max(b, bench_cache(cache, args.size, augment, 1, args.batch))
            result[name] = {"a_decode_crop_gray_resize_augment_per_s": round(a, 1),
                            "b_cache_augment_per_s": round(b, 1), "ratio_b_over_a": round(b / a, 2)}
            print(f"[{name}] (a) decode + crop + gray + resize + augment : {a:8.1f} images/s")
            print(f"[{name}] (b) cache + augment                          : {b:8.1f} images/s")
            print(f"[{name}]     ratio (b)/(a)                            : {b / a:8.2f}×")
    print(f"cache only, no augment: {result['cache_only_per_s']:.1f} images/s; "
          f"cache build (once, 2 workers): {result['cache_build_s_2_workers']:.2f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
