"""Encounters: fusion on hand-made cases, the encounter CSV and EXIF-time grouping, bad input."""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from whaleflow.data.sightings import with_exif_time
from whaleflow.errors import DataError
from whaleflow.identify.auto_accept import accepted_mask, auto_decisions, check_rate
from whaleflow.identify.calibration import Calibration, IsotonicSteps
from whaleflow.identify.encounter_calibration import EncounterCalibration
from whaleflow.identify.encounter_matches import encounter_frame
from whaleflow.identify.encounters import encounters_by_gap, exif_time, fuse, ranked, read_encounters


def _logp(probs):
    p = np.asarray(probs, float)
    return np.log(p / p.sum(axis=1, keepdims=True))


def test_fusion_sums_evidence_where_a_max_of_scores_would_follow_one_photo():
    # outcomes: A, B, new. Two photos lean to A; one photo is very sure of B.
    logp = _logp([[0.6, 0.3, 0.1], [0.6, 0.3, 0.1], [0.2, 0.75, 0.05]])
    assert np.argmax(logp.max(axis=0)) == 1  # the max of per-photo scores picks B
    fused = fuse(logp)
    brute = np.prod(np.exp(logp), axis=0)
    np.testing.assert_allclose(np.exp(fused), brute / brute.sum())
    assert np.argmax(fused) == 0 and np.exp(fused).sum() == pytest.approx(1.0)
    # one photo: unchanged; a clear photo outweighs a blurred one leaning the other way
    np.testing.assert_allclose(fuse(logp[:1])[None], logp[:1])
    assert np.argmax(fuse(_logp([[0.9, 0.05, 0.05], [0.3, 0.4, 0.3]]))) == 0
    # "new" is one outcome: photos that each find no good match stay new together
    assert np.argmax(fuse(_logp([[0.2, 0.2, 0.6], [0.25, 0.15, 0.6]]))) == 2


def test_fusion_takes_the_extra_priors_back_out():
    """Naive Bayes: P(c | x1..xn) ∝ Π P(c | xi) / π(c)^(n-1). Two photos that each give A 0.4 and
    new 0.5: a flat fusion says new, but new was 30 % likely before any photo and A 0.7 %."""
    cal = Calibration(1.0, IsotonicSteps(np.zeros(1), np.ones(1), np.ones(1), np.ones(1)), new_share=0.3)
    prior = cal.log_prior(100)
    np.testing.assert_allclose(np.exp(prior), np.r_[np.full(100, 0.007), 0.3])
    row = np.r_[0.4, np.full(99, 0.1 / 99), 0.5]
    logp = np.log(np.stack([row, row]))
    assert np.argmax(fuse(logp)) == 100
    fused = fuse(logp, prior)
    brute = row * row / np.exp(prior)
    np.testing.assert_allclose(np.exp(fused), brute / brute.sum())
    assert np.argmax(fused) == 0
    np.testing.assert_allclose(fuse(logp[:1], prior), logp[0])  # one photo: its own posterior
    assert Calibration.from_dict(cal.to_dict()).new_share == 0.3


def test_ranked_outcomes_and_probabilities():
    labels, probs = ranked(np.log([0.1, 0.6, 0.3]), np.array(["a", "b"]), "new_whale", k=5)
    assert labels == ["b", "new_whale", "a"] and probs == pytest.approx([0.6, 0.3, 0.1])


def _photos_frame():
    cal = Calibration(1.0, IsotonicSteps(np.array([0.0, 0.5, 0.8]), np.array([0.3, 0.7, 0.995]),
                                         np.array([10, 10, 200]), np.array([3, 7, 199])))
    logp = _logp([[0.6, 0.3, 0.1], [0.6, 0.3, 0.1], [0.2, 0.75, 0.05], [0.1, 0.1, 0.8]])
    frame = pd.DataFrame({
        "image": ["a.jpg", "b.jpg", "c.jpg", "d.jpg"], "predictions": ["A B new_whale", "A B new_whale",
                                                                        "B A new_whale", "new_whale A B"],
        "scores": ["1 0.5 0.2"] * 4, "new_individual": [False, False, False, True], "margin": [0.1, 0.2, 0.3, 0.4],
        "p_correct": cal.p_correct_from_logprobs(logp), "path": ["/p/a.jpg", "/p/b.jpg", "/p/c.jpg", "/p/d.jpg"],
        **{f"closest_{k}": [f"g{k}{i}" for i in range(4)] for k in range(1, 6)}})
    frame.attrs["logprobs"], frame.attrs["classes"] = logp, np.array(["A", "B"])
    frame.attrs["closest"] = np.array([[f"gA{i}", f"gB{i}"] for i in range(4)], dtype=object)
    return frame, cal


