"""Augmentation sets: registered by name, uint8 (H, W) in, float32 (H, W) normalised out, seeded."""
import numpy as np
import pytest

from whaleflow.data.augment import MEAN, STD, build_augment, normalize
from whaleflow.errors import ConfigError
from whaleflow.registry import AUGMENTATIONS


@pytest.fixture
def img():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (48, 40)).astype(np.uint8)


def test_registered():
    assert {"siamese", "metric", "none"} <= set(AUGMENTATIONS.names())
    with pytest.raises(ConfigError, match="Did you mean 'metric'"):
        build_augment("metrc")


@pytest.mark.parametrize("name", ["siamese", "metric", "none"])
def test_shape_dtype_and_determinism(img, name):
    aug = build_augment(name, seed=1)
    out = aug(img)
    assert out.shape == img.shape and out.dtype == np.float32 and np.isfinite(out).all()
    a, b = build_augment(name, seed=1), build_augment(name, seed=1)
    assert all(np.array_equal(a(img), b(img)) for _ in range(5))


def test_none_is_plain_normalisation(img):
    out = build_augment("none")(img)
    assert np.allclose(out, (img / 255.0 - MEAN) / STD, atol=1e-5)
    assert np.array_equal(out, normalize(img))


@pytest.mark.parametrize("name", ["siamese", "metric"])
def test_augmentations_change_pixels_but_keep_scale(img, name):
    aug = build_augment(name, seed=0)
    outs = [aug(img) for _ in range(20)]
    base = normalize(img)
    assert sum(not np.allclose(o, base) for o in outs) >= 5
    assert all(abs(o.mean() - base.mean()) < 1.5 for o in outs)


def test_rejects_float_input(img):
    with pytest.raises(TypeError):
        build_augment("siamese")(img.astype(np.float32))


def test_fast_gauss_noise_statistics():
    import albumentations as A

    from whaleflow.data.augment import FastGaussNoise

    img = np.full((64, 80), 128, np.uint8)
    t = A.Compose([FastGaussNoise(std_range=(0.04, 0.04), p=1.0)], seed=0)
    outs = [t(image=img)["image"].astype(float) - 128 for _ in range(4)]
    for o in outs:
        assert abs(o.std() - 0.04 * 255) < 1.0 and abs(o.mean()) < 0.5
    assert not np.array_equal(outs[0], outs[1])  # a new offset each call
    rgb = A.Compose([FastGaussNoise(p=1.0)], seed=0)(image=np.full((20, 30, 3), 100, np.uint8))["image"]
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    with pytest.raises(ValueError):
        FastGaussNoise(std_range=(0.5, 0.1))
