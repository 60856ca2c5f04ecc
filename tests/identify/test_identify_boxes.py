"""identify crops a photo it has no box for with the run's box model (box_model/model.pt)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from whaleflow.data.boxes import Boxes
from whaleflow.data.cache import load_image
from whaleflow.identify import identify
from whaleflow.locate.box_source import RUN_BOXER
from whaleflow.locate.fitting import fit_box_model, read_listed


def test_identify_crops_a_photo_it_has_no_box_for(run_copy, tmp_path):
    run, data = run_copy
    boxes = pd.read_csv(data / "boxes.csv")
    train = boxes[boxes["Image"].map(lambda n: (data / "train" / n).is_file())].head(20)
    model = fit_box_model(read_listed([data / "train" / n for n in train["Image"]]),
                          train[["x0", "y0", "x1", "y1"]].to_numpy(float), epochs=2, views=1, canvas=(64, 96))
    model.save(run / RUN_BOXER)
    photos = sorted((data / "test").iterdir())[:2]
    listed = boxes[boxes["Image"] == photos[0].name]
    listed.to_csv(tmp_path / "one_box.csv", index=False)  # the first photo has a box, the second none
    m = identify(run, photos, out=tmp_path / "matches.csv", boxes=tmp_path / "one_box.csv", device="cpu", page=False)
    status = dict(zip(m.frame["image"], m.frame["box"]))
    assert status == {photos[0].name: "box", photos[1].name: "predicted"}
    saved = pd.read_csv(tmp_path / "matches.csv", dtype=str, keep_default_na=False)
    assert dict(zip(saved["image"], saved["box"]))[photos[1].name] == "predicted"
    # the pixels are the photo cropped to the model's box with the run's margin, as prepare crops
    pred, _ = model.predict([photos[1]])
    box = tuple(pred.iloc[0][["x0", "y0", "x1", "y1"]]) + (2,)
    table = Boxes("predicted", {photos[1].name: box}, predicted={photos[1].name})
    from whaleflow.identify import load_run

    tr = load_run(run, device="cpu")
    want, *_ = load_image(photos[1], photos[1].name, size=tr.size, boxes=table, box_margin=tr.cfg.data.box_margin)
    whole, *_ = load_image(photos[1], photos[1].name, size=tr.size)
    got = m.pixels[list(m.frame["image"]).index(photos[1].name)]
    assert np.array_equal(got, want) and not np.array_equal(got, whole)


def test_without_a_box_model_an_unlisted_photo_stays_whole(run_copy, tmp_path):
    run, data = run_copy
    assert not (run / RUN_BOXER).exists()
    photo = min((data / "test").iterdir())
    m = identify(run, [photo], out=None, page=False, device="cpu")
    assert list(m.frame["box"]) == ["none"] and Path(photo).is_file()
