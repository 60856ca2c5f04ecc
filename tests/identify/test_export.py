"""``whaleflow export``: each format written from a run (plus an enrolled photo) and read back."""
from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest
from PIL import Image

from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from test_camtrapdp_spec import REQUIRED_1_0  # the hand-written Camtrap DP 1.0 required fields
from ray_jobs.cli import main
from whaleflow.export.camtrapdp_spec import problems
from whaleflow.export.capture_history import capture_history
from whaleflow.export.occasions import occasion_labels
from whaleflow.export.records import load_records


@pytest.fixture(scope="module")
def enrolled_run(trained_run, tmp_path_factory):
    """A copy of the trained run with one test photo enrolled as a new individual, and a dates CSV."""
    import shutil

    run, data = trained_run
    root = tmp_path_factory.mktemp("export")
    shutil.copytree(run, root / "run")
    idx = pd.read_csv(run / "prepared" / "index.csv", dtype=str, keep_default_na=False)
    photo = idx.loc[idx["split"] == "test", "path"].iloc[0]
    name = photo.split("/")[-1]
    pd.DataFrame({"image": [name], "path": [photo], "decision": ["new"], "id": ["zz export"]}).to_csv(
        root / "dec.csv", index=False)
    assert main(["enroll", str(root / "run"), str(root / "dec.csv"), "--boxes", str(data / "boxes.csv"),
                 "--device", "cpu", "--quiet"]) == 0
    labelled = idx[(idx["split"] == "train") & (idx["id"] != "new_whale")]
    images = [*labelled["image"], name]
    # three survey days, ten days apart; the last labelled photo has no date
    dates = [f"2026-07-{1 + 10 * (i % 3):02d}T09:00:00" for i in range(len(images))]
    frame = pd.DataFrame({"image": images, "date": dates}).drop(index=len(images) - 2)
    frame.to_csv(root / "dates.csv", index=False)
    return root / "run", root / "dates.csv", data, name


def test_records_hold_the_runs_labelled_photos_and_the_enrolled_one(enrolled_run):
    run, dates, data, name = enrolled_run
    rec = load_records(run, dates=dates, boxes=data / "boxes.csv")
    assert rec.loc[rec["image"] == name, "id"].item() == "zz export"
    assert rec.loc[rec["image"] == name, "source"].item() == "enrolled"
    assert rec["x0"].notna().all() and rec["date"].isna().sum() == 1


def test_capture_history_read_back_equals_a_brute_force_count(enrolled_run, tmp_path, capsys):
    run, dates, data, _ = enrolled_run
    out = tmp_path / "ch.csv"
    assert main(["export", str(run), "--format", "capture-history", "--out", str(out), "--dates", str(dates),
                 "--occasion", "day", "--boxes", str(data / "boxes.csv")]) == 0
    assert "1 photo(s) without a date left out" in capsys.readouterr().out
    got = pd.read_csv(out, dtype={"ch": str})
    rec = load_records(run, dates=dates)
    occasions = sorted({d.strftime("%Y-%m-%d") for d in rec["date"].dropna()})
    assert list(got.columns) == ["individual", *occasions, "ch", "photos"]
    for row in got.to_dict("records"):
        mine = rec[(rec["id"] == row["individual"]) & rec["date"].notna()]
        seen = {d.strftime("%Y-%m-%d") for d in mine["date"]}
        assert [row[o] for o in occasions] == [int(o in seen) for o in occasions]
        assert row["ch"] == "".join(str(int(o in seen)) for o in occasions) and row["photos"] == len(mine)
    assert set(got["individual"]) == set(rec.loc[rec["date"].notna(), "id"])


def test_occasion_lengths():
    d = pd.Series(pd.to_datetime(["2026-07-01", "2026-07-05", "2026-07-12", "2026-08-02", None]))
    assert occasion_labels(d, "month").tolist() == ["2026-07", "2026-07", "2026-07", "2026-08", None]
    assert occasion_labels(d, "week").tolist()[:3] == ["2026-06-29", "2026-06-29", "2026-07-06"]
    assert occasion_labels(d, "10d").tolist()[:4] == ["2026-07-01", "2026-07-01", "2026-07-11", "2026-07-31"]
    rec = pd.DataFrame({"id": ["a", "a", "b", "b", "c"], "date": d})
    ch = capture_history(rec, "month")
    assert ch["ch"].tolist() == ["10", "11"] and ch["individual"].tolist() == ["a", "b"]


