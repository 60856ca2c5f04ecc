"""GPU check: verify and time what only a GPU shows, in one run of a few minutes.

Four measurements, each with a correctness check, and a table at the end:

1. **Training throughput**: resnet50 (``build_backbone("resnet50", pretrained=False)``,
   grayscale input) + a linear classifier, Adam, at 384² — fp32 against bf16 autocast
   with channels_last. Check: finite losses; bf16 features close to fp32 features of
   the same weights and batch.
2. **All-pairs scoring**: ``PairHead(2048, hidden=(64, 32)).score_matrix`` on every
   pair of N = 15,697 resnet50-sized feature vectors, in tiles on the GPU (fp32 and
   bf16), then the library's ``whaleflow.mining.score_all_pairs`` (symmetric tiles,
   matrix back on the host) when the first pass predicts it fits the time budget.
   Check: tile scores equal ``PairHead.forward`` on the same pairs.
3. **MAP@5 evaluation** at 8,000 queries × 15,697 classes: the numpy path
   (``insert_new_whale`` + ``map_at_k_indices``) against ``torch.topk`` on the GPU
   with the same new_whale insertion, and a 100-threshold sweep on the GPU.
   Check: identical top-5 lists and MAP@5.
4. **Peak memory** of each step (``torch.cuda.max_memory_allocated``).
5. **The project's own paths** (``gpu_check_steps.py``): the real training step —
   ``run_prepare`` on ~5k synthetic photos, then the task's ``train_epoch`` with its
   loader and augmentation — for siamese resnet50 at 384 and metric resnet50 at 448,
   against the bare model and loss on batches already on the device (target: ≥ 80 %);
   one mining round at N = 15,697 with the HWI head [512, 128] on 2,048-d features
   (device top-k candidates + sparse LAP, against the old all-pairs fp32 scoring);
   one validation step at 3,000 × 5,004 (centroid scores + the exact threshold sweep).

Usage::

    benchmarks/gpu_check.sh                    # on a GPU machine, under 10 minutes
    python benchmarks/gpu_check.py --cpu --small   # smoke test anywhere, about a minute

Without a GPU (and without ``--cpu``) it says so and exits 0.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))


@dataclass
class Row:
    step: str
    variant: str
    rate: str = ""
    seconds: float = float("nan")
    peak_gib: float = float("nan")
    check: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class Sizes:
    """Problem sizes: the real ones, or tiny ones for ``--small``."""

    image: int = 384
    batch: int = 64
    warmup: int = 5
    steps: int = 20
    n_pairs: int = 15_697
    feat_dim: int = 2048
    queries: int = 8_000
    classes: int = 15_697

    @classmethod
    def small(cls) -> "Sizes":
        return cls(image=32, batch=2, warmup=1, steps=1, n_pairs=300, feat_dim=128, queries=500, classes=900)


class Clock:
    """Wall time with a device sync on both ends, and per-step peak memory."""

    def __init__(self, device: torch.device):
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gib(self) -> float:
        if self.device.type != "cuda":
            return float("nan")
        return torch.cuda.max_memory_allocated(self.device) / 2**30

    def time(self, fn: Callable[[], object]) -> tuple[float, object]:
        self.sync()
        t = time.perf_counter()
        out = fn()
        self.sync()
        return time.perf_counter() - t, out


# ---------------------------------------------------------------- 1. training
def check_training(sz: Sizes, device: torch.device, clock: Clock) -> list[Row]:
    from whaleflow.models.backbones import build_backbone

    rows, feats = [], {}
    torch.backends.cudnn.benchmark = True
    variants = [("fp32", False)] + ([("bf16 + channels_last", True)] if _bf16_ok(device) else [])
    for name, fast in variants:
        torch.manual_seed(0)
        model = nn.Sequential(build_backbone("resnet50", pretrained=False), nn.Linear(2048, 1000)).to(device)
        if fast:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        batch = sz.batch
        clock.reset_peak()
        while True:
            x = torch.randn(batch, 1, sz.image, sz.image, device=device)
            if fast:
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, 1000, (batch,), device=device)

            def step():
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
                    loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                return loss.detach()

            try:
                for _ in range(sz.warmup):
                    step()
                secs, losses = clock.time(lambda: [step() for _ in range(sz.steps)])
                break
            except torch.cuda.OutOfMemoryError:
                opt.zero_grad(set_to_none=True)
                batch //= 2
                if batch < 1:
                    raise
                print(f"  {name}: out of memory, retrying with batch {batch}", file=sys.stderr)
        finite = bool(torch.isfinite(torch.stack(losses)).all())
        model.eval()
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
            torch.manual_seed(1)
            probe = torch.randn(min(8, batch), 1, sz.image, sz.image, device=device)
            feats[name] = model[0](probe.contiguous(memory_format=torch.channels_last) if fast else probe).float()
            state = {k: v.clone() for k, v in model.state_dict().items()} if fast else None
        if fast:
            feats[name + "/state"] = state
        rows.append(Row("train resnet50", f"{name} {sz.image}² b{batch}", f"{sz.steps * batch / secs:,.0f} img/s",
                        secs, clock.peak_gib(), "losses finite" if finite else "NON-FINITE LOSS",
                        {"images_per_s": sz.steps * batch / secs, "batch": batch}))
        # free this variant's GPU memory before the next; rebinding (not `del`) keeps step()'s names defined
        model = opt = None
    if len(variants) == 2:
        speedup = rows[1].extra["images_per_s"] / rows[0].extra["images_per_s"]
        rows[-1].check += f"; ×{speedup:.2f} vs fp32; " + _compare_precision(sz, device, feats)
    return rows


def _compare_precision(sz: Sizes, device: torch.device, feats: dict) -> str:
    """bf16+channels_last features vs fp32 features of the same (bf16-trained) weights."""
    from whaleflow.models.backbones import build_backbone

    m = build_backbone("resnet50", pretrained=False).to(device).eval()
    m.load_state_dict({k[2:]: v for k, v in feats["bf16 + channels_last/state"].items() if k.startswith("0.")})
    torch.manual_seed(1)
    probe = torch.randn(feats["bf16 + channels_last"].shape[0], 1, sz.image, sz.image, device=device)
    with torch.no_grad():
        ref = m(probe)
    rel = float((feats["bf16 + channels_last"] - ref).norm() / ref.norm().clamp_min(1e-12))
    return f"bf16 vs fp32 features rel. err {rel:.3f}" + ("" if rel < 0.05 else " (HIGH)")


def _bf16_ok(device: torch.device) -> bool:
    return device.type == "cpu" or torch.cuda.is_bf16_supported()


# ---------------------------------------------------------------- 2. all-pairs scoring
def check_pairs(sz: Sizes, device: torch.device, clock: Clock, budget_s: float, tile_elements: int) -> list[Row]:
    from whaleflow.mining import score_all_pairs
    from whaleflow.models.pair_head import PairHead

    torch.manual_seed(0)
    n, d = sz.n_pairs, sz.feat_dim
    f = torch.randn(n, d, device=device).relu_()  # pooled ReLU features are non-negative
    head = PairHead(d, hidden=(64, 32)).to(device).eval()
    side_r = max(1, int((tile_elements / d) ** 0.5) // 2)
    side_c = max(1, tile_elements // (d * side_r))
    rows = []
    with torch.inference_mode():
        i = torch.randint(0, n, (256,), device=device)
        j = torch.randint(0, n, (256,), device=device)
        ref = head(f[i], f[j])
        got = torch.stack([head.score_matrix(f[a : a + 1], f[b : b + 1])[0, 0] for a, b in zip(i[:64], j[:64])])
        err = float((got - ref[:64]).abs().max())
        ref_full, ref_rows = None, 0
        for name, fast in (("fp32", False), ("bf16", True)):
            if fast and not _bf16_ok(device):
                continue
            out = torch.empty(n, n, device=device, dtype=torch.float32)
            clock.reset_peak()
            done, t0 = 0, time.perf_counter()
            clock.sync()
            for a in range(0, n, side_r):
                for b in range(0, n, side_c):
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
                        out[a : a + side_r, b : b + side_c] = head.score_matrix(f[a : a + side_r], f[b : b + side_c])
                done = min(n, a + side_r) * n
                if time.perf_counter() - t0 > budget_s / 4:
                    break
            clock.sync()
            secs = time.perf_counter() - t0
            rate = done / secs
            check = f"tile = forward (max |Δ| {err:.1e})" if not fast else ""
            if fast:
                k = min(done // n, ref_rows)
                agree = float((out[:k, :k] - ref_full[:k, :k]).abs().max()) if k else float("nan")
                scale = float(ref_full[:k, :k].abs().max()) if k else float("nan")
                check = f"max |bf16 − fp32| {agree:.3f} (logits up to {scale:.1f}) on {k}×{k}"
            else:
                ref_full, ref_rows = out, done // n
            full_s = n * n / rate
            partial = "" if done == n * n else f", {done / (n * n):.0%} done, full ≈ {full_s:.0f} s"
            rows.append(Row(f"score all pairs N={n:,}", f"score_matrix {name}, tiles {side_r}×{side_c}{partial}",
                            f"{rate / 1e6:,.1f} M pairs/s", secs, clock.peak_gib(), check,
                            {"pairs_per_s": rate, "full_seconds": full_s}))
            if fast:
                del out
        del ref_full
        predicted = n * n / rows[0].extra["pairs_per_s"] * 1.3  # the library path also copies to the host
        if predicted < budget_s / 3:
            clock.reset_peak()
            secs, mat = clock.time(lambda: score_all_pairs(f, head, block_size=4096))
            sym = float(np.abs(mat[:512, :512] - mat[:512, :512].T).max())
            rows.append(Row(f"score all pairs N={n:,}", "whaleflow.mining.score_all_pairs (symmetric, to host)",
                            f"{n * n / secs / 1e6:,.1f} M pairs/s", secs, clock.peak_gib(),
                            f"symmetric (max |Δ| {sym:.1e})", {"pairs_per_s": n * n / secs}))
        else:
            rows.append(Row(f"score all pairs N={n:,}", "whaleflow.mining.score_all_pairs", "skipped",
                            check=f"predicted {predicted:.0f} s > budget {budget_s / 3:.0f} s"))
    return rows


# ---------------------------------------------------------------- 3. MAP@5
def _torch_insert_new_whale(scores: torch.Tensor, threshold: float, k: int = 5):
    """``insert_new_whale`` in torch: top-k with -1 before the first value below ``threshold``."""
    vals, idx = torch.topk(scores, k, dim=1)
    return _torch_insert(vals, idx, threshold)


def _torch_insert(vals: torch.Tensor, idx: torch.Tensor, threshold: float) -> torch.Tensor:
    k = idx.shape[1]
    below = vals < threshold
    pos = torch.where(below.any(1), below.int().argmax(1), torch.full_like(below[:, 0], k, dtype=torch.long))
    cols = torch.arange(k, device=idx.device)[None, :]
    shifted = torch.cat([idx[:, :1], idx[:, :-1]], dim=1)
    out = torch.where(cols < pos[:, None], idx, shifted)
    return torch.where(cols == pos[:, None], torch.full_like(out, -1), out)


def _torch_map(top: torch.Tensor, truth: torch.Tensor) -> float:
    w = 1.0 / torch.arange(1, top.shape[1] + 1, device=top.device, dtype=torch.float64)
    return float(((top == truth[:, None]) * w).max(1).values.mean())


def check_map5(sz: Sizes, device: torch.device, clock: Clock) -> list[Row]:
    from whaleflow.inference.topk import insert_new_whale
    from whaleflow.metrics import map_at_k_indices

    rng = np.random.default_rng(0)
    q, c = sz.queries, sz.classes
    scores = rng.standard_normal((q, c), dtype=np.float32)
    truth = rng.integers(0, c, q)
    known = rng.random(q) < 0.6
    scores[np.flatnonzero(known), truth[known]] += rng.uniform(1.5, 4.5, known.sum()).astype(np.float32)
    truth = np.where(known, truth, -1)
    thr = 3.2
    rows = []
    secs, top = clock.time(lambda: insert_new_whale(scores, thr))
    m_cpu = map_at_k_indices(top, truth)
    rows.append(Row(f"MAP@5 {q:,}×{c:,}", "numpy insert_new_whale + map_at_k_indices",
                    f"{q / secs:,.0f} queries/s", secs, float("nan"), f"MAP@5 {m_cpu:.4f}"))
    clock.reset_peak()
    copy_s, s_dev = clock.time(lambda: torch.from_numpy(scores).to(device))
    t_dev = torch.from_numpy(truth).to(device)
    _torch_insert_new_whale(s_dev, thr)  # warm-up (kernel selection)
    secs, top_dev = clock.time(lambda: _torch_insert_new_whale(s_dev, thr))
    m_dev = _torch_map(top_dev, t_dev)
    same = bool(np.array_equal(top_dev.cpu().numpy(), top)) and abs(m_dev - m_cpu) < 1e-9
    rows.append(Row(f"MAP@5 {q:,}×{c:,}", f"torch.topk on {device.type} (+{_secs(copy_s)} host→device)",
                    f"{q / secs:,.0f} queries/s", secs, clock.peak_gib(),
                    (f"same top-5 and MAP@5 as numpy; ×{rows[0].seconds / secs:.1f}" if same
                     else "MISMATCH with numpy")))
    grid = np.linspace(0, 6, 100)

    def sweep():
        vals, idx = torch.topk(s_dev, 5, dim=1)
        return [_torch_map(_torch_insert(vals, idx, float(t)), t_dev) for t in grid]

    secs, curve = clock.time(sweep)
    best = int(np.argmax(curve))
    rows.append(Row(f"MAP@5 {q:,}×{c:,}", f"threshold sweep, {len(grid)} thresholds on {device.type}",
                    f"{len(grid) / secs:,.0f} thresholds/s", secs, clock.peak_gib(),
                    f"best {curve[best]:.4f} at {grid[best]:.2f}"))
    return rows


# ---------------------------------------------------------------- main
def _secs(s: float) -> str:
    if not np.isfinite(s):
        return "–"
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def print_table(rows: list[Row], header: str) -> None:
    cols = ["step", "variant", "throughput", "time", "peak GPU mem", "check"]
    cells = [[r.step, r.variant, r.rate, _secs(r.seconds),
              f"{r.peak_gib:.1f} GiB" if np.isfinite(r.peak_gib) else "–", r.check] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    line = lambda xs: "| " + " | ".join(x.ljust(w) for x, w in zip(xs, widths)) + " |"
    print("\n" + header)
    print(line(cols))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for c in cells:
        print(line(c))


#: the steps, in the order they run (``--only`` picks some)
STEPS = ("train", "pairs", "map5", "pipeline", "mining", "validation")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="run on the CPU (a smoke test; pair with --small)")
    ap.add_argument("--small", action="store_true", help="tiny sizes: seconds, checks only")
    ap.add_argument("--budget-s", type=float, default=120.0, help="time allowed to the pair-scoring step")
    ap.add_argument("--tile-elements", type=int, default=1 << 29,
                    help="rows × cols × D per score_matrix call (GPU memory per intermediate ×4 bytes)")
    ap.add_argument("--only", nargs="*", choices=list(STEPS), default=list(STEPS))
    ap.add_argument("--json", help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible to torch (torch.cuda.is_available() is False); nothing to check. "
              "Run with --cpu --small for a smoke test.")
        return 0
    device = torch.device("cpu" if args.cpu else "cuda")
    sz = Sizes.small() if args.small else Sizes()
    clock = Clock(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    header = (f"gpu_check on {name} · torch {torch.__version__} · cudnn.allow_tf32="
              f"{torch.backends.cudnn.allow_tf32} matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}"
              + (" · SMALL sizes" if args.small else ""))
    print(header, flush=True)
    t0, rows = time.perf_counter(), []
    import gpu_check_steps as project

    steps = {"train": lambda: check_training(sz, device, clock),
             "pairs": lambda: check_pairs(sz, device, clock, args.budget_s, args.tile_elements),
             "map5": lambda: check_map5(sz, device, clock),
             "pipeline": lambda: project.check_pipeline(args.small, device),
             "mining": lambda: project.check_mining(args.small, device),
             "validation": lambda: project.check_validation(args.small, device)}
    failed = False
    for key in args.only:
        print(f"· {key} …", flush=True)
        try:
            new = steps[key]()
        except Exception as exc:  # report and go on: one failing step must not hide the others
            failed = True
            new = [Row(key, "FAILED", check=f"{type(exc).__name__}: {exc}"[:200])]
        for r in new:
            print(f"  {r.variant}: {r.rate} ({_secs(r.seconds)}) {r.check}", flush=True)
        rows += new
    print_table(rows, f"{header} · total {time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([r.__dict__ for r in rows], fh, indent=2, default=float)
    bad = failed or any(w in r.check for r in rows for w in ("MISMATCH", "NON-FINITE", "HIGH"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
