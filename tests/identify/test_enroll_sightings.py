"""Enrolled newcomers are found in *other* sightings, not only in frames of the enrolled photos.

The fast test (``test_enroll.py``) asks a barely trained run to rank a newcomer first for
another frame of an enrolled photo. This one trains a run that has learnt something (the
demo's metric model, on the demo's data at its image sizes: a few minutes on two cores),
enrolls the individuals of another synthetic seed with two photos each, and identifies
their remaining photos: distinct sightings (another pose, light, background), with the
near-duplicate rule off so only the networks answer. A sighting is one query among
100 + N individuals, so chance puts the newcomer first about 0.6 % of the time.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from whaleflow.identify import enroll, identify, load_run

pytestmark = pytest.mark.slow

METRIC_ONLY = ("models=[{name: metric_compact, family: metric, backbone: wf_compactnet, embedding_dim: 64, "
               "batch_size: 32, p_individuals: 8, k_images: 4, augment: metric, lr_step_epochs: 100, "
               "stages: [{size: 48, epochs: 10, lr: 0.001}, {size: 64, epochs: 14, lr: 0.0005}]}]")


def _ranks(frame: pd.DataFrame, truth: dict) -> np.ndarray:
    """1-based rank of the true id among the five (6: not among them), new_whale skipped."""
    out = []
    for im, p in zip(frame["image"], frame["predictions"]):
        ids = [t for t in p.split() if t != "new_whale"]
        out.append(ids.index(truth[im]) + 1 if truth[im] in ids else 6)
    return np.asarray(out)


def test_enrolled_newcomers_are_found_in_their_other_sightings(tmp_path):
    from whaleflow.config import load_config
    from whaleflow.data.synthetic import generate_synthetic
    from whaleflow.pipeline import run_local

    data, run = tmp_path / "data", tmp_path / "run"
    generate_synthetic(data, individuals=100, seed=0)
    cfg = load_config("configs/demo.yaml", [f"data.root={data}", f"output.dir={run}", METRIC_ONLY,
                                            "ensemble.trials=8", "output.quiet=true"])
    run_local(cfg, progress=False)

    new_root = tmp_path / "newcomers"
    generate_synthetic(new_root, individuals=60, seed=23)
    train = pd.read_csv(new_root / "train.csv")
    known = train[train["Id"] != "new_whale"]
    counts = known["Id"].value_counts()
    photos = {i: [str(new_root / "train" / im) for im in known.loc[known["Id"] == i, "Image"]]
              for i in counts[counts >= 3].index}
    rows, sightings, truth = [], [], {}
    for k, (ind, ph) in enumerate(photos.items()):
        rows += [{"image": f"{k}a.jpg", "path": ph[0], "decision": "new", "id": f"zz_{ind}"},
                 {"image": f"{k}b.jpg", "path": ph[1], "decision": "accept", "id": f"zz_{ind}"}]
        for p in ph[2:]:
            sightings.append(p)
            truth[p.rsplit("/", 1)[-1]] = f"zz_{ind}"
    assert len(photos) >= 15 and len(sightings) >= 60
    pd.DataFrame(rows).to_csv(tmp_path / "decisions.csv", index=False)
    enroll(run, tmp_path / "decisions.csv", boxes=new_root / "boxes.csv", device="cpu")

    tr = load_run(run, device="cpu")
    tr.cfg = dataclasses.replace(tr.cfg, predict=dataclasses.replace(tr.cfg.predict, use_duplicates=False))
    found = identify(tr, sightings, out=None, page=False, boxes=new_root / "boxes.csv").frame
    ranks = _ranks(found, truth)
    top1, map5 = float(np.mean(ranks == 1)), float(np.mean(np.where(ranks <= 5, 1.0 / ranks, 0.0)))
    print(f"{len(sightings)} sightings of {len(photos)} newcomers: top-1 {top1:.3f}, MAP@5 {map5:.3f}")
    # chance: top-1 ≈ 1 / (100 + newcomers) < 0.01. Measured here: 198 sightings of 24 newcomers,
    # top-1 0.318, MAP@5 0.409 (the whole demo blend: 0.15 / 0.27, benchmarks/enroll_parity.py)
    assert top1 >= 0.15, (top1, map5)
    assert map5 >= 0.20, (top1, map5)
