"""The panel's synthetic knobs: each changes what it says, and the default changes nothing."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from whaleflow.data.synthetic import generate_synthetic
from whaleflow.data.synthetic_style import SynthStyle
from whaleflow.errors import DataError
from whaleflow.labels import NEW_WHALE


def _digest(root):
    h = hashlib.sha1()
    for p in sorted(root.rglob("*.jpg")):
        h.update(p.read_bytes())
    return h.hexdigest()


def test_default_style_writes_the_same_bytes_as_no_style(tmp_path):
    generate_synthetic(tmp_path / "a", individuals=6, seed=3)
    generate_synthetic(tmp_path / "b", individuals=6, seed=3, style=SynthStyle())
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    generate_synthetic(tmp_path / "c", individuals=6, seed=3, style=SynthStyle(tint=0.5))
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_one_test_photo_per_known_individual_and_small_flukes(tmp_path):
    style = SynthStyle(scale=(0.3, 0.4), shots="heavy", test_mix="one_per_individual", occlusion=1.0)
    root = tmp_path / "s"
    summary = generate_synthetic(root, individuals=30, seed=4, width=160, height=80, style=style)
    train = pd.read_csv(root / "train.csv")
    answers = pd.read_csv(root / "answers.csv")
    known = set(train.Id[train.Id != NEW_WHALE])
    per = answers[answers.Id != NEW_WHALE].Id.value_counts()
    assert set(per.index) == known and (per == 1).all()
    assert summary["style"]["test_mix"] == "one_per_individual"
    boxes = pd.read_csv(root / "boxes.csv")
    width = (boxes.x1 - boxes.x0) / 160
    # the span is 0.3-0.4 of the frame, times a yaw factor of 0.7-1.0, plus the box jitter
    assert width.median() < 0.45 and width.max() < 0.6


def test_heavy_law_gives_more_single_photo_individuals_and_longer_tails():
    from whaleflow.data.synthetic import _plan

    def singles(law):
        plan = _plan(np.random.default_rng([9, 0]), 3000, SynthStyle(shots=law))
        n = pd.Series([who for who, split, label in plan if split == "train" and label != NEW_WHALE]).value_counts()
        return (n == 1).mean(), n.max()

    zipf, heavy = singles("zipf"), singles("heavy")
    assert 0.42 < heavy[0] < 0.55 < zipf[0]
    assert heavy[1] > 30 >= zipf[1]


@pytest.mark.parametrize("kw", [dict(scale=(0.9, 0.2)), dict(shots="pareto"), dict(test_mix="all"),
                                dict(occlusion=1.5), dict(tint=-0.1)])
def test_bad_knobs_say_what_to_give(kw):
    with pytest.raises(DataError, match="Fix|fix"):
        SynthStyle(**kw)
