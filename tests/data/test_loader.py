"""BatchLoader: worker processes give the same batches as the main process, uint8 on the
wire, normalised on the device exactly as the CPU path; the memmap travels as a file name."""
import pickle

import numpy as np
import pytest
import torch

from whaleflow.data.augment import build_augment
from whaleflow.data.dataset import CachedImages, cache_for_size
from whaleflow.data.loader import BatchLoader, BatchReader, BatchSpec, batch_seed, resolve_workers
from whaleflow.engine.device import to_device_images


@pytest.fixture
def caches(tmp_path):
    """Two memmap caches of the same 12 images, at 32² and 24²."""
    rng = np.random.default_rng(0)
    out = {}
    for side in (32, 24):
        arr = np.memmap(tmp_path / f"c{side}.u8", dtype=np.uint8, mode="w+", shape=(12, side, side))
        arr[:] = rng.integers(0, 256, arr.shape, dtype=np.uint8)
        arr.flush()
        out[(side, side)] = np.memmap(tmp_path / f"c{side}.u8", dtype=np.uint8, mode="r", shape=(12, side, side))
    return out


def specs(n=6, size=(32, 32), seed=0, epoch=0):
    rng = np.random.default_rng(seed + epoch)
    return [BatchSpec(rng.integers(0, 12, 4), rng.random(4) < 0.5, size, batch_seed(seed, epoch, i),
                      np.arange(4) + 10 * i) for i in range(n)]


def collect(loader, batch_specs):
    return [(x.clone(), y.clone()) for x, y in loader.epoch(batch_specs)]


def test_workers_give_the_batches_of_the_main_process(caches):
    inline = BatchLoader(caches, build_augment("metric"), workers=0)
    pool = BatchLoader(caches, build_augment("metric"), workers=2, prefetch=2)
    try:
        for epoch, size in ((0, (32, 32)), (1, (24, 24)), (2, (32, 32))):  # persistent across sizes
            a, b = collect(inline, specs(size=size, epoch=epoch)), collect(pool, specs(size=size, epoch=epoch))
            assert len(a) == len(b) == 6
            for (xa, ya), (xb, yb) in zip(a, b):
                assert xa.dtype == torch.uint8 and xa.shape == (4, 1, *size)
                assert torch.equal(xa, xb) and torch.equal(ya, yb)
    finally:
        pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.epoch(specs())


def test_an_epoch_left_early_does_not_spoil_the_next(caches):
    inline = BatchLoader(caches, build_augment("siamese"), workers=0)
    pool = BatchLoader(caches, build_augment("siamese"), workers=2, prefetch=2)
    try:
        first = pool.epoch(specs(epoch=0))
        next(first)  # then the step fails: the rest of the epoch is never taken
        for epoch in (1, 2):
            a, b = collect(inline, specs(epoch=epoch)), collect(pool, specs(epoch=epoch))
            assert len(b) == 6 and all(torch.equal(xa, xb) and torch.equal(ya, yb)
                                       for (xa, ya), (xb, yb) in zip(a, b))
    finally:
        pool.close()
    assert pool._receiver is None


def test_a_batch_depends_on_its_seed_not_on_what_came_before(caches):
    reader = BatchReader(caches, build_augment("siamese"))
    s = specs()
    first = [reader[x][0] for x in s]
    backwards = [reader[x][0] for x in reversed(s)][::-1]
    assert all(torch.equal(a, b) for a, b in zip(first, backwards))
    other = BatchSpec(s[0].rows, s[0].flips, s[0].size, s[0].seed + 1, s[0].extra)
    assert not torch.equal(reader[other][0], first[0])  # the augmentation does follow the seed


def test_reads_come_from_the_cache_of_the_size(caches):
    reader = BatchReader(caches, None)
    rows, flips = np.array([3, 0, 7]), np.array([False, True, False])
    x, _ = reader[BatchSpec(rows, flips, (24, 24), 0)]
    expected = np.asarray(caches[(24, 24)])[rows].copy()
    expected[1] = expected[1][:, ::-1]
    assert np.array_equal(x[:, 0].numpy(), expected)  # the 24² cache's own pixels: no resize


def test_uint8_normalised_on_the_device_equals_the_float_path(caches):
    ds = CachedImages(caches[(32, 32)])
    rows, flips = [1, 5, 5], [False, True, False]
    on_device = to_device_images(torch.from_numpy(ds.batch_uint8(rows, flips, 32)), torch.device("cpu"))
    assert on_device.dtype == torch.float32
    assert torch.equal(on_device, ds.batch(rows, flips, 32))
    resized = to_device_images(torch.from_numpy(ds.batch_uint8(rows, flips, 20)), torch.device("cpu"))
    assert torch.equal(resized, ds.batch(rows, flips, 20))


