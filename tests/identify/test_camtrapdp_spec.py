"""The Camtrap DP 1.0 check: each rule catches its violation on a small hand-made package;
the exporter's file URLs, unique ids and clipped boxes."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from whaleflow.export.camtrapdp import _boxes, datapackage, file_url, package_name, unique_ids
from whaleflow.export.camtrapdp_spec import REQUIRED, problems

#: Camtrap DP 1.0 required fields, written by hand from the 1.0 table schemas
#: (https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0/{deployments,media,observations}-table-schema.json,
#: the fields whose constraints say "required": true)
REQUIRED_1_0 = {
    "deployments": ["deploymentID", "latitude", "longitude", "deploymentStart", "deploymentEnd"],
    "media": ["mediaID", "deploymentID", "timestamp", "filePath", "filePublic", "fileMediatype"],
    "observations": ["observationID", "deploymentID", "eventStart", "eventEnd", "observationLevel", "observationType"],
}


def _good():
    dep = pd.DataFrame({"deploymentID": ["d1"], "latitude": ["64.1"], "longitude": ["-21.9"],
                        "deploymentStart": ["2026-07-01T09:00:00Z"], "deploymentEnd": ["2026-07-21T09:00:00Z"]})
    media = pd.DataFrame({"mediaID": ["a.jpg", "b.jpg"], "deploymentID": "d1",
                          "timestamp": ["2026-07-01T09:00:00Z", "2026-07-21T09:00:00+02:00"],
                          "filePath": ["file:///data/a.jpg", "media/b.jpg"], "filePublic": "false",
                          "fileMediatype": "image/jpeg"})
    obs = pd.DataFrame({"observationID": ["o1", "o2"], "deploymentID": "d1", "mediaID": ["a.jpg", "b.jpg"],
                        "eventStart": media["timestamp"], "eventEnd": media["timestamp"],
                        "observationLevel": "media", "observationType": "animal", "individualID": ["w1", "w2"],
                        "bboxX": ["0.1", ""], "bboxY": ["0.2", ""], "bboxWidth": ["0.5", ""], "bboxHeight": ["0.4", ""],
                        "classificationMethod": "human", "count": "1"})
    tabs = {"deployments": dep, "media": media, "observations": obs}
    opts = SimpleNamespace(name="whaleflow-catalogue", contributor="me", longitude=-21.9, latitude=64.1,
                           scientific_name="Megaptera novaeangliae")
    return tabs, datapackage(tabs, opts)


def test_the_hand_written_list_is_the_checks_list():
    assert {k: list(v) for k, v in REQUIRED.items()} == REQUIRED_1_0


def test_a_good_package_has_no_problem():
    assert problems(*_good()) == []


BREAKS = [
    # (table, column, value or None to drop the column, the problem's words)
    ("media", "filePath", "/data/a.jpg", "neither a URL nor a path inside the package"),
    ("media", "filePath", "../a.jpg", "neither a URL"),
    ("media", "filePath", "~/a.jpg", "neither a URL"),
    ("media", "filePath", "photos/../a.jpg", "neither a URL"),
    ("media", "fileMediatype", None, "required field fileMediatype is missing"),
    ("media", "timestamp", "2026-07-01 09:00:00", "is not YYYY-MM-DDThh:mm:ss"),
    ("media", "timestamp", "2026-07-01T09:00:00", "is not YYYY-MM-DDThh:mm:ss"),
    ("media", "filePublic", "no", "filePublic 'no' is not one of"),
    ("media", "mediaID", "a.jpg", "mediaID 'a.jpg' is not unique"),
    ("observations", "eventEnd", "", "required field eventEnd is empty in 2 row(s)"),
    ("observations", "observationLevel", None, "observationLevel is missing"),
    ("observations", "observationType", "whale", "observationType 'whale' is not one of"),
    ("observations", "bboxWidth", "1.5", "bboxWidth outside [1e-15, 1]"),
    ("observations", "bboxX", "-0.1", "bboxX outside [0, 1]"),
    ("observations", "mediaID", "zz.jpg", "mediaID 'zz.jpg' is not in media"),
    ("observations", "deploymentID", "d2", "deploymentID 'd2' is not in deployments"),
    ("deployments", "latitude", "91", "latitude outside [-90, 90]"),
    ("deployments", "deploymentEnd", None, "deploymentEnd is missing"),
]


@pytest.mark.parametrize("table,column,value,words", BREAKS)
def test_each_rule_catches_its_violation(table, column, value, words):
    tabs, pkg = _good()
    t = tabs[table]
    tabs[table] = t.drop(columns=column) if value is None else t.assign(**{column: value})
    found = problems(tabs, pkg)
    assert any(words in p for p in found), found


@pytest.mark.parametrize("edit,words", [
    (lambda p: p.pop("taxonomic"), "required property taxonomic is missing"),
    (lambda p: p.pop("created"), "required property created is missing"),
    (lambda p: p["project"].pop("individualAnimals"), "project.individualAnimals is missing"),
    (lambda p: p["project"].update(captureMethod=["handHeld"]), "captureMethod holds a term outside"),
    (lambda p: p.update(name="Whale Catalogue"), "may hold only lower-case"),
    (lambda p: p["contributors"][0].update(role="author"), "needs a title and a role"),
    (lambda p: p["resources"].pop(1), "resource media is missing"),
    (lambda p: p.update(profile="https://raw.githubusercontent.com/tdwg/camtrap-dp/0.1.6/x.json"), "not the Camtrap DP 1.0"),
])
def test_each_package_rule_catches_its_violation(edit, words):
    tabs, pkg = _good()
    edit(pkg)
    found = problems(tabs, pkg)
    assert any(words in p for p in found), found


def test_file_urls_meet_the_pattern_and_lead_back_to_the_photo(tmp_path):
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    from whaleflow.export.camtrapdp_spec import FILE_PATH

    for name in ("a.jpg", "two words.jpg", "odd..name.jpg"):
        p = tmp_path / "sub" / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x")
        url = file_url(tmp_path / "sub" / ".." / "sub" / name)
        assert url.startswith("file:///") and FILE_PATH.match(url), url
        assert p.read_bytes() == open(url2pathname(urlparse(url).path), "rb").read()


def test_unique_ids_number_repeated_names():
    got = unique_ids(pd.Series(["a.jpg", "b.jpg", "a.jpg", "a.jpg"]))
    assert got.tolist() == ["a.jpg", "b.jpg", "a.jpg_2", "a.jpg_3"] and got.is_unique


def test_package_names_are_frictionless_names():
    assert package_name("Whale Catalogue 2026!") == "whale-catalogue-2026"
    assert package_name("***") == "whaleflow-catalogue"


def test_boxes_are_clipped_to_the_photo_and_empty_when_nothing_is_inside(tmp_path):
    photo = tmp_path / "p.jpg"
    Image.new("L", (200, 100)).save(photo)
    rec = pd.DataFrame({"path": [str(photo)] * 4, "x0": [20, -20, 250, np.nan], "y0": [10, 10, 10, 0],
                        "x1": [120, 100, 300, 5], "y1": [60, 150, 50, 5]})
    box = _boxes(rec)
    assert box.iloc[0].tolist() == pytest.approx([0.1, 0.1, 0.5, 0.5])
    assert box.iloc[1].tolist() == pytest.approx([0.0, 0.1, 0.5, 0.9])   # clipped on the left and below
    assert box.iloc[2].isna().all() and box.iloc[3].isna().all()         # outside the photo; unknown
