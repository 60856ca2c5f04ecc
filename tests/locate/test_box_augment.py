"""The box follows the image under every augmentation: a white rectangle on black is warped
and its pixels' bounding box is compared with the transformed box."""
import dataclasses

import numpy as np
import pytest

from whaleflow.locate.box_augment import (
    BoxAugment,
    letterbox_matrix,
    transform_boxes,
    warp,
)

CANVAS = (96, 144)
NONE = BoxAugment(flip=0.0, scale=(1.0, 1.0), shift=0.0, rotate=0.0, light=0.0)


def _photo(w=300, h=200, box=(60, 50, 200, 120)):
    img = np.zeros((h, w), np.uint8)
    img[box[1]:box[3], box[0]:box[2]] = 255
    return img, np.array(box, float)


def _pixel_box(canvas_img):
    ys, xs = np.nonzero(canvas_img > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


@pytest.mark.parametrize("change", [
    {},                                  # letterbox only
    {"flip": 1.0},                       # always mirrored
    {"scale": (1.3, 1.3)},               # zoom in
    {"scale": (0.7, 0.7)},               # zoom out
    {"shift": 0.15},                     # move
    {"rotate": 10.0},                    # tilt
    {"light": 0.25},                     # light and contrast: the box must not move
    dict(dataclasses.asdict(BoxAugment())),  # everything together, as training draws it
])
def test_box_follows_image(change):
    aug = dataclasses.replace(NONE, **change)
    img, box = _photo()
    base = letterbox_matrix(img.shape[1], img.shape[0], CANVAS)
    for seed in range(12):
        rng = np.random.default_rng(seed)
        pixels, moved = aug.sample(img, box, base, CANVAS, rng)
        assert pixels.shape == CANVAS and pixels.dtype == np.uint8
        # a thresholded warp is off by at most a pixel or two at the rectangle's edges
        assert np.abs(_pixel_box(pixels) - moved).max() <= 2.0, (change, seed)


def test_flip_mirrors_the_box():
    aug = dataclasses.replace(NONE, flip=1.0)
    img, box = _photo()
    base = letterbox_matrix(img.shape[1], img.shape[0], CANVAS)
    _, plain = NONE.sample(img, box, base, CANVAS, np.random.default_rng(0))
    _, flipped = aug.sample(img, box, base, CANVAS, np.random.default_rng(0))
    assert np.allclose(flipped[[0, 2]], CANVAS[1] - plain[[2, 0]]) and np.allclose(flipped[[1, 3]], plain[[1, 3]])


def test_letterbox_round_trip():
    m = letterbox_matrix(300, 200, CANVAS)
    box = np.array([[60, 50, 200, 120]], float)
    assert np.allclose(transform_boxes(transform_boxes(box, m), np.linalg.inv(m)), box)
    canvas = warp(np.full((200, 300), 7, np.uint8), m, CANVAS)
    assert canvas.shape == CANVAS and (canvas == 7).all()  # the fill is the photo's mean: no edge


def test_boxes_are_clipped_to_the_canvas():
    out = transform_boxes([[-10, -5, 500, 90]], np.eye(3), CANVAS)
    assert out.tolist() == [[0, 0, CANVAS[1], 90]]