def test_camtrapdp_read_back(enrolled_run, tmp_path):
    run, dates, data, name = enrolled_run
    out = tmp_path / "dp"
    assert main(["export", str(run), "--format", "camtrapdp", "--out", str(out), "--dates", str(dates),
                 "--latitude", "64.1", "--longitude", "-21.9", "--boxes", str(data / "boxes.csv")]) == 0
    pkg = json.loads((out / "datapackage.json").read_text())
    assert pkg["profile"].endswith("/1.0/camtrap-dp-profile.json")
    assert [r["name"] for r in pkg["resources"]] == ["deployments", "media", "observations"]
    tabs = {r["name"]: pd.read_csv(out / r["path"], dtype=str, keep_default_na=False) for r in pkg["resources"]}
    obs, media, dep = tabs["observations"], tabs["media"], tabs["deployments"]
    for table, fields in REQUIRED_1_0.items():  # every field Camtrap DP 1.0 requires, filled in every row
        for col in fields:
            assert col in tabs[table].columns and (tabs[table][col] != "").all(), (table, col)
    assert problems(tabs, pkg) == []
    for url, image in zip(media["filePath"], media["fileName"]):  # a URL that leads back to the photo
        assert url.startswith("file:///") and Path(url2pathname(urlparse(url).path)).name == image
        assert Path(url2pathname(urlparse(url).path)).is_file()
    assert obs["observationID"].is_unique and set(obs["mediaID"]) == set(media["mediaID"])
    assert set(obs["deploymentID"]) == set(dep["deploymentID"]) and dep["latitude"].tolist() == ["64.1"]
    for t in media["timestamp"]:
        datetime.strptime(t.replace("Z", "+00:00"), "%Y-%m-%dT%H:%M:%S%z")
    rec = load_records(run, dates=dates).dropna(subset=["date"]).set_index("image")
    assert dict(zip(obs["mediaID"], obs["individualID"])) == rec["id"].to_dict()
    row = obs.set_index("mediaID").loc[name]
    assert row["individualID"] == "zz export" and row["classifiedBy"].startswith("whaleflow enroll")
    b = [float(row[c]) for c in ("bboxX", "bboxY", "bboxWidth", "bboxHeight")]
    assert all(0 <= v <= 1 for v in b) and b[2] > 0


def test_catalog_folder_read_back(enrolled_run, tmp_path):
    run, dates, data, name = enrolled_run
    out = tmp_path / "cat"
    assert main(["export", str(run), "--format", "catalog", "--out", str(out), "--boxes", str(data / "boxes.csv")]) == 0
    table = pd.read_csv(out / "catalog.csv", dtype={"individual": str})
    rec = load_records(run, boxes=data / "boxes.csv")
    assert sorted(table["image"]) == sorted(rec["image"])
    assert {p.name for p in out.iterdir() if p.is_dir()} == {i.replace(" ", "_") for i in rec["id"]}
    for row in table.to_dict("records"):
        with Image.open(out / row["file"]) as im:
            w, h = im.size
        assert row["cropped"] and (w, h) == (round(row["x1"]) - round(row["x0"]), round(row["y1"]) - round(row["y0"]))
    assert table.set_index("image").loc[name, "file"].startswith("zz_export/")


def test_export_bad_input_is_one_line(enrolled_run, tmp_path, capsys):
    run, dates, _, _ = enrolled_run
    cases = [(["--format", "camtrapdp", "--dates", str(dates)], "latitude"),
             (["--format", "capture-history", "--dates", str(dates), "--occasion", "fortnight"], "occasion"),
             (["--format", "shapefile"], "unknown export format")]
    for extra, text in cases:
        assert main(["export", str(run), "--out", str(tmp_path / "x"), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and text in err[0], err
    bad = tmp_path / "dates.csv"
    bad.write_text("image,date\na.jpg,yesterday\n")
    assert main(["export", str(run), "--out", str(tmp_path / "x"), "--format", "catalog", "--dates", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "row 2" in err[0]
