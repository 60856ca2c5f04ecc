"""Box files in every accepted layout; missing, inverted, out-of-range and unreadable boxes."""
import numpy as np
import pytest

from whaleflow.data.boxes import check_box, crop_image, crop_window, read_boxes
from whaleflow.errors import DataError


def write(tmp_path, text, name="boxes.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("text", [
    "Image,x0,y0,x1,y1\na.jpg,10,20,50,60\n",
    "image,xmin,ymin,xmax,ymax\na.jpg,10,20,50,60\n",
    "filename,x_min,y_min,x_max,y_max\ntrain/a.jpg,10,20,50,60\n",
    "image_id,x,y,w,h\na.jpg,10,20,40,40\n",
    "image,left,top,right,bottom\na.jpg,10,20,50,60\n",
    'image,bbox,conf\na.jpg,"[[10 20 50 60]]",[0.9]\n',
    'image,box\na.jpg,10 20 50 60\n',
    'Image,bbox\na.jpg,"[10.0, 20.0, 50.0, 60.0], [0, 0, 5, 5]"\n',
])
def test_layouts(tmp_path, text):
    b = read_boxes(write(tmp_path, text))
    assert b.get("a.jpg")[:4] == (10, 20, 50, 60) and b.get("a.jpg")[4] == 2
    assert b.problems == [] and len(b.digest) == 64


def test_empty_box_means_no_box(tmp_path):
    b = read_boxes(write(tmp_path, "image,box\na.jpg,\nb.jpg,1 2 3 4\n"))
    assert b.get("a.jpg") is None and b.get("b.jpg") is not None and b.problems == []


def test_unreadable_rows_listed_with_file_row_fix(tmp_path):
    p = write(tmp_path, "Image,x0,y0,x1,y1\na.jpg,1,2,3,4\nb.jpg,one,2,3,4\na.jpg,5,6,7,8\n,1,2,3,4\n")
    b = read_boxes(p)
    rows = {(x["image"], x["row"]) for x in b.problems}
    assert rows == {("b.jpg", 3), ("a.jpg", 4), ("", 5)}
    msg = next(x["message"] for x in b.problems if x["image"] == "b.jpg")
    assert str(p) in msg and "row 3" in msg and "Fix:" in msg
    assert b.get("a.jpg")[:4] == (1, 2, 3, 4)  # the first box wins
    img = np.zeros((10, 10), np.uint8)
    assert crop_image(img, "b.jpg", b, 0.0)[1] == "invalid"


def test_bad_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_boxes(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="no image column") as e:
        read_boxes(write(tmp_path, "pic,x0,y0,x1,y1\na.jpg,1,2,3,4\n"))
    assert e.value.row == 1 and e.value.fix
    with pytest.raises(DataError, match="no box columns"):
        read_boxes(write(tmp_path, "Image,a,b\na.jpg,1,2\n"))


def test_check_box():
    assert check_box((10, 10, 50, 40), 100, 80) == ("ok", None)
    assert check_box((-5, 10, 50, 90), 100, 80)[0] == "clamped"
    status, why = check_box((50, 10, 10, 40), 100, 80)
    assert status == "invalid" and "inverted" in why
    assert check_box((10, 40, 50, 40), 100, 80)[0] == "invalid"
    status, why = check_box((120, 10, 150, 40), 100, 80)
    assert status == "invalid" and "outside" in why
    assert check_box((-50, -50, -1, -1), 100, 80)[0] == "invalid"


def test_crop_margin_and_clamp():
    assert crop_window((20, 10, 60, 30), 100, 80, 0.0) == (20, 10, 60, 30)
    assert crop_window((20, 10, 60, 30), 100, 80, 0.1) == (16, 8, 64, 32)
    assert crop_window((-10, -10, 120, 90), 100, 80, 0.1) == (0, 0, 100, 80)


def test_crop_image_statuses(tmp_path):
    p = write(tmp_path, "Image,x0,y0,x1,y1\nok.jpg,10,10,50,30\nclamp.jpg,-10,10,50,300\n"
                        "inv.jpg,50,10,10,30\nout.jpg,500,500,600,600\n")
    b = read_boxes(p)
    img = np.arange(80 * 100, dtype=np.uint32).reshape(80, 100).astype(np.uint8)
    crop, status, prob = crop_image(img, "ok.jpg", b, 0.0)
    assert status == "box" and crop.shape == (20, 40) and prob is None
    assert np.array_equal(crop, img[10:30, 10:50])
    crop, status, _ = crop_image(img, "clamp.jpg", b, 0.0)
    assert status == "clamped" and crop.shape == (70, 50)
    for name, row in (("inv.jpg", 4), ("out.jpg", 5)):
        crop, status, prob = crop_image(img, name, b, 0.05)
        assert status == "invalid" and crop.shape == img.shape
        assert prob["row"] == row and f"row {row}" in prob["message"] and "Fix:" in prob["message"]
    assert crop_image(img, "absent.jpg", b, 0.05)[1] == "missing"
    assert crop_image(img, "absent.jpg", None, 0.05)[1] == "none"
