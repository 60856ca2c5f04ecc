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
    assert ds.batch([1]).shape == (1, 1, 32, 32) and len(ds) == 5 and ds.size == 32


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
