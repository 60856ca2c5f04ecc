"""The field workflow on a tiny trained run: the stored calibration, encounters, auto-accept, enroll."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ray_jobs.cli import main
from whaleflow.identify.run_calibration import CALIBRATION, fit_run_calibration, load_calibration


def _test_paths(run, n):
    idx = pd.read_csv(run / "prepared" / "index.csv", dtype=str, keep_default_na=False)
    return idx.loc[idx["split"] == "test", "path"].tolist()[:n]


def test_the_run_stores_its_calibration_and_a_refit_gives_the_same(run_copy):
    run, _ = run_copy
    stored = json.loads((run / CALIBRATION).read_text())
    assert stored["format"] == "whaleflow.calibration/2" and stored["temperature"] > 0 and "encounters" in stored
    (run / CALIBRATION).unlink()
    again = load_calibration(run)  # an older run without one: fitted from its own validation scores
    assert (run / CALIBRATION).is_file()
    assert again.calibration.temperature == stored["temperature"]
    assert again.calibration.steps.values.tolist() == stored["steps"]["values"]
    check = again.fmr_check(0.2)
    accepted = (1 - again.oof_p) <= 0.2
    assert check["accepted"] == accepted.sum() and check["false_matches"] == (accepted & ~again.oof_right).sum()
    assert check["fmr_low"] <= check["observed_fmr"] <= check["fmr_high"]
    assert sum(b["n"] for b in again.reliability()) == len(again.oof_p)
    assert fit_run_calibration(run, folds=3).folds == 3


def test_identify_encounters_auto_accept_and_enroll_the_decisions(run_copy, tmp_path, capsys):
    run, data = run_copy
    paths = _test_paths(run, 6)
    names = [p.split("/")[-1] for p in paths]
    enc = tmp_path / "enc.csv"
    pd.DataFrame({"image": names, "encounter": ["e1", "e1", "e1", "e2", "e2", "e3"]}).to_csv(enc, index=False)
    out = tmp_path / "m" / "matches.csv"
    assert main(["identify", str(run), *paths, "--encounters", str(enc), "--auto-accept-fmr", "0.9",
                 "--boxes", str(data / "boxes.csv"), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "3 encounter(s)" in printed and "auto-accepted" in printed and "outer folds" in printed
    m = pd.read_csv(out, dtype={"images": str})
    assert m["encounter"].tolist() == ["e1", "e2", "e3"] and m["n_photos"].tolist() == [3, 2, 1]
    assert m["p_correct"].between(0, 1).all()
    photos = pd.read_csv(tmp_path / "m" / "matches_photos.csv")
    assert sorted(photos["image"]) == sorted(names) and photos["p_correct"].between(0, 1).all()
    # e3 is one photo: its row is the photo's ranking
    assert m.loc[2, "predictions"] == photos.set_index("image").loc[names[5], "predictions"]
    dec = pd.read_csv(tmp_path / "m" / "matches_auto_decisions.csv", dtype=str, keep_default_na=False)
    accepted = m.loc[m["auto_accepted"], "encounter"].tolist()
    assert sorted(set(dec["encounter"])) == sorted(accepted)
    for e, rows in dec.groupby("encounter"):
        assert len(rows) == int(m.set_index("encounter").loc[e, "n_photos"])
        assert rows["decision"].nunique() == 1 and rows["id"].nunique() == 1
    page = (tmp_path / "m" / "matches.html").read_text()
    assert 'data-encounters="1"' in page and page.count('class="qrow"') == len(m) - len(accepted)
    if len(dec):
        assert main(["enroll", str(run), str(tmp_path / "m" / "matches_auto_decisions.csv"),
                     "--boxes", str(data / "boxes.csv"), "--device", "cpu", "--quiet"]) == 0
        log = pd.read_csv(run / "gallery" / "enroll_log.csv", dtype=str)
        assert sorted(log["image"]) == sorted(dec["image"])


def test_photo_mode_has_p_correct_and_orders_the_page_by_it(trained_run, tmp_path):
    from whaleflow.identify import identify

    run, data = trained_run
    m = identify(run, _test_paths(run, 5), out=tmp_path / "m.csv", boxes=data / "boxes.csv", device="cpu")
    p = m.frame["p_correct"].to_numpy(float)
    assert np.all((p >= 0) & (p <= 1))
    html = (tmp_path / "m.html").read_text()
    shown = [html.index(f'data-image="{im}"') for im in m.frame["image"]]
    assert [m.frame["image"][i] for i in np.argsort(shown)] == [m.frame["image"][i] for i in np.argsort(p, kind="stable")]


def test_bad_encounter_input_is_one_line(trained_run, tmp_path, capsys):
    run, _ = trained_run
    paths = _test_paths(run, 2)
    enc = tmp_path / "enc.csv"
    enc.write_text(f"image,encounter\n{paths[0].split('/')[-1]},e1\nnot_a_photo.jpg,e1\n")
    assert main(["identify", str(run), *paths, "--encounters", str(enc), "--out", str(tmp_path / "m.csv"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not_a_photo.jpg" in err[0] and "row 3" in err[0]
    assert main(["identify", str(run), *paths, "--auto-accept-fmr", "1.5", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "between 0 and 1" in err[0]
    assert main(["identify", str(run), *paths, "--encounter-gap", "-3", "--quiet"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_report_plots_the_reliability_of_p_correct(run_copy):
    from whaleflow.report import build_report

    run, _ = run_copy
    html = build_report(run).read_text()
    assert "How sure is sure" in html and "reliability of p_correct" not in html  # the title is in the PNG
    assert (run / "report" / "reliability.png").is_file() and 'alt="reliability"' in html
    assert "observed FMR" in html
    assert "validation backs it" in html and "The lowest stated rate its validation supports" in html
    assert "per encounter (flat fusion)" in html and "format 1" not in html


def test_a_rate_validation_cannot_back_accepts_nothing_and_says_so_once(trained_run, tmp_path, capsys):
    """The tiny run's validation has a few dozen queries: 0.1 % needs 1,000 accepted, so
    identify accepts nothing, prints one line saying so (per photo and per encounter), and
    the review page shows it."""
    run, data = trained_run
    paths = _test_paths(run, 4)
    names = [p.split("/")[-1] for p in paths]
    enc = tmp_path / "enc.csv"
    pd.DataFrame({"image": names, "encounter": ["e1", "e1", "e2", "e3"]}).to_csv(enc, index=False)
    out = tmp_path / "m" / "matches.csv"
    assert main(["identify", str(run), *paths, "--encounters", str(enc), "--auto-accept-fmr", "0.001",
                 "--boxes", str(data / "boxes.csv"), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()
    said = [line for line in printed if "validation cannot support a false-match rate of 0.1 %" in line]
    assert [s.split(" per ")[1].split(":")[0] for s in said] == ["photo", "encounter"]
    assert "auto-accepted 0 of 3" in "\n".join(printed)
    m = pd.read_csv(out)
    assert not m["auto_accepted"].any()
    dec = pd.read_csv(tmp_path / "m" / "matches_auto_decisions.csv")
    assert len(dec) == 0
    page = (tmp_path / "m" / "matches.html").read_text()
    assert page.count("validation cannot support") == 2 and page.count('class="qrow"') == len(m)


def test_a_format_1_calibration_still_identifies_and_says_how_to_refit(run_copy, tmp_path, capsys):
    """A run calibrated before encounters were: photos keep their p_correct, encounters of several
    photos get none (to review) and identify says so once; deleting the file refits format 2."""
    run, data = run_copy
    stored = json.loads((run / CALIBRATION).read_text())
    old = {k: v for k, v in stored.items() if k != "encounters"} | {"format": "whaleflow.calibration/1"}
    (run / CALIBRATION).write_text(json.dumps(old))
    paths = _test_paths(run, 3)
    enc = tmp_path / "enc.csv"
    pd.DataFrame({"image": [p.split("/")[-1] for p in paths], "encounter": ["e1", "e1", "e2"]}).to_csv(enc, index=False)
    out = tmp_path / "m.csv"
    assert main(["identify", str(run), *paths, "--encounters", str(enc), "--auto-accept-fmr", "0.9",
                 "--boxes", str(data / "boxes.csv"), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "format 1" in line]
    assert len(notes) == 1 and "delete the file" in notes[0]
    m = pd.read_csv(out)
    assert np.isnan(m.loc[0, "p_correct"]) and not m.loc[0, "auto_accepted"] and 0 <= m.loc[1, "p_correct"] <= 1
    (run / CALIBRATION).unlink()
    assert load_calibration(run).encounters is not None
    assert json.loads((run / CALIBRATION).read_text())["format"] == "whaleflow.calibration/2"
