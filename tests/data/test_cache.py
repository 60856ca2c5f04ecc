"""The image cache: letterbox, boxes applied, reuse vs rebuild, corrupt images, atomic build."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from whaleflow.data.cache import (build_cache, build_caches, cache_bytes, cache_key, letterbox, open_cache,
                                  parallel_map)
from whaleflow.data.images import CorruptImage


def make_items(tmp_path, n=6, w=120, h=60):
    rows = []
    for i in range(n):
        arr = np.full((h, w, 3), 40 + 20 * i, np.uint8)
        arr[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 250  # a bright block in the middle
        split = "train" if i < n - 2 else "test"
        p = tmp_path / split / f"im{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(p)
        rows.append((f"im{i}.png", split, str(p)))
    return pd.DataFrame(rows, columns=["image", "split", "path"])


def test_letterbox_keeps_aspect_and_pads_with_edge_mean():
    img = np.full((50, 100), 30, np.uint8)
    img[10:40, 20:80] = 200
    out = letterbox(img, 64)
    assert out.shape == (64, 64) and out.dtype == np.uint8
    assert (out[:16] == 30).all() and (out[-16:] == 30).all()  # pad = border mean, no seam
    assert out[32, 32] == 200
    tall = letterbox(np.zeros((90, 30, 3), np.uint8), 32)
    assert tall.shape == (32, 32, 3)
    assert letterbox(np.zeros((5, 3), np.uint8), 40).shape == (40, 40)  # upscaling


def test_build_and_reuse(tmp_path):
    items = make_items(tmp_path)
    c = build_cache(items, tmp_path / "cache", size=32)
    assert c.images.shape == (6, 32, 32) and c.images.dtype == np.uint8
    assert c.index["row"].tolist() == list(range(6)) and c.index["box"].eq("none").all()
    assert c.dir.name == c.meta["key"] and len(c.dir.name) == 16
    assert c.images[0, 16, 16] == 250 and c.images[0, 2, 16] == 40  # padding rows: edge mean
    mtime = (c.dir / "images.u8").stat().st_mtime_ns
    again = build_cache(items, tmp_path / "cache", size=32)
    assert again.dir == c.dir and (c.dir / "images.u8").stat().st_mtime_ns == mtime
    assert np.array_equal(np.asarray(again.images), np.asarray(c.images))
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".tmp")]
    opened = open_cache(c.dir)
    assert opened.size == 32 and len(opened.index) == 6


def test_changed_setting_rebuilds(tmp_path):
    items = make_items(tmp_path)
    boxes = tmp_path / "b.csv"
    boxes.write_text("Image,x0,y0,x1,y1\nim0.png,30,15,90,45\n")
    keys = {build_cache(items, tmp_path / "c", size=32, keep=10).dir.name,
            build_cache(items, tmp_path / "c", size=48, keep=10).dir.name,
            build_cache(items, tmp_path / "c", size=32, grayscale=False, keep=10).dir.name,
            build_cache(items, tmp_path / "c", size=32, boxes=boxes, keep=10).dir.name,
            build_cache(items, tmp_path / "c", size=32, boxes=boxes, box_margin=0.2, keep=10).dir.name}
    boxes.write_text("Image,x0,y0,x1,y1\nim0.png,31,15,90,45\n")
    keys.add(build_cache(items, tmp_path / "c", size=32, boxes=boxes, keep=10).dir.name)
    Image.fromarray(np.zeros((60, 120, 3), np.uint8)).save(items["path"][1])  # a changed image
    keys.add(build_cache(items, tmp_path / "c", size=32, keep=10).dir.name)
    assert len(keys) == 7
    assert build_cache(items, tmp_path / "c", size=32, keep=2).dir.name in keys
    assert len([p for p in (tmp_path / "c").iterdir()]) == 2  # pruned to the newest two


def test_boxes_crop_and_are_counted(tmp_path):
    items = make_items(tmp_path)
    boxes = tmp_path / "b.csv"
    boxes.write_text("Image,x0,y0,x1,y1\nim0.png,30,15,90,45\nim1.png,90,15,30,45\n"
                     "im2.png,-10,15,90,45\nim3.png,500,500,600,600\n")
    c = build_cache(items, tmp_path / "cache", size=32, boxes=boxes, box_margin=0.0)
    assert c.meta["boxes"] == {"box": 1, "predicted": 0, "clamped": 1, "missing": 2, "invalid": 2, "none": 0}
    assert (np.asarray(c.images[0]) == 250).all()  # cropped exactly to the bright block
    problems = pd.read_csv(c.dir / "box_problems.csv")
    assert sorted(problems["image"]) == ["im1.png", "im3.png"]
    assert problems["message"].str.contains("Fix:").all()
    rgb = build_cache(items, tmp_path / "cache", size=32, grayscale=False)
    assert rgb.images.shape == (6, 32, 32, 3)


def test_corrupt_images_skipped_and_counted(tmp_path):
    items = make_items(tmp_path)
    with open(items["path"][2], "r+b") as fh:
        fh.truncate(60)
    c = build_cache(items, tmp_path / "cache", size=16)
    assert c.meta["skipped"] == 1 and c.images.shape == (5, 16, 16)
    assert "im2.png" not in set(c.index["image"]) and c.index["row"].tolist() == list(range(5))
    assert c.index["image"].tolist() == ["im0.png", "im1.png", "im3.png", "im4.png", "im5.png"]
    assert np.asarray(c.images[2]).mean() == pytest.approx(np.asarray(build_cache(
        items.iloc[[3]], tmp_path / "one", size=16).images[0]).mean())  # rows compacted in order
    skipped = pd.read_csv(c.dir / "skipped.csv")
    assert skipped["image"].tolist() == ["im2.png"] and "im2.png" in skipped["reason"][0]
    with pytest.raises(CorruptImage):
        build_cache(items, tmp_path / "strict", size=16, strict=True)
    assert not (tmp_path / "strict").exists() or not any((tmp_path / "strict").iterdir())


def test_key_depends_on_inputs(tmp_path):
    items = make_items(tmp_path, n=2)
    k = cache_key(items, size=32, boxes_digest=None, box_margin=0.05, grayscale=True)
    assert k == cache_key(items, size=32, boxes_digest=None, box_margin=0.1, grayscale=True)  # no boxes
    assert k != cache_key(items.iloc[:1], size=32, boxes_digest=None, box_margin=0.05, grayscale=True)


def test_parallel_map_keeps_order():
    assert list(parallel_map(lambda x: x * x, range(50), workers=2)) == [x * x for x in range(50)]
    assert list(parallel_map(str, [1, 2], workers=1, progress=True, description="t")) == ["1", "2"]
    assert list(parallel_map(str, [])) == []


def test_rectangular_cache_keeps_each_crops_aspect(tmp_path):
    """A [height, width] cache letterboxes to that aspect, not a square: a 1:2 crop fills a
    1:2 cache exactly, and a square crop is padded left and right."""
    items = make_items(tmp_path, n=4, w=120, h=60)  # 1:2 images
    c = build_cache(items, tmp_path / "cache", size=(32, 64))
    assert c.images.shape == (4, 32, 64) and c.shape == (32, 64) and c.size == 64
    assert c.images[0, 16, 32] == 250 and c.images[0, 0, 0] == 40  # no padding rows: full frame
    assert open_cache(c.dir).shape == (32, 64)
    assert build_cache(items, tmp_path / "cache", size=(32, 64)).dir == c.dir  # reused
    assert build_cache(items, tmp_path / "cache", size=64).dir != c.dir         # a square is another cache
    square = letterbox(np.full((40, 40), 200, np.uint8), (32, 64))
    assert square.shape == (32, 64) and (square[:, 16:48] == 200).all() and (square[:, :16] == 200).all()
    img = np.full((40, 40), 10, np.uint8)
    img[:, :2] = 250  # a bright left edge: the pad is the border mean, not the edge copied
    out = letterbox(img, (32, 64))
    border = np.concatenate([out[0, 16:48], out[-1, 16:48], out[:, 16], out[:, 47]])
    assert out[16, 0] == int(np.round(border.mean())) and out[16, 0] < 250


def test_several_sizes_from_one_decode_equal_separate_builds(tmp_path):
    items = make_items(tmp_path)
    with open(items["path"][2], "r+b") as fh:  # a corrupt image: skipped in every cache alike
        fh.truncate(60)
    both = build_caches(items, tmp_path / "multi", sizes=[32, (24, 48)])
    assert [c.shape for c in both] == [(32, 32), (24, 48)]
    for c, size in zip(both, [32, (24, 48)]):
        alone = build_cache(items, tmp_path / "alone", size=size, keep=10)
        assert c.dir.name == alone.dir.name
        assert np.array_equal(np.asarray(c.images), np.asarray(alone.images))
        assert c.index["image"].tolist() == ["im0.png", "im1.png", "im3.png", "im4.png", "im5.png"]
    again = build_caches(items, tmp_path / "multi", sizes=[32, (24, 48), 16], keep=1)
    assert [c.dir for c in again[:2]] == [c.dir for c in both]  # reused, not rebuilt
    assert len(list((tmp_path / "multi").iterdir())) == 3       # keep=1 never drops this call's caches
    assert cache_bytes(again[2]) >= 5 * 16 * 16