def test_encounter_rows_fuse_their_photos_and_decisions_cover_every_photo():
    frame, cal = _photos_frame()
    groups = {"a.jpg": "e1", "b.jpg": "e1", "c.jpg": "e1", "d.jpg": "e2"}
    # encounters of several photos take the encounter calibration's steps (none: no p_correct)
    ecal = EncounterCalibration("flat", IsotonicSteps(np.array([0.0, 0.9]), np.array([0.4, 0.995]),
                                                      np.array([5, 300]), np.array([2, 299])), None,
                                np.zeros(0), np.zeros(0, bool), np.zeros(0, int))
    enc = encounter_frame(frame, groups, cal, encounter_calibration=ecal)
    assert enc["encounter"].tolist() == ["e1", "e2"] and enc["n_photos"].tolist() == [3, 1]
    assert enc["predictions"][0].split()[0] == "A" and enc["images"][0] == "a.jpg|b.jpg|c.jpg"
    fused = fuse(frame.attrs["logprobs"][:3])
    top = float(np.exp(fused.max()))
    assert enc["p_correct"][0] == pytest.approx(0.995 if top >= 0.9 else 0.4, abs=1e-4)
    assert enc["p_correct"][1] == pytest.approx(frame["p_correct"][3], abs=1e-4)  # one photo: its own
    assert np.isnan(encounter_frame(frame, groups, cal)["p_correct"][0])
    assert enc["predictions"][1] == "new_whale A B"  # one photo keeps its own ranking
    # each candidate's closest gallery photo comes from the photo with the most evidence for it
    assert enc["closest_1"][0] == "gA0" and enc["closest_2"][0] == "gB2" and enc["closest_3"][0] == ""
    rate = 0.01
    acc = accepted_mask(enc, rate)
    assert acc.tolist() == [(1 - enc["p_correct"][0]) <= rate, (1 - enc["p_correct"][1]) <= rate]
    dec = auto_decisions(enc, np.array([True, True]))
    assert dec["image"].tolist() == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert dec["decision"].tolist() == ["accept"] * 3 + ["new"] and dec["id"].tolist()[:3] == ["A"] * 3
    assert dec["id"][3] == "new_e2" and dec["path"][2] == "/p/c.jpg"


def test_a_photo_whose_label_the_near_duplicate_rule_moved_sends_its_encounter_to_review():
    frame, cal = _photos_frame()
    frame.loc[1, "p_correct"] = np.nan
    enc = encounter_frame(frame, {"a.jpg": "e1", "b.jpg": "e1"}, cal)
    assert np.isnan(enc["p_correct"][0]) and not accepted_mask(enc, 0.5)[0]


def test_encounter_csv_unknown_image_is_one_line_naming_the_row(tmp_path):
    path = tmp_path / "enc.csv"
    path.write_text("image,encounter\na.jpg,e1\nzz.jpg,e1\n")
    with pytest.raises(DataError) as err:
        read_encounters(path, ["a.jpg", "b.jpg"])
    text = str(err.value)
    assert "\n" not in text and "row 3" in text and "zz.jpg" in text and str(path) in text and "Fix:" in text
    path.write_text("image,encounter\na.jpg,e1\n")
    got, notes = read_encounters(path, ["a.jpg", "b.jpg"])
    assert got == {"a.jpg": "e1", "b.jpg": "b.jpg"} and "1 photo(s)" in notes[0]
    path.write_text("photo,encounter\na.jpg,e1\n")
    with pytest.raises(DataError, match="missing column"):
        read_encounters(path, ["a.jpg"])


