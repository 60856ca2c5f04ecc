"""A run folder copied without ``prepared/``, ``tune/`` and every ``checkpoints/`` still identifies:
its own test photos get the submission's top 5, through every model of its blend (the three
families, the classifier on embeddings, local-feature verification; and the near-duplicate
shortcut), and the review page shows the same candidate photos as the full folder's."""
from __future__ import annotations

import shutil

import pandas as pd

from whaleflow.config import load_config
from whaleflow.data.dedup import hash_image
from whaleflow.data.run_photos import RUN_PHOTOS, read_run_photos
from whaleflow.ensemble.driver import run_ensemble
from whaleflow.errors import DataError
from whaleflow.identify import identify, load_run
from whaleflow.identify.scoring import near_duplicates
from whaleflow.labels import NEW_WHALE
from whaleflow.local.local_trial import LOCAL_NAME
from whaleflow.submission import read_submission

NOT_SHIPPED = ("prepared", "tune", "checkpoints")


def test_a_shipped_run_identifies_its_test_photos_as_its_submission(run_copy, ship, tmp_path):
    run, data = run_copy
    # the blend verifies local features too (configs/cpu.yaml turns them on): they read the gallery
    # photos again, cropped to the boxes the run cropped them to
    cfg = load_config(run / "config.yaml", [f"output.dir={run}", "ensemble.local_match.enabled=true",
                                             "ensemble.local_match.shortlist=4", "ensemble.outer_folds=0"])
    assert LOCAL_NAME in run_ensemble(cfg, run, progress=False)["models"]
    idx = pd.read_csv(run / "prepared" / "index.csv", dtype=str, keep_default_na=False)
    paths = idx.loc[idx["split"] == "test", "path"].tolist()
    assert list(run.glob("trials/*/checkpoints")), "the run trained with checkpoints, which shipping drops"

    shipped = ship(run, tmp_path / "shipped")
    assert not [p for p in shipped.rglob("*") if p.name in NOT_SHIPPED]
    tr = load_run(shipped, device="cpu")
    assert {f.family for f in tr.families} == {"metric", "siamese", "arcface"} and "classifier" in tr.names
    assert LOCAL_NAME in tr.names
    m = identify(tr, paths, out=tmp_path / "shipped.csv", boxes=data / "boxes.csv")
    assert m.top5() == read_submission(shipped / "submission.csv")  # every test photo
    assert tr.local.feats  # the local model verified shortlists from the photo files
    # the near-duplicate shortcut reads the training photos' hashes from photos.csv
    known = idx[(idx["split"] == "train") & (idx["id"] != NEW_WHALE)].iloc[0]
    twin = tmp_path / "twin.jpg"
    shutil.copyfile(known["path"], twin)
    assert near_duplicates(tr, [str(twin)], ["twin.jpg"]) == {"twin.jpg": [known["id"]]}
    assert identify(tr, [twin], out=None, page=False).top5()["twin.jpg"][0] == known["id"]

    # the review page: the same candidate photos (decoded from their files, as the cache holds them)
    full = identify(load_run(run, device="cpu"), paths, out=tmp_path / "full.csv", boxes=data / "boxes.csv")
    assert full.top5() == m.top5()
    page = (tmp_path / "shipped.html").read_text().replace(str(shipped), "RUN")
    assert page == (tmp_path / "full.html").read_text().replace(str(run), "RUN")
    assert 'class="ph missing"' not in page


def test_photos_csv_holds_each_photos_box_and_hash(trained_run, tmp_path):
    run, _ = trained_run
    photos = read_run_photos(run)
    idx = pd.read_csv(run / "prepared" / "index.csv", dtype=str, keep_default_na=False)
    assert photos["image"].tolist() == idx["image"].tolist()
    assert photos["id"].tolist() == idx["id"].tolist() and photos["role"].tolist() == idx["role"].tolist()
    boxes = pd.read_csv(run / "prepared" / "crop_boxes.csv").set_index("image")
    assert len(boxes) and photos["x0"].notna().sum() == len(boxes)
    pc = load_config(run / "config.yaml").prepare
    for r in photos.sample(8, random_state=0).itertuples(index=False):  # checked against the photo itself
        w, h, hx = hash_image(r.path, method=pc.hash, hash_size=pc.hash_size)
        assert (r.hash, int(r.width), int(r.height)) == (hx, w, h)
        assert (r.x0, r.y0, r.x1, r.y1) == tuple(boxes.loc[r.image, ["x0", "y0", "x1", "y1"]])


def test_a_run_prepared_before_photos_csv_gets_it_from_prepared(run_copy, ship, tmp_path):
    run, _ = run_copy
    before = (run / RUN_PHOTOS).read_text()
    (run / RUN_PHOTOS).unlink()
    load_run(run, device="cpu")
    assert (run / RUN_PHOTOS).read_text() == before
    bare = ship(run, tmp_path / "bare")
    (bare / RUN_PHOTOS).unlink()
    try:
        load_run(bare, device="cpu")
    except DataError as exc:
        assert "photos.csv" in str(exc) and "Fix:" in str(exc) and len(str(exc).splitlines()) == 1
    else:
        raise AssertionError("a run folder without photos.csv or prepared/ must say so")
