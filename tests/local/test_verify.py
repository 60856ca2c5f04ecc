"""Geometric verification: two shots of one pattern share many RANSAC inliers, two patterns few."""
import cv2
import numpy as np
import pytest

from whaleflow.local import FeatureExtractor, count_inliers

from .conftest import pattern, reshoot


@pytest.mark.parametrize("kind", ["sift", "orb"])
def test_same_pattern_has_many_more_inliers_than_a_different_one(kind):
    ext = FeatureExtractor(kind, n_features=300)
    a = ext.from_pixels(reshoot(pattern(1), 1))
    same = ext.from_pixels(reshoot(pattern(1), 2))
    other = [ext.from_pixels(reshoot(pattern(s), 3)) for s in (2, 3, 4)]
    n_same = count_inliers(a, same, norm=ext.norm)
    n_other = max(count_inliers(a, o, norm=ext.norm) for o in other)
    assert n_same >= 15
    assert n_same >= 3 * max(n_other, 1)


def test_inliers_agree_with_the_true_homography_by_brute_force():
    """Every match RANSAC keeps lies where the known warp sends its query keypoint (brute force
    over the kept matches), so the count is geometric agreement, not descriptor luck."""
    img = pattern(7)
    h, w = img.shape
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + np.float32([[6, -4], [-8, 5], [4, 7], [-5, -6]])
    H = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(img, H, (w, h), borderValue=90)
    ext = FeatureExtractor("sift", n_features=300, clahe=False)
    a, b = ext.from_pixels(img), ext.from_pixels(warped)
    matches = cv2.BFMatcher(cv2.NORM_L2).knnMatch(a.desc, b.desc, k=2)
    good = [m[0] for m in matches if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    moved = cv2.perspectiveTransform(a.xy[[m.queryIdx for m in good]][None], H)[0]
    agree = int((np.linalg.norm(moved - b.xy[[m.trainIdx for m in good]], axis=1) <= 8.0).sum())
    n = count_inliers(a, b, norm=ext.norm)
    assert n >= 0.8 * agree and n <= len(good)


def test_photos_without_keypoints_give_zero():
    ext = FeatureExtractor("sift")
    flat = ext.from_pixels(np.full((64, 64), 128, np.uint8))
    assert len(flat) == 0
    assert count_inliers(flat, ext.from_pixels(pattern(1))) == 0


def test_extractor_crops_to_the_box_and_shrinks_to_max_side(tmp_path):
    big = np.full((400, 800), 90, np.uint8)
    big[100:260, 300:540] = pattern(5)
    cv2.imwrite(str(tmp_path / "p.png"), big)
    ext = FeatureExtractor("sift", max_side=200)
    f = ext.from_file(str(tmp_path / "p.png"), box=(300, 100, 540, 260), margin=0.0)
    assert len(f) > 20
    assert f.xy[:, 0].max() < 200 and f.xy[:, 1].max() < 200 * 160 / 240 + 1  # the crop, shrunk
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    assert len(ext.from_file(str(tmp_path / "bad.jpg"))) == 0  # unreadable: no features, no crash


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="sift"):
        FeatureExtractor("surf")


def test_the_count_depends_on_the_two_photos_alone():
    """RANSAC is random: each pair is seeded, so the count is the same whatever was matched before
    (identify must reproduce the ensemble's counts)."""
    ext = FeatureExtractor("sift", n_features=300)
    a, b = ext.from_pixels(reshoot(pattern(1), 1)), ext.from_pixels(reshoot(pattern(1), 5, strength=0.12))
    first = count_inliers(a, b, norm=ext.norm)
    for s in range(2, 6):  # other pairs in between move OpenCV's generator
        count_inliers(ext.from_pixels(pattern(s)), b, norm=ext.norm)
    assert all(count_inliers(a, b, norm=ext.norm) == first for _ in range(3))