@pytest.mark.parametrize("rate", ["0", "1", "-0.1", "1.5", "abc", "nan"])
def test_rate_outside_zero_one_is_one_line(rate):
    with pytest.raises(DataError) as err:
        check_rate(rate)
    assert "\n" not in str(err.value) and "between 0 and 1" in str(err.value)
    assert check_rate("0.01") == 0.01


def test_gap_groups_photos_by_exif_time_and_says_which_have_none(tmp_path):
    from PIL import Image
    import io

    def photo(name, when):
        buf = io.BytesIO()
        Image.new("RGB", (16, 16), (90, 90, 90)).save(buf, "JPEG")
        data = buf.getvalue() if when is None else with_exif_time(buf.getvalue(), when)
        (tmp_path / name).write_bytes(data)
        return str(tmp_path / name)

    t = datetime(2026, 7, 1, 10, 0, 0)
    times = {"a.jpg": t, "b.jpg": t.replace(second=30), "c.jpg": t.replace(minute=1, second=20),
             "d.jpg": t.replace(hour=12), "e.jpg": None}
    paths = [photo(n, w) for n, w in times.items()]
    assert exif_time(paths[1]) == t.replace(second=30) and exif_time(paths[4]) is None
    got, notes = encounters_by_gap(list(times), paths, 60)
    # a→b 30 s, b→c 50 s: one chain; d two hours later; e has no time
    assert got["a.jpg"] == got["b.jpg"] == got["c.jpg"] != got["d.jpg"]
    assert got["e.jpg"] == "e.jpg" and "1 photo(s) have no EXIF time" in notes[0]
    got, _ = encounters_by_gap(list(times), paths, 40)
    assert got["a.jpg"] == got["b.jpg"] != got["c.jpg"]
    with pytest.raises(DataError):
        encounters_by_gap(list(times), paths, 0)


def test_encounter_fusion_ways_differ_only_in_the_prior():
    frame, cal = _photos_frame()
    cal.new_share = 0.3
    groups = {"a.jpg": "e1", "b.jpg": "e1", "c.jpg": "e1", "d.jpg": "e2"}
    flat = encounter_frame(frame, groups, cal, "flat")
    bayes = encounter_frame(frame, groups, cal, "bayes")
    logp = frame.attrs["logprobs"][:3]
    for got, prior in ((flat, None), (bayes, cal.log_prior(2))):
        labels, probs = ranked(fuse(logp, prior), np.array(["A", "B"]), "new_whale")
        assert got["predictions"][0] == " ".join(labels)
        assert [float(v) for v in got["scores"][0].split()] == pytest.approx(probs, abs=1e-4)
    assert flat["predictions"][1] == bayes["predictions"][1]  # one photo: the same either way
    with pytest.raises(DataError, match="unknown encounter fusion"):
        encounter_frame(frame, groups, cal, "max")


def test_enroll_reads_an_encounters_decision_for_all_its_photos_and_refuses_a_split_one(tmp_path):
    from whaleflow.identify import read_decisions

    path = tmp_path / "dec.csv"
    path.write_text("image,path,decision,id,encounter\na.jpg,/p/a.jpg,accept,w_1,e1\nb.jpg,/p/b.jpg,accept,w_1,e1\n"
                    "c.jpg,/p/c.jpg,new,zz,e2\nd.jpg,/p/d.jpg,new,zz,e2\n")
    rows, _ = read_decisions(path, known={"w_1"})
    assert [(r["image"], r["id"], r["encounter"]) for r in rows] == [
        ("a.jpg", "w_1", "e1"), ("b.jpg", "w_1", "e1"), ("c.jpg", "zz", "e2"), ("d.jpg", "zz", "e2")]
    path.write_text("image,path,decision,id,encounter\na.jpg,/p/a.jpg,accept,w_1,e1\nb.jpg,/p/b.jpg,accept,w_2,e1\n")
    with pytest.raises(DataError) as err:
        read_decisions(path, known={"w_1", "w_2"})
    assert "row 3" in str(err.value) and "encounter 'e1'" in str(err.value) and "\n" not in str(err.value)
