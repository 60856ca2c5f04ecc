"""identify on a tiny trained run: the same top 5 as its submission, bad input, the blend rule."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ray_jobs.cli import main
from whaleflow.ensemble.blend import blend_matrices
from whaleflow.identify import identify, load_run
from whaleflow.identify.scoring import blend_with_coverage
from whaleflow.submission import read_submission


def _test_photos(run):
    idx = pd.read_csv(run / "prepared" / "index.csv", dtype=str, keep_default_na=False)
    return idx.loc[idx["split"] == "test", "path"].tolist()


def test_identify_gives_the_submissions_top5_on_the_runs_test_photos(trained_run, tmp_path, capsys):
    run, data = trained_run
    out = tmp_path / "m" / "matches.csv"
    # through the command line, on the test folder as a user would pass it
    assert main(["identify", str(run), str(data / "test"), "--out", str(out), "--boxes", str(data / "boxes.csv"),
                 "--device", "cpu", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "matches:" in printed and "review page:" in printed
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    sub = read_submission(run / "submission.csv")
    assert sorted(frame["image"]) == sorted(sub)
    got = dict(zip(frame["image"], frame["predictions"].str.split()))
    assert got == sub
    for scores in frame["scores"]:
        assert len(scores.split()) == 5
    assert (out.with_suffix(".html")).is_file()


def test_identify_as_a_function_matches_too(trained_run):
    run, data = trained_run
    tr = load_run(run, device="cpu")
    paths = _test_photos(run)[:7]
    m = identify(tr, paths, out=None, page=False, boxes=data / "boxes.csv")
    sub = read_submission(run / "submission.csv")
    assert len(m.frame) == 7 and all(m.top5()[im] == sub[im] for im in m.top5())
    # every model of the tuned blend is used, the classifier included
    assert set(tr.names) == set(tr.weights) and "classifier" in tr.names
    assert {f.family for f in tr.families} == {"metric", "siamese", "arcface"}


def test_run_without_exported_models_is_a_one_line_error(run_copy, capsys):
    run, data = run_copy
    (run / "trials" / "siamese_compact" / "model.pt").unlink()
    assert main(["identify", str(run), str(data / "test"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.pt" in err[0] and "siamese_compact" in err[0] and "Fix:" in err[0]


def test_folder_without_images_is_a_one_line_error(trained_run, tmp_path, capsys):
    run, _ = trained_run
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no photos here")
    assert main(["identify", str(run), str(empty), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no images" in err[0] and str(empty) in err[0]


def test_unreadable_photo_is_skipped_and_counted(trained_run, tmp_path, capsys):
    run, data = trained_run
    photos = tmp_path / "season"
    photos.mkdir()
    good = sorted((data / "test").glob("*.jpg"))[:2]
    for p in good:
        (photos / p.name).write_bytes(p.read_bytes())
    (photos / "broken.jpg").write_bytes(good[0].read_bytes()[:200])  # cut off mid-stream
    out = tmp_path / "matches.csv"
    assert main(["identify", str(run), str(photos), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "skipped 1 unreadable" in printed and "broken.jpg" in printed
    assert sorted(pd.read_csv(out)["image"]) == sorted(p.name for p in good)


def test_blend_with_coverage_against_a_per_column_loop():
    """Fully covered columns: the plain blend. The others: the renormalised blend of the models
    that cover them, mapped by rank onto the plain blend of the fully covered columns."""
    from whaleflow.inference.impute import impute_columns

    rng = np.random.default_rng(0)
    mats = [rng.normal(size=(4, 6)).astype(np.float32) for _ in range(3)]
    weights = [0.5, 0.2, 0.3]
    full = [np.ones(6, bool)] * 3
    assert np.array_equal(blend_with_coverage(mats, full, weights), blend_matrices(mats, weights))
    covered = [np.ones(6, bool), np.ones(6, bool), np.array([1, 1, 1, 1, 0, 0], bool)]
    out = blend_with_coverage(mats, covered, weights)
    plain = sum(w * m for w, m in zip(weights, mats))
    np.testing.assert_allclose(out[:, :4], plain[:, :4], rtol=1e-5, atol=1e-6)
    part = (0.5 * mats[0] + 0.2 * mats[1]) / 0.7            # the covering models, renormalised
    expect = impute_columns(np.where(np.arange(6) < 4, plain, 0.0), part, np.arange(6) < 4)
    np.testing.assert_allclose(out[:, 4:], expect[:, 4:], rtol=1e-5, atol=1e-6)
    # the order of the partly covered columns among all follows their covering models' blend
    for r in range(4):
        rank_part = (part[r, :4] > part[r, 4]).sum()
        assert (out[r, :4] > out[r, 4]).sum() == rank_part
    # the models that cover a column all have weight 0: they count equally there
    out = blend_with_coverage(mats, covered, [0.0, 0.0, 1.0])
    part = 0.5 * (mats[0] + mats[1])
    expect = impute_columns(np.where(np.arange(6) < 4, mats[2], 0.0), part, np.arange(6) < 4)
    np.testing.assert_allclose(out[:, 4:], expect[:, 4:], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out[:, :4], mats[2][:, :4])


def test_identify_and_enroll_a_run_folder_in_a_bucket(trained_run, s3_server, tmp_path):
    """A run folder at an s3:// URI (a real S3 API): identify reads the bucket's run, gives what
    the local folder gives, and enroll's grown gallery goes back to the bucket."""
    import shutil

    from whaleflow.identify import enroll, identify
    from whaleflow.storage import RunStore

    run, data = trained_run
    local = tmp_path / "run"
    shutil.copytree(run, local)
    uri = s3_server("identify-run") + "/runs/one"
    up = RunStore(uri, tmp_path / "uploader")
    shutil.copytree(local, up.local)
    up.push("")
    photos = sorted((data / "test").iterdir())[:4]
    remote = identify(uri, photos, out=tmp_path / "r" / "matches.csv", boxes=data / "boxes.csv", device="cpu")
    here = identify(local, photos, out=tmp_path / "l" / "matches.csv", boxes=data / "boxes.csv", device="cpu")
    assert remote.frame["predictions"].tolist() == here.frame["predictions"].tolist()
    dec = tmp_path / "decisions.csv"
    pd.DataFrame({"image": [photos[0].name], "path": [str(photos[0])], "decision": ["new"],
                  "id": ["zz_bucket"]}).to_csv(dec, index=False)
    enroll(uri, dec, boxes=data / "boxes.csv", device="cpu")
    assert RunStore(uri, tmp_path / "other_node").exists("gallery/enrolled.npz")
    again = identify(uri, photos[:1], out=tmp_path / "r2" / "matches.csv", boxes=data / "boxes.csv", device="cpu")
    assert "zz_bucket" in again.frame["predictions"][0].split()
