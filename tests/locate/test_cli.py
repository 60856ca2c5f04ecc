"""whaleflow boxes fit / predict outside a run, and the report's look at predicted boxes."""
import pandas as pd
import pytest

from ray_jobs.cli import main
from whaleflow.report.boxes_section import predicted_boxes_html

FAST = ["boxes.epochs=1", "boxes.views=1", "boxes.canvas=[64,96]"]


@pytest.mark.slow
def test_fit_then_predict(tiny_data, tmp_path, capsys):
    full = pd.read_csv(tiny_data / "boxes.csv")
    cut = tmp_path / "boxes.csv"
    cut.write_text(full.head(20).to_csv(index=False) + "ghost.jpg,1,2,30,40\n")
    model = tmp_path / "box_model.pt"
    assert main(["boxes", "fit", str(tiny_data), "--boxes", str(cut), "--out", str(model), "--quiet",
                 "--set", *FAST]) == 0
    out, err = capsys.readouterr()
    assert "held-out photos" in out and model.is_file()
    assert err.count("\n") == 1 and "row 22" in err and "ghost.jpg" in err  # the unknown photo: one line
    boxes_csv = tmp_path / "pred.csv"
    assert main(["boxes", "predict", str(model), str(tiny_data / "test"), "--out", str(boxes_csv), "--quiet"]) == 0
    pred = pd.read_csv(boxes_csv)
    assert list(pred.columns) == ["Image", "x0", "y0", "x1", "y1", "score"]
    assert len(pred) == len(list((tiny_data / "test").iterdir())) and (pred.x1 > pred.x0).all()


def test_report_draws_predicted_boxes_lowest_score_first(tiny_data, tmp_path):
    names = sorted(p.name for p in (tiny_data / "test").iterdir())[:6]
    pred = pd.DataFrame({"Image": names, "x0": 5.0, "y0": 5.0, "x1": 60.0, "y1": 40.0,
                         "score": [0.9, 0.2, 0.7, 0.1, 0.5, 0.3]})
    pdir = tmp_path / "prepared"
    pdir.mkdir()
    pred.to_csv(pdir / "boxes_predicted.csv", index=False)
    index = pd.DataFrame({"image": names, "path": [str(tiny_data / "test" / n) for n in names]})
    page = predicted_boxes_html(pdir, index, shown=3)
    worst = [names[3], names[1], names[5]]  # scores 0.1, 0.2, 0.3
    assert page.count("<img") == 3 and all(n in page for n in worst) and names[0] not in page
    assert [page.find(n) for n in worst] == sorted(page.find(n) for n in worst)
    assert predicted_boxes_html(tmp_path, index) == ""  # no predicted boxes: no section


def test_bad_model_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "m.pt"
    bad.write_text("not a model")
    assert main(["boxes", "predict", str(bad), str(tmp_path), "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "m.pt" in err and "Fix:" in err
