"""CachedImages: batches resized from the cache, flipped, augmented, as float tensors."""
import numpy as np
import pytest
import torch

from whaleflow.data.augment import build_augment, normalize
from whaleflow.data.dataset import CachedImages
from whaleflow.data.samplers import PairSampler


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 32, 32)).astype(np.uint8)


def test_batch_shapes_flip_and_normalisation(images):
    ds = CachedImages(images)
    x = ds.batch([0, 3], [False, True])
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.shape == (2, 1, 32, 32)
    assert np.allclose(x[0, 0].numpy(), normalize(images[0]))
    assert np.allclose(x[1, 0].numpy(), normalize(images[3][:, ::-1]))
    assert ds.batch([1]).shape == (1, 1, 32, 32) and len(ds) == 5 and ds.size == (32, 32)


def test_resize_from_cache_size(images):
    ds = CachedImages(images)
    small = ds.batch([2], size=16)
    assert small.shape == (1, 1, 16, 16)
    assert abs(small.mean().item() - ds.batch([2]).mean().item()) < 0.05
    assert ds.batch([2], size=48).shape == (1, 1, 48, 48)


def test_augment_applied_and_rgb(images):
    ds = CachedImages(images, augment=build_augment("metric", seed=0))
    a, b = ds.batch([0] * 4), CachedImages(images).batch([0] * 4)
    assert a.shape == b.shape and not torch.allclose(a, b)
    rgb = CachedImages(np.stack([images] * 3, axis=-1))
    assert rgb.batch([0, 1], size=16).shape == (2, 3, 16, 16)
    with pytest.raises(TypeError):
        CachedImages(images.astype(np.float32))
    with pytest.raises(ValueError):
        CachedImages(images).batch([0, 1], [True])


def test_pair_batch(images):
    s = PairSampler(["a", "a", "b", "c", "c"], batch_size=4, seed=0)
    xa, xb, t = CachedImages(images).pair_batch(next(iter(s)), size=24)
    assert xa.shape == xb.shape == (4, 1, 24, 24) and t.tolist().count(1.0) == 2


def test_rectangular_sizes_resize_or_letterbox_never_stretch():
    """Reading a 1:2 cache at 16×32 resizes; reading it at a square letterboxes (pads top
    and bottom), so the content keeps its aspect."""
    img = np.full((1, 32, 64), 20, np.uint8)
    img[0, :, 16:48] = 220  # a centred square block
    ds = CachedImages(img)
    assert ds.size == (32, 64)
    rect = ds.batch([0], size=[16, 32])
    assert rect.shape == (1, 1, 16, 32)
    sq = ds.batch([0], size=32)[0, 0].numpy()
    assert sq.shape == (32, 32)
    bright = sq > normalize(np.array([120], np.uint8))[0]
    cols = np.flatnonzero(bright.any(0))
    rows = np.flatnonzero(bright.any(1))
    # the block is 16 px wide at this scale and only 16 rows tall: letterboxed, not stretched
    assert 14 <= len(cols) <= 18 and 14 <= len(rows) <= 18
