"""build_report on a fake run folder: files, image sources, gallery order, graceful gaps."""
from __future__ import annotations

import base64
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from whaleflow.errors import DataError
from whaleflow.report import build_report, load_run, select_queries


class _Page(HTMLParser):
    """Collects every <img src>, the gallery rows' kinds and the tiles framed as correct."""

    def __init__(self):
        super().__init__()
        self.imgs: list[str] = []
        self.rows: list[str] = []
        self.row_heads: list[str] = []
        self.correct_labels: list[str] = []
        self.placeholders = 0
        self._in_correct = 0
        self._in_head = False
        self._depth = 0
        self._want_label = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if "grow" in cls:
            self.rows.append(next(c[5:] for c in cls if c.startswith("grow-")))
        if "ghead" in cls:
            self._in_head = True
            self.row_heads.append("")
        if "correct" in cls:
            self._in_correct = True
        if "newwhale" in cls:
            self.placeholders += 1
        if self._in_correct and "lab" in cls:
            self._want_label = True

    def handle_endtag(self, tag):
        if tag == "div" and self._in_head:
            self._in_head = False

    def handle_data(self, data):
        if self._in_head:
            self.row_heads[-1] += data
        if self._want_label:
            self.correct_labels.append(data)
            self._want_label = False
            self._in_correct = False


def _parse(path: Path) -> _Page:
    p = _Page()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def test_build_report_writes_page_figures_and_summary(built_run):
    fake_run = built_run
    index = fake_run / "report" / "index.html"
    out = fake_run / "report"
    assert index == out / "index.html" and index.is_file()
    names = {p.name for p in out.glob("*.png")}
    assert {"scores.png", "weights.png", "threshold.png", "hits.png", "data.png", "gallery.png",
            "curves_metric_r50.png", "curves_siamese_r18.png"} <= names
    for name in names:
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.width > 200
    assert json.loads((out / "summary.json").read_text()) == json.loads((fake_run / "summary.json").read_text())
    html = index.read_text()
    for text in ("Ensemble · validation MAP@5", "0.660", "Test MAP@5", "frequency baseline", "metric_r50",
                 "Blend weight", "Where it fails", "Resolved configuration", "a note from the ensemble",
                 "Gallery sizes", "one query per known individual", "0.580 – 0.710", "0.410", "λ 0.40–0.90", "47 % (test)",
                 "w_0002_0.jpg"):  # the last one: the leaks table
        assert text in html, text


def test_every_img_source_resolves(built_run):
    index = built_run / "report" / "index.html"
    page = _parse(index)
    assert len(page.imgs) > 20  # figures plus gallery thumbnails
    for src in page.imgs:
        if src.startswith("data:"):
            head, payload = src.split(",", 1)
            assert head.endswith(";base64")
            with Image.open(io.BytesIO(base64.b64decode(payload))) as im:
                im.load()
                assert im.width > 0
        else:
            assert (index.parent / src).is_file(), src


def test_gallery_lists_worst_misses_first(built_run):
    fake_run = built_run
    page = _parse(fake_run / "report" / "index.html")
    kinds = page.rows
    assert kinds and kinds[0] == "miss"
    order = {"miss": 0, "late": 1, "hit": 2}
    assert [order[k] for k in kinds] == sorted(order[k] for k in kinds)
    vp = pd.read_csv(fake_run / "ensemble" / "val_predictions.csv")
    misses = vp[vp["hit_position"] == 0].sort_values("top1_score", ascending=False)
    shown = [h.split()[1] for h in page.row_heads[: len(misses)]]  # "miss <image> · ..."
    assert shown == list(misses["image"])


def test_correct_match_framed_and_new_whale_placeholder(built_run):
    fake_run = built_run
    page = _parse(fake_run / "report" / "index.html")
    vp = pd.read_csv(fake_run / "ensemble" / "val_predictions.csv")
    hits = vp[vp["hit_position"] > 0]
    assert sorted(page.correct_labels) == sorted(hits["truth"])  # exactly the hits are framed
    assert page.placeholders >= (vp["top5"].str.contains("new_whale")).sum()


def test_select_queries_order_and_limits(built_run):
    vp = load_run(built_run).val_predictions
    rows = select_queries(vp, misses=2, late=3, hits=1)
    assert list(rows["kind"]) == ["miss"] * 2 + ["late"] * 3 + ["hit"]
    assert rows["top1_score"].iloc[0] >= rows["top1_score"].iloc[1]
    late = rows[rows["kind"] == "late"]["hit_position"].tolist()
    assert late == sorted(late, reverse=True)


def test_without_answers_there_is_no_test_row(fake_run):
    s = json.loads((fake_run / "summary.json").read_text())
    for k in ("test_map5", "test_map5_frequency_baseline"):
        s.pop(k)
    (fake_run / "summary.json").write_text(json.dumps(s))
    html = build_report(fake_run).read_text()
    assert "Test MAP@5" not in html and "frequency baseline" not in html


def test_trial_without_metrics_gets_a_note(fake_run):
    (fake_run / "trials" / "siamese_r18" / "metrics.csv").unlink()
    index = build_report(fake_run)
    assert "no metrics.csv" in index.read_text()
    assert not (index.parent / "curves_siamese_r18.png").exists()
    assert (index.parent / "curves_metric_r50.png").exists()


def test_rebuild_drops_stale_figures(fake_run):
    build_report(fake_run)
    shutil.rmtree(fake_run / "trials" / "siamese_r18")
    index = build_report(fake_run)
    assert not (index.parent / "curves_siamese_r18.png").exists()


def test_run_without_ensemble_or_cache_still_builds(fake_run):
    shutil.rmtree(fake_run / "ensemble")
    shutil.rmtree(fake_run / "prepared" / "cache")
    s = json.loads((fake_run / "summary.json").read_text())  # a run that stopped before the ensemble
    for k in ("ensemble", "val_map5"):
        s.pop(k)
    (fake_run / "summary.json").write_text(json.dumps(s))
    html = build_report(fake_run).read_text()
    assert "The ensemble has not run" in html
    assert "No ensemble/val_predictions.csv" in html
    assert "metric_r50" in html


def test_empty_folder_builds_a_page_of_notes(tmp_path):
    (tmp_path / "nothing").mkdir()
    html = build_report(tmp_path / "nothing").read_text()
    assert "no results yet" in html and "no trials/ folder" in html


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(DataError):
        build_report(tmp_path / "typo")
    assert not (tmp_path / "typo").exists()


def test_thumbnails_fall_back_to_original_files(built_run):
    from whaleflow.report.gallery import ImageSource

    art = load_run(built_run)
    src = ImageSource(art.prepared_dir, art.index, {})  # no cache: originals only
    first = art.index["image"].iloc[0]
    assert src.data_uri(first).startswith("data:image/jpeg;base64,")
    assert src.data_uri("test_4.jpg") is None  # neither cached nor on disk


def test_labels_are_escaped(fake_run):
    vp_path = fake_run / "ensemble" / "val_predictions.csv"
    vp = pd.read_csv(vp_path)
    vp.loc[0, "truth"] = "<script>x</script>"
    vp.loc[0, "hit_position"] = 0
    vp.to_csv(vp_path, index=False)
    html = build_report(fake_run).read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
