"""The second look: its crop centres the grown first box, its training crops move the box with the
image, and a model that takes it maps the refined box back to the photo's pixels (brute force: an
exact "network" that returns the bright rectangle's bounding box on whatever canvas it is shown)."""
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from whaleflow.locate.box_augment import BoxAugment, transform_boxes
from whaleflow.locate.box_model import BoxModel
from whaleflow.locate.refine import RefineAugment, crop_matrix

CANVAS = (96, 144)


def _photo(w=600, h=400, box=(250, 180, 370, 240)):
    img = np.zeros((h, w), np.uint8)
    img[box[1]:box[3], box[0]:box[2]] = 255
    return img, np.array(box, float)


def _pixel_box(canvas_img):
    ys, xs = np.nonzero(canvas_img > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


class BrightBox(nn.Module):
    """An exact box finder: the bounding box of the canvas's bright pixels, in canvas fractions."""

    def forward(self, x):
        b, _, h, w = x.shape
        mask = x[:, 0] > x.flatten(1).amin(dim=1).view(b, 1, 1) + 1.0
        out = []
        for m in mask:
            ys, xs = torch.nonzero(m, as_tuple=True)
            out.append([xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h])
        return torch.tensor(out, dtype=torch.float32), torch.zeros(b)


def test_crop_matrix_centres_the_grown_box():
    m = crop_matrix((100, 50, 200, 90), (600, 400), CANVAS, margin=0.25)
    grown = transform_boxes([[75, 40, 225, 100]], m)[0]  # the box grown by a quarter on each side
    assert np.allclose((grown[[0, 1]] + grown[[2, 3]]) / 2, (CANVAS[1] / 2, CANVAS[0] / 2))
    assert np.isclose(grown[2] - grown[0], CANVAS[1]) and grown[3] - grown[1] <= CANVAS[0] + 1e-9  # fits, aspect kept
    tiny = crop_matrix((10, 10, 10, 10), (600, 400), CANVAS, max_zoom=4.0)
    assert np.isclose(tiny[0, 0], 4 * min(CANVAS[1] / 600, CANVAS[0] / 400))  # no blow-up past max_zoom


@pytest.mark.parametrize("change", [{}, {"shift": 0.0, "resize": (1.0, 1.0)}, {"margin": 0.1}])
def test_training_crop_moves_the_box_with_the_image(change):
    aug = dataclasses.replace(RefineAugment(photometric=BoxAugment(light=0.0)), **change)
    img, box = _photo()
    for seed in range(12):
        pixels, moved = aug.sample(img, box, CANVAS, np.random.default_rng(seed))
        assert pixels.shape == CANVAS and pixels.dtype == np.uint8
        assert np.abs(_pixel_box(pixels) - moved).max() <= 2.0, (change, seed)
        assert moved[2] - moved[0] > 0.45 * CANVAS[1]  # zoomed in: it spanned 0.2 of the photo


@pytest.mark.parametrize("mirror", [False, True])
def test_second_look_maps_back_and_is_sharper(mirror):
    rng = np.random.default_rng(0)
    photos = []
    for _ in range(6):
        w, h = rng.integers(400, 900), rng.integers(300, 600)
        bw, bh = rng.integers(20, 80), rng.integers(15, 50)
        x0, y0 = rng.integers(0, w - bw), rng.integers(0, h - bh)
        photos.append(_photo(int(w), int(h), (int(x0), int(y0), int(x0 + bw), int(y0 + bh))))
    images, boxes = [p[0] for p in photos], np.stack([p[1] for p in photos])
    settings = {"canvas": list(CANVAS), "mirror": mirror}
    one = BoxModel(BrightBox(), dict(settings)).predict_pixels(images)[:, :4]
    two = BoxModel(BrightBox(), {**settings, "refine": {"margin": 0.25, "max_zoom": 4.0}}).predict_pixels(images)
    # one look: off by up to a canvas pixel, i.e. several photo pixels; the second look sees the box
    # at up to 4× that resolution and lands within about a photo pixel
    assert np.abs(two[:, :4] - boxes).max() <= 1.5, two[:, :4] - boxes
    assert np.abs(one - boxes).max() > 2 * np.abs(two[:, :4] - boxes).max()
