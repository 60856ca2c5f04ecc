"""prepare with a partial box file: a box model learned from the listed photos crops the rest;
bad rows are one line each; a rerun reuses the model; data.boxes: auto crops every photo."""
import json

import pandas as pd
import pytest

from whaleflow.config import load_config
from whaleflow.data.boxes import read_boxes
from whaleflow.data.prepare import prepare
from whaleflow.locate.box_source import check_listed

# the smallest box model that is still the real thing: real Lite0 trunk, 2 epochs, 1 view
FAST = ["boxes.min_train=20", "boxes.epochs=2", "boxes.views=1", "boxes.canvas=[64,96]"]


def _cfg(root, out, boxes, extra=()):
    return load_config(None, [f"data.root={root}", f"data.boxes={boxes}", "prepare.cache_size=32",
                              f"output.dir={out}", *FAST, *extra])


def _cut(tiny_data, tmp_path, rows: int, extra: str = ""):
    full = pd.read_csv(tiny_data / "boxes.csv")
    path = tmp_path / "boxes_cut.csv"
    path.write_text(full.head(rows).to_csv(index=False) + extra)
    return path, full


def test_partial_box_file_learns_and_predicts_the_rest(tiny_data, tmp_path):
    path, full = _cut(tiny_data, tmp_path, 30)
    out = tmp_path / "run"
    prep = prepare(_cfg(tiny_data, out, path), out, progress=False)
    pdir = out / "prepared"
    pred = pd.read_csv(pdir / "boxes_predicted.csv")
    assert list(pred.columns) == ["Image", "x0", "y0", "x1", "y1", "score"]
    assert set(pred["Image"]) == set(full["Image"]) - set(full["Image"].head(30))  # every other photo
    assert ((pred.x1 > pred.x0) & (pred.y1 > pred.y0) & pred.score.between(0, 1)).all()
    summary = json.loads((pdir / "summary.json").read_text())
    m = summary["boxes"]["model"]
    assert m["learned"] and not m["reused"] and m["held_out"] == 6 and 0.0 <= m["held_out_iou"] <= 1.0
    assert summary["boxes"]["predicted"] == len(pred) and summary["boxes"]["box"] == 30
    assert "box model: fitted" in (pdir / "summary.txt").read_text()
    assert (out / "box_model" / "model.pt").is_file()
    assert set(prep.index.loc[prep.index["box"] == "predicted", "image"]) == set(pred["Image"])
    again = prepare(_cfg(tiny_data, out, path), out, progress=False)  # same listed boxes: nothing refitted
    m2 = json.loads((pdir / "summary.json").read_text())["boxes"]["model"]
    assert m2["reused"] and m2["predictions_reused"] and again.summary["cache"]["reused"]


def test_too_few_boxes_keep_whole_frames(tiny_data, tmp_path):
    path, _ = _cut(tiny_data, tmp_path, 10)
    out = tmp_path / "run"
    prepare(_cfg(tiny_data, out, path), out, progress=False)
    m = json.loads((out / "prepared" / "summary.json").read_text())["boxes"]
    assert not m["model"]["learned"] and "fewer than boxes.min_train" in m["model"]["reason"]
    assert m["predicted"] == 0 and m["box"] == 10 and not (out / "box_model").exists()


def test_bad_rows_are_one_line_each_naming_the_row(tiny_data, tmp_path):
    full = pd.read_csv(tiny_data / "boxes.csv")
    first = full["Image"][0]
    path, _ = _cut(tiny_data, tmp_path, 25, extra="nowhere.jpg,1,2,30,40\n")
    text = path.read_text().replace(f"{first},", f"{first}X,", 1)  # row 2 names no photo now
    lines = text.splitlines()
    a, b = lines[3].split(","), lines[4].split(",")
    lines[3] = ",".join([a[0], "60", a[2], "10", a[4]])     # row 4: x1 < x0
    lines[4] = ",".join([b[0], "5000", "5000", "6000", "6000"])  # row 5: outside the image
    path.write_text("\n".join(lines) + "\n")
    photos = pd.DataFrame({"image": full["Image"], "path": "", "width": 96, "height": 64})
    usable, problems = check_listed(read_boxes(path), photos)
    by_row = {p["row"]: p["message"] for p in problems}
    assert set(by_row) == {2, 4, 5, 27} and len(usable) == 22
    for row, msg in by_row.items():
        assert "\n" not in msg and f"row {row}:" in msg and str(path) in msg and "Fix:" in msg
    assert "not among the data's" in by_row[2] and "inverted" in by_row[4] and "outside" in by_row[5]
    out = tmp_path / "run"
    prepare(_cfg(tiny_data, out, path), out, progress=False)
    listed = pd.read_csv(out / "prepared" / "box_problems.csv")
    assert set(listed["row"]) == {2, 4, 5, 27}
    pred = set(pd.read_csv(out / "prepared" / "boxes_predicted.csv")["Image"])
    assert {a[0], b[0], first} <= pred  # impossible boxes and the misnamed photo get predicted ones


@pytest.mark.slow
def test_auto_boxes_crop_every_photo(tiny_data, tmp_path):
    out = tmp_path / "run"
    prep = prepare(_cfg(tiny_data, out, "auto"), out, progress=False)
    pred = pd.read_csv(out / "prepared" / "boxes_predicted.csv")
    assert len(pred) == len(prep.index) and (prep.index["box"] == "predicted").all()
    assert "label-free" in (out / "prepared" / "summary.txt").read_text()


def test_boxes_refine_views_and_stride_reach_the_fitted_model(tiny_data, tmp_path):
    from whaleflow.errors import ConfigError
    from whaleflow.locate.boxer import load_boxer

    path, _ = _cut(tiny_data, tmp_path, 30)
    out = tmp_path / "one_look"
    prepare(_cfg(tiny_data, out, path, ["boxes.refine_views=0"]), out, progress=False)
    assert not load_boxer(out / "box_model" / "model.pt").settings.get("refine")  # one look only
    out2 = tmp_path / "two_looks"
    prepare(_cfg(tiny_data, out2, path), out2, progress=False)
    assert load_boxer(out2 / "box_model" / "model.pt").settings.get("refine")  # the default second look
    for bad in ("boxes.refine_views=-1", "boxes.stride=4", "boxes.heads=0"):
        with pytest.raises(ConfigError, match="refine_views must be ≥ 0, stride 8 or 16 and heads ≥ 1"):
            load_config(None, [bad])