def test_the_memmap_travels_as_its_file_name(tmp_path, caches):
    big = np.memmap(tmp_path / "big.u8", dtype=np.uint8, mode="w+", shape=(64, 256, 256))
    big[5] = 77
    big.flush()
    reader = BatchReader({(256, 256): np.memmap(tmp_path / "big.u8", dtype=np.uint8, mode="r",
                                                shape=(64, 256, 256))}, None)
    blob = pickle.dumps(reader)
    assert len(blob) < 20_000 < big.nbytes
    again = pickle.loads(blob)
    x, _ = again[BatchSpec(np.array([5]), np.array([False]), (256, 256), 0)]
    assert int(x.min()) == int(x.max()) == 77
    in_memory = CachedImages(np.zeros((3, 8, 8), np.uint8))  # no file: the pixels are the state
    assert pickle.loads(pickle.dumps(in_memory)).images.shape == (3, 8, 8)
    part = CachedImages(caches[(32, 32)][2:])  # a slice of a memmap is not its whole file
    assert np.array_equal(pickle.loads(pickle.dumps(part)).images, caches[(32, 32)][2:])


def test_cache_for_size():
    shapes = [(64, 64), (48, 48), (32, 64)]
    assert cache_for_size(shapes, 48) == (48, 48)
    assert cache_for_size(shapes, 40) == (48, 48)       # the smallest same-aspect cache not smaller
    assert cache_for_size(shapes, [16, 32]) == (32, 64)
    assert cache_for_size(shapes, 96) == (64, 64)       # none big enough: the largest
    with pytest.raises(ValueError):
        cache_for_size([], 32)


def test_resolve_workers():
    assert resolve_workers(3) == 3 and resolve_workers(0) == 0
    assert resolve_workers(None, cpus=1) == 0 and resolve_workers(None, cpus=4) == 3
    assert resolve_workers(None) >= 0
    with pytest.raises(ValueError):
        resolve_workers(-1)


UNGUARDED = r'''
import numpy as np
from whaleflow.data.loader import BatchLoader, BatchSpec
loader = BatchLoader({(8, 8): np.zeros((4, 8, 8), np.uint8)}, None, workers=1, prefetch=1)
GUARD
    for x, _ in loader.epoch([BatchSpec(np.array([0, 1]), np.array([False, False]), (8, 8), 0)]):
        print("batch", tuple(x.shape))
'''


@pytest.mark.parametrize("guarded", [False, pytest.param(True, marks=pytest.mark.slow)])  # ~15 s each
def test_a_script_that_trains_at_its_top_level_is_told_to_guard_it(tmp_path, guarded):
    """Forkserver workers import the main script (as spawn does): an unguarded one runs again in
    each worker, which dies; the user gets what to do instead of "worker exited unexpectedly"."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "train_here.py"
    script.write_text(UNGUARDED.replace("GUARD", 'if __name__ == "__main__":' if guarded else "if True:"))
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(repo)})
    if guarded:
        assert proc.returncode == 0 and "batch (2, 1, 8, 8)" in proc.stdout, proc.stderr[-2000:]
    else:
        assert proc.returncode != 0
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("whaleflow.data.loader.LoaderWorkerError") and "train.workers=1" in last, last
        assert f"If {script} trains at its top level" in last and 'if __name__ == "__main__":' in last, last


def test_batches_that_arrive_out_of_order_are_put_back_in_order():
    from whaleflow.data.loader import _in_order

    rng = np.random.default_rng(3)
    order = rng.permutation(50)
    got = list(_in_order((int(i), torch.tensor([i]), f"x{i}") for i in order))
    assert [int(p) for p, _ in got] == list(range(50)) and [e for _, e in got] == [f"x{i}" for i in range(50)]
    with pytest.raises(RuntimeError, match="lost batch 1"):
        list(_in_order(iter([(0, torch.tensor([0]), None), (2, torch.tensor([2]), None)])))


def test_batches_kept_by_the_step_are_not_overwritten_by_reused_slots(caches):
    """Workers refill their shared-memory slots; what the step holds is its own copy, so a
    whole epoch kept unread still equals the main process's batches, epoch after epoch."""
    inline = BatchLoader(caches, build_augment("metric"), workers=0)
    pool = BatchLoader(caches, build_augment("metric"), workers=2, prefetch=1)
    try:
        for epoch in range(3):
            kept = list(pool.epoch(specs(n=20, epoch=epoch)))  # 20 batches through 2 × 4 slots
            expect = collect(inline, specs(n=20, epoch=epoch))
            assert all(torch.equal(x, xe) and torch.equal(y, ye) for (x, y), (xe, ye) in zip(kept, expect))
        assert set(pool._held) and all(pool._flags[s] == 0 for s in range(len(pool._flags)))
    finally:
        pool.close()


def test_a_worker_with_no_free_slot_builds_into_a_fresh_segment():
    from whaleflow.data.slots import WorkerSlots

    flags = bytearray(4)
    slots = WorkerSlots(flags, 2)
    a, b, c = slots.take(1, (2, 3)), slots.take(1, (2, 3)), slots.take(1, (2, 3))
    assert [a[0], b[0], c[0]] == [2, 3, -1] and list(flags) == [0, 0, 1, 1]
    flags[2] = 0
    again = slots.take(1, (2, 3))
    assert again[0] == 2 and again[1].data_ptr() == a[1].data_ptr()  # the same buffer, refilled
    flags[2] = 0
    assert slots.take(1, (4, 3))[1].shape == (4, 3)                   # a new size: a new buffer
