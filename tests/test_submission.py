"""Submission writing and scoring."""
import pandas as pd
import pytest

from whaleflow.errors import DataError
from whaleflow.submission import read_submission, score_submission, write_submission


def test_write_every_image_once_with_five_labels(tmp_path):
    preds = {"a.jpg": ["w1", "w2", "w3", "w4", "w5", "w6"], "b.jpg": ["new_whale", "w1", "w2", "w3", "w4"]}
    path = write_submission(tmp_path / "s.csv", preds, ["b.jpg", "a.jpg"])
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["Image", "Id"]
    assert list(frame["Image"]) == ["b.jpg", "a.jpg"]
    assert all(len(ids.split()) == 5 for ids in frame["Id"])
    assert not list(tmp_path.glob(".s.csv*")), "no temp file left behind"


def test_missing_prediction_is_an_error(tmp_path):
    with pytest.raises(ValueError):
        write_submission(tmp_path / "s.csv", {"a.jpg": ["w1"]}, ["a.jpg", "b.jpg"])
    assert not (tmp_path / "s.csv").exists()


def test_score(tmp_path):
    write_submission(tmp_path / "s.csv", {"a": ["w1", "w2"], "b": ["w2", "new_whale"]}, ["a", "b"])
    pd.DataFrame({"Image": ["a", "b"], "Id": ["w1", "new_whale"]}).to_csv(tmp_path / "ans.csv", index=False)
    assert score_submission(tmp_path / "s.csv", tmp_path / "ans.csv") == pytest.approx(0.75)


def test_score_reports_missing_images(tmp_path):
    write_submission(tmp_path / "s.csv", {"a": ["w1"]}, ["a"])
    pd.DataFrame({"Image": ["a", "b"], "Id": ["w1", "w2"]}).to_csv(tmp_path / "ans.csv", index=False)
    with pytest.raises(DataError, match="misses 1 of 2 images"):
        score_submission(tmp_path / "s.csv", tmp_path / "ans.csv")


def test_bad_header_names_file_and_row(tmp_path):
    (tmp_path / "s.csv").write_text("img,label\na,w1\n")
    with pytest.raises(DataError, match=r"s.csv, row 1: missing column"):
        read_submission(tmp_path / "s.csv")


def test_outputs_get_the_ordinary_file_mode(tmp_path):
    """Atomic writes must not leave mkstemp's private 0600 mode on shared run files."""
    from whaleflow import io

    path = io.write_text(tmp_path / "summary.json", "{}")
    plain = tmp_path / "plain.json"
    with open(plain, "w") as fh:  # what an ordinary open() gives under this umask
        fh.write("{}")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
def test_happywhale_format_spells_new_individual_and_reads_back(tmp_path):
    preds = {"a.jpg": ["new_whale", "w1", "w2"], "b.jpg": ["w2", "new_whale", "w1"]}
    path = write_submission(tmp_path / "s.csv", preds, ["a.jpg", "b.jpg"], layout="happywhale")
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["image", "predictions"]
    assert frame["predictions"].tolist() == ["new_individual w1 w2", "w2 new_individual w1"]
    assert "new_whale" not in path.read_text()
    assert read_submission(path) == preds  # read back with the internal label
    pd.DataFrame({"image": ["a.jpg", "b.jpg"], "individual_id": ["new_individual", "w1"]}).to_csv(
        tmp_path / "ans.csv", index=False)
    assert score_submission(path, tmp_path / "ans.csv") == pytest.approx((1.0 + 1 / 3) / 2)
    hwi = write_submission(tmp_path / "k.csv", preds, ["a.jpg", "b.jpg"], layout="kaggle")
    assert pd.read_csv(hwi)["Id"].iloc[0].startswith("new_whale")
