"""A fitted box model: boxes inside each photo, scores in [0, 1], the same after save and load,
and a fit that learns (a bright block on noise, found far better than the whole frame)."""
import numpy as np
import pytest
import torch

from whaleflow.errors import DataError
from whaleflow.locate.box_model import BoxModel
from whaleflow.locate.boxer import load_boxer
from whaleflow.locate.fitting import fit_box_model, split_holdout
from whaleflow.locate.iou import box_iou


def _photos(n, seed=0, w=120, h=80):
    rng = np.random.default_rng(seed)
    images, boxes = [], []
    for _ in range(n):
        img = rng.integers(40, 90, (h, w)).astype(np.uint8)
        bw, bh = rng.integers(20, 50), rng.integers(15, 35)
        x0, y0 = rng.integers(0, w - bw), rng.integers(0, h - bh)
        img[y0:y0 + bh, x0:x0 + bw] = 230
        images.append(img)
        boxes.append((x0, y0, x0 + bw, y0 + bh))
    return images, np.array(boxes, float)


@pytest.mark.parametrize("options", [{"refine_views": 0}, {"refine_views": 1}, {"stride": 8, "frozen_stages": 4},
                                     {"heads": 3}, {"refit": False}])
def test_predictions_are_inside_and_survive_save_and_load(tmp_path, options):
    images, boxes = _photos(12)
    model = fit_box_model(images, boxes, epochs=1, views=1, canvas=(64, 96), holdout=0.25, **options)
    # measured on 3 held-out photos, then (refit, the default) fitted again on all 12
    refit = options.get("refit", True)
    assert model.metrics["held_out"] == 3 and model.metrics["refit"] == refit
    assert model.metrics["trained_on"] == (12 if refit else 9) and model.metrics["held_out_iou"] is not None
    # the second look is the default; refine_views=0 turns it off
    assert (model.settings["refine"] is not None) == bool(options.get("refine_views", 6))
    pred = model.predict_pixels(images)
    assert ((pred[:, 0] >= 0) & (pred[:, 2] <= 120) & (pred[:, 1] >= 0) & (pred[:, 3] <= 80)).all()
    assert ((pred[:, 2] > pred[:, 0]) & (pred[:, 3] > pred[:, 1]) & (pred[:, 4] >= 0) & (pred[:, 4] <= 1)).all()
    model.save(tmp_path / "m.pt")
    again = load_boxer(tmp_path / "m.pt")
    assert isinstance(again, BoxModel) and again.metrics == model.metrics
    assert np.allclose(again.predict_pixels(images), pred, atol=1e-5)


def test_heads_train_apart_and_their_boxes_are_averaged():
    images, boxes = _photos(12)
    model = fit_box_model(images, boxes, epochs=2, views=1, canvas=(64, 96), holdout=0, heads=3, refine_views=0)
    net = model.net.eval()
    assert model.settings["heads"] == 3 and len(net.more_heads) == 2
    # each head learned on its own (different initial weights, own loss), so they disagree a little
    w = [h.out.weight for h in (net.head, *net.more_heads)]
    assert not torch.allclose(w[0], w[1]) and not torch.allclose(w[1], w[2])
    x = torch.randn(4, 1, 64, 96)
    with torch.inference_mode():
        outs = net.head_outputs(net.features(x))
        box, q = net(x)
    assert torch.allclose(box, torch.stack([b for b, _ in outs]).mean(0), atol=1e-6)
    assert torch.allclose(q, torch.stack([v for _, v in outs]).mean(0), atol=1e-6)


def test_split_holdout_is_disjoint_and_seeded():
    train, held = split_holdout(150, 0.2, seed=0)
    assert len(held) == 30 and not set(train) & set(held) and len(train) + len(held) == 150
    assert np.array_equal(held, split_holdout(150, 0.2, seed=0)[1])
    assert len(split_holdout(8, 0.2, seed=0)[1]) == 0  # too few photos to hold any out


@pytest.mark.slow
def test_fit_learns_where_the_block_is():
    images, boxes = _photos(60, seed=1)
    model = fit_box_model(images, boxes, epochs=25, views=4, canvas=(64, 96), holdout=0.2)
    test_images, test_boxes = _photos(30, seed=2)
    iou = box_iou(model.predict_pixels(test_images)[:, :4], test_boxes).mean()
    whole = box_iou(np.tile([0, 0, 120, 80], (30, 1)), test_boxes).mean()
    assert iou > whole + 0.25, (iou, whole)


def test_unknown_file_is_one_line(tmp_path):
    with pytest.raises(DataError, match="does not exist") as e:
        load_boxer(tmp_path / "none.pt")
    assert "Fix:" in str(e.value) and "\n" not in str(e.value)
