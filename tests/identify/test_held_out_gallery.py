"""A Happywhale-layout run (individuals held out as new in validation, no final fit): the
exported galleries hold them under their own ids, as the test gallery the submission was
scored against does, and ``identify`` ranks them, from the run folder shipped without
``prepared/``, ``tune/`` and checkpoints."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from whaleflow.identify import identify, load_run
from whaleflow.labels import NEW_WHALE
from whaleflow.submission import read_submission

MODELS = ("models=[{name: metric_compact, family: metric, backbone: wf_compactnet, embedding_dim: 32, "
          "p_individuals: 6, k_images: 4, augment: metric, stages: [{size: 32, epochs: 1, lr: 0.002}]}, "
          "{name: arcface_compact, family: arcface, backbone: wf_compactnet, embedding_dim: 32, batch_size: 16, "
          "stages: [{size: [32, 48], epochs: 1, lr: 0.002}]}]")
FAMILIES = ("metric_compact", "arcface_compact")


@pytest.fixture(scope="module")
def happywhale_run(tmp_path_factory):
    """(run folder, data folder) of a finished run on a synthetic Happywhale-layout set."""
    from whaleflow.config import load_config
    from whaleflow.data.synthetic import generate_synthetic
    from whaleflow.pipeline import run_local

    data = tmp_path_factory.mktemp("hw_data")
    generate_synthetic(data, individuals=24, seed=3, width=96, height=64, layout="happywhale")
    out = tmp_path_factory.mktemp("hw_run")
    cfg = load_config("configs/demo.yaml", [f"data.root={data}", f"output.dir={out}", MODELS,
                                            "ensemble.trials=8", "ensemble.classifier.epochs=30",
                                            "ensemble.outer_folds=0", "output.quiet=true"])
    run_local(cfg, progress=False)
    return out, data


def _index(run) -> pd.DataFrame:
    return pd.read_csv(run / "prepared" / "index.csv", dtype=str, keep_default_na=False)


def test_exported_galleries_hold_the_held_out_individuals_as_themselves(happywhale_run):
    run, _ = happywhale_run
    idx = _index(run)
    held = idx[idx["held_out"].str.lower() == "true"]
    assert len(held) and set(held["role"]) == {"val"}, "the Happywhale split holds individuals out"
    labelled = idx[idx["role"].isin(["train", "val"]) & (idx["id"] != NEW_WHALE) & (idx["id"] != "")]
    for name in FAMILIES:
        with np.load(run / "trials" / name / "gallery.npz") as g:
            gallery = dict(zip(g["images"].astype(str), g["ids"].astype(str)))
            assert len(g["images"]) == len(gallery) == len(g["view0"])
        # exactly the test gallery: every labelled train + val photo under its catalogue id
        assert gallery == dict(zip(labelled["image"], labelled["id"])), name
        assert all(gallery[im] == i for im, i in zip(held["image"], held["id"]))


def test_identify_matches_the_submission_and_ranks_a_held_out_individual(happywhale_run, ship, tmp_path):
    run, data = happywhale_run
    # from the run folder as shipped: no prepared/, tune/ or checkpoints/ (the galleries carry the individuals)
    tr = load_run(ship(run, tmp_path / "shipped"), device="cpu")
    assert not (tr.run_dir / "prepared").exists()
    assert "classifier" in tr.names and {f.name for f in tr.families} == set(FAMILIES)
    idx = _index(run)
    # the test photos: identify gives the submission's top 5 (both scored against one gallery,
    # and the classifier's columns named as its test fit named them)
    tests = idx[idx["split"] == "test"]
    m = identify(tr, tests["path"].tolist(), out=None, page=False, boxes=data / "boxes.csv")
    assert m.top5() == read_submission(run / "submission.csv")
    # the held-out individuals' photos, scored without the near-duplicate shortcut (it reads labels
    # from the split, not from the galleries), by each family alone: the blend this tiny run tuned
    # may rest on the classifier, whose one-epoch embeddings rank little; a family's k-NN / centroid
    # over its exported gallery finds each photo's own individual
    held = idx[idx["held_out"].str.lower() == "true"]
    tr.cfg = dataclasses.replace(tr.cfg, predict=dataclasses.replace(tr.cfg.predict, use_duplicates=False))
    for name in FAMILIES:
        tr.names, tr.weights = [name], {name: 1.0}
        top5 = identify(tr, held["path"].tolist(), out=None, page=False, boxes=data / "boxes.csv").top5()
        missed = {im: top5[im] for im, i in zip(held["image"], held["id"]) if i not in top5[im]}
        assert not missed, (name, missed)
