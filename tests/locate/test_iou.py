"""Box IoU against counting pixels on a grid."""
import numpy as np

from whaleflow.locate.iou import box_iou


def _pixel_iou(a, b, size=40):
    ys, xs = np.mgrid[0:size, 0:size] + 0.5  # pixel centres
    in_a = (xs >= a[0]) & (xs < a[2]) & (ys >= a[1]) & (ys < a[3])
    in_b = (xs >= b[0]) & (xs < b[2]) & (ys >= b[1]) & (ys < b[3])
    union = (in_a | in_b).sum()
    return (in_a & in_b).sum() / union if union else 0.0


def test_iou_matches_pixel_count_on_integer_boxes():
    rng = np.random.default_rng(0)
    a = np.sort(rng.integers(0, 40, (200, 2, 2)), axis=1).reshape(200, 4)  # x0 y0 x1 y1
    b = np.sort(rng.integers(0, 40, (200, 2, 2)), axis=1).reshape(200, 4)  # x0 y0 x1 y1
    got = box_iou(a, b)
    want = np.array([_pixel_iou(x, y) for x, y in zip(a, b)])
    assert np.allclose(got, want)
    assert (want > 0).sum() > 50 and (want == 0).sum() > 5  # both overlapping and disjoint cases were drawn


def test_iou_hand_cases():
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10])[0] == 1.0
    assert np.isclose(box_iou([0, 0, 10, 10], [5, 0, 15, 10])[0], 50 / 150)
    assert box_iou([0, 0, 10, 10], [10, 0, 20, 10])[0] == 0.0  # touching edges
    assert box_iou([5, 5, 5, 9], [0, 0, 10, 10])[0] == 0.0     # empty box: 0, not NaN
    assert box_iou([8, 0, 2, 10], [0, 0, 10, 10])[0] == 0.0    # inverted box
