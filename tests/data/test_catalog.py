"""Catalog: both layouts, and every bad input named with its file, row and a fix."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from whaleflow.data.catalog import load_catalog
from whaleflow.errors import DataError


def _img(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (np.random.default_rng(seed).random((24, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(path, quality=90)
    return path


def kaggle(root, rows=None, test=("t1.jpg", "t2.jpg"), images=True, sample=False):
    """A tiny Kaggle-layout folder; ``rows`` are (Image, Id) or a raw CSV body."""
    rows = rows if rows is not None else [("a.jpg", "w_1"), ("b.jpg", "w_1"), ("c.jpg", "new_whale"), ("d.jpg", "w_2")]
    body = rows if isinstance(rows, str) else "".join(f"{i},{d}\n" for i, d in rows)
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.csv").write_text("Image,Id\n" + body)
    if images and not isinstance(rows, str):
        for k, (name, _) in enumerate(rows):
            _img(root / "train" / name, k)
    for k, name in enumerate(test):
        _img(root / "test" / name, 100 + k)
    if sample:
        (root / "sample_submission.csv").write_text(
            "Image,Id\n" + "".join(f"{n},new_whale w_1\n" for n in sample))
    return root


def test_kaggle_layout_loads(tmp_path):
    root = kaggle(tmp_path / "d", sample=("t1.jpg", "t2.jpg"))
    (root / "test" / "notes.txt").write_text("ignored")
    cat = load_catalog(root)
    assert cat.layout == "kaggle"
    assert list(cat.train.columns) == ["image", "id", "path"] and list(cat.test.columns) == ["image", "path"]
    assert cat.train["image"].tolist() == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert cat.test["image"].tolist() == ["t1.jpg", "t2.jpg"]
    assert all(p.startswith(str(root.absolute())) for p in cat.train["path"])
    assert cat.summary() == {"layout": "kaggle", "train_images": 4, "individuals": 2, "new_whale_images": 1,
                             "test_images": 2, "skipped": 0}


def test_happywhale_layout_loads(tmp_path):
    root = tmp_path / "hw"
    root.mkdir()
    (root / "train.csv").write_text("image,species,individual_id\nx.jpg,humpback_whale,abc123\n"
                                    "y.jpg,beluga,abc123\nz.jpg,beluga,ff00ee\n")
    for k, n in enumerate("xyz"):
        _img(root / "train_images" / f"{n}.jpg", k)
    _img(root / "test_images" / "q.jpg", 9)
    (root / "sample_submission.csv").write_text("image,predictions\nq.jpg,new_individual\n")
    cat = load_catalog(root)
    assert cat.layout == "happywhale"
    assert cat.train["id"].tolist() == ["abc123", "abc123", "ff00ee"]
    assert cat.train["path"].str.contains("train_images").all()
    assert cat.test["image"].tolist() == ["q.jpg"]
    assert cat.summary()["individuals"] == 2


def test_missing_train_csv_and_folder(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        load_catalog(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"train\.csv: file not found"):
        load_catalog(tmp_path / "empty")
    root = kaggle(tmp_path / "nofolder", images=False)
    with pytest.raises(DataError, match="no train/ image folder"):
        load_catalog(root)


def test_missing_columns_lists_expected_and_found(tmp_path):
    root = kaggle(tmp_path / "d")
    (root / "train.csv").write_text("Image,Label\na.jpg,w_1\n")
    with pytest.raises(DataError) as err:
        load_catalog(root)
    msg = str(err.value)
    assert "train.csv" in msg and "expected Image,Id or image,species,individual_id" in msg
    assert "found Image,Label" in msg and "Fix:" in msg


def test_duplicated_rows_name_both_rows(tmp_path):
    rows = [("a.jpg", "w_1"), ("b.jpg", "w_2"), ("a.jpg", "w_3")]
    root = kaggle(tmp_path / "d", rows)
    with pytest.raises(DataError, match=r"'a.jpg' is listed more than once \(rows 2, 4\)") as err:
        load_catalog(root)
    assert err.value.row == 4 and err.value.file.endswith("train.csv")


def test_listed_but_absent_files(tmp_path):
    root = kaggle(tmp_path / "d")
    for name in ("b.jpg", "d.jpg"):
        (root / "train" / name).unlink()
    with pytest.raises(DataError, match=r"2 image\(s\) listed but absent .*b\.jpg, d\.jpg") as err:
        load_catalog(root)
    assert err.value.row == 3


@pytest.mark.parametrize("body,row", [("a.jpg,w_1\nb.jpg,\n", 3), ("a.jpg,   \n", 2), ("a.jpg\n", 2)])
def test_empty_class_value(tmp_path, body, row):
    root = kaggle(tmp_path / "d", body, test=())
    _img(root / "train" / "a.jpg")
    _img(root / "train" / "b.jpg")
    with pytest.raises(DataError, match="empty class value in column 'Id'") as err:
        load_catalog(root)
    assert err.value.row == row and f"row {row}" in str(err.value)


def test_test_folder_sharing_train_names(tmp_path):
    root = kaggle(tmp_path / "d", test=("t1.jpg", "b.jpg"))
    with pytest.raises(DataError, match=r"1 test image name\(s\) also appear in train.csv: b\.jpg"):
        load_catalog(root)


def test_sample_submission_images_must_exist(tmp_path):
    root = kaggle(tmp_path / "d", sample=("t1.jpg", "t2.jpg", "gone.jpg"))
    with pytest.raises(DataError, match=r"sample_submission.csv, row 4: 1 image\(s\) listed but absent"):
        load_catalog(root)


def _corrupt(root):
    data = (root / "train" / "b.jpg").read_bytes()
    (root / "train" / "b.jpg").write_bytes(data[: len(data) // 2])  # truncated JPEG
    (root / "test" / "t2.jpg").write_bytes(b"\x00garbage" * 20)


def test_corrupt_images_are_skipped_with_a_count(tmp_path, caplog):
    root = kaggle(tmp_path / "d")
    _corrupt(root)
    with caplog.at_level(logging.WARNING, logger="whaleflow.data"):
        cat = load_catalog(root)
    assert sorted(cat.skipped["image"]) == ["b.jpg", "t2.jpg"]
    assert sorted(cat.skipped["split"]) == ["test", "train"]
    assert "truncated" in cat.skipped.set_index("image").loc["b.jpg", "reason"]
    assert "b.jpg" not in set(cat.train["image"]) and cat.test["image"].tolist() == ["t1.jpg"]
    assert cat.summary()["skipped"] == 2 and cat.summary()["train_images"] == 3
    assert "skipping 2 corrupt or unreadable image(s) (1 train, 1 test)" in caplog.text
    unchecked = load_catalog(root, check_images=False)
    assert len(unchecked.train) == 4 and unchecked.skipped.empty


def test_corrupt_images_raise_under_strict(tmp_path):
    root = kaggle(tmp_path / "d")
    _corrupt(root)
    pattern = r"b\.jpg: image file is truncated.*2 corrupt or unreadable image\(s\) in all.*without --strict"
    with pytest.raises(DataError, match=pattern):
        load_catalog(root, strict=True)


def test_ids_are_text_not_nan(tmp_path):
    root = kaggle(tmp_path / "d", [("a.jpg", "NA"), ("b.jpg", "null")])
    assert load_catalog(root).train["id"].tolist() == ["NA", "null"]


def test_plain_individual_layout_and_the_layouts_new_label(tmp_path):
    root = tmp_path / "any"
    root.mkdir()
    (root / "train.csv").write_text("image,individual_id\nx.jpg,zebra_1\ny.jpg,zebra_1\nz.jpg,new_individual\n")
    for k, n in enumerate("xyz"):
        _img(root / "train_images" / f"{n}.jpg", k)
    _img(root / "test_images" / "q.jpg", 9)
    cat = load_catalog(root)
    assert cat.layout == "individual"
    assert cat.train["id"].tolist() == ["zebra_1", "zebra_1", "new_whale"]  # read as the internal label
    assert cat.summary()["new_whale_images"] == 1
