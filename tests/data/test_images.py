"""Image decoding: full decode, truncated and garbage files refused with the path."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from whaleflow.data.images import CorruptImage, check_image, image_size, is_image_name, read_gray, read_rgb
from whaleflow.errors import DataError


def _jpeg_bytes(w=80, h=60, seed=0) -> bytes:
    arr = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_reads_jpeg_and_png_in_both_modes(tmp_path):
    (tmp_path / "a.jpg").write_bytes(_jpeg_bytes())
    Image.fromarray(np.zeros((30, 40, 4), np.uint8), "RGBA").save(tmp_path / "b.png")
    Image.fromarray(np.full((30, 40), 7, np.uint8), "L").save(tmp_path / "c.png")
    g, c = read_gray(tmp_path / "a.jpg"), read_rgb(tmp_path / "a.jpg")
    assert g.shape == (60, 80) and g.dtype == np.uint8
    assert c.shape == (60, 80, 3) and c.dtype == np.uint8
    assert read_rgb(tmp_path / "b.png").shape == (30, 40, 3)
    assert read_rgb(tmp_path / "c.png")[0, 0].tolist() == [7, 7, 7]
    assert image_size(tmp_path / "a.jpg") == (80, 60)
    assert check_image(tmp_path / "a.jpg") is None and check_image(tmp_path / "b.png") is None


@pytest.mark.parametrize("fraction", [0.3, 0.8, 0.99])
def test_truncated_jpeg_is_detected(tmp_path, fraction):
    data = _jpeg_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * fraction)])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(CorruptImage) as err:
        read_gray(path)
    assert str(path) in str(err.value) and "truncated" in str(err.value)
    assert isinstance(err.value, DataError) and err.value.fix
    with pytest.raises(CorruptImage):
        read_rgb(path)
    assert "truncated" in check_image(path)
    assert image_size(path) == (80, 60)  # the header alone is intact: size is cheap, not a proof


def test_garbage_and_missing_files(tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all" * 5)
    for fn in (read_gray, read_rgb, image_size):
        with pytest.raises(CorruptImage, match="junk.jpg"):
            fn(junk)
    assert check_image(junk)
    with pytest.raises(CorruptImage, match="does not exist"):
        read_gray(tmp_path / "nope.jpg")
    assert check_image(tmp_path / "nope.jpg") == "file does not exist"


def test_image_names():
    assert is_image_name("a.JPG") and is_image_name("b.png")
    assert not is_image_name(".hidden.jpg") and not is_image_name("notes.txt") and not is_image_name("Thumbs.db")
