"""Pseudo-labels: never "new", never below min_score, at most max_share; extra training rows."""
import dataclasses

import numpy as np
import pandas as pd
import pytest

from whaleflow.config import PseudoLabelConfig
from whaleflow.errors import ConfigError
from whaleflow.labels import NEW_WHALE
from whaleflow.pseudo_label import PSEUDO_PREFIX, pick_pseudo_labels, round_record, with_pseudo_labels


def _top():
    return pd.DataFrame({
        "image": [f"t{i}.jpg" for i in range(8)],
        "label": ["w1", "w2", NEW_WHALE, "w3", "w1", "w4", "w5", ""],
        "score": [3.0, 0.5, 9.0, 2.0, 2.5, 1.5, 4.0, 5.0],
        "new_first": [False, False, False, False, False, False, True, False],
    })


def test_never_new_never_below_min_score_most_confident_first_capped():
    picked = pick_pseudo_labels(_top(), PseudoLabelConfig(rounds=1, min_score=1.0, max_share=1.0))
    assert picked["image"].tolist() == ["t0.jpg", "t4.jpg", "t3.jpg", "t5.jpg"]  # by score, descending
    assert NEW_WHALE not in set(picked["id"]) and (picked["score"] >= 1.0).all()
    assert "t6.jpg" not in set(picked["image"]), "new ranked first: not a label"
    capped = pick_pseudo_labels(_top(), PseudoLabelConfig(rounds=1, min_score=1.0, max_share=0.25))
    assert capped["image"].tolist() == ["t0.jpg", "t4.jpg"]  # floor(0.25 · 8) = 2
    assert pick_pseudo_labels(_top(), PseudoLabelConfig(rounds=1, min_score=10.0)).empty
    with pytest.raises(ConfigError):
        PseudoLabelConfig(rounds=1, max_share=0.0)


def test_pseudo_rows_train_over_the_same_pixels_and_queries_stay():
    @dataclasses.dataclass
    class P:
        index: pd.DataFrame

    idx = pd.DataFrame({"image": ["a", "b", "q1", "q2"], "split": ["train", "train", "test", "test"],
                        "id": ["w1", "w2", "", ""], "role": ["train", "train", "test", "test"],
                        "fold": [-1, -1, -1, -1], "held_out": [False] * 4, "group": [0, 1, 2, 3],
                        "row": [0, 1, 2, 3]})
    out = with_pseudo_labels(P(idx), pd.DataFrame({"image": ["q2"], "id": ["w1"]})).index
    assert len(out) == 5 and out["role"].tolist()[:4] == ["train", "train", "test", "test"]
    extra = out.iloc[4]
    assert extra["image"] == PSEUDO_PREFIX + "q2" and extra["id"] == "w1" and extra["role"] == "train"
    assert extra["row"] == 3 and extra["group"] == 3
    with pytest.raises(ValueError, match="new individual"):
        with_pseudo_labels(P(idx), pd.DataFrame({"image": ["q1"], "id": [NEW_WHALE]}))
    with pytest.raises(ValueError, match="not test images"):
        with_pseudo_labels(P(idx), pd.DataFrame({"image": ["a"], "id": ["w2"]}))


def test_round_record_gains():
    r0 = round_record(0, 0, {"val_map5": 0.5, "expected_test_map5": 0.45}, None)
    r1 = round_record(1, 12, {"val_map5": 0.55, "expected_test_map5": 0.44}, r0)
    assert r1["val_gain"] == pytest.approx(0.05) and r1["expected_gain"] == pytest.approx(-0.01)
    assert r1["pseudo_labels"] == 12 and "val_gain" not in r0


@pytest.mark.slow
def test_one_local_round_trains_on_confident_test_photos_and_reports_its_gain(tiny_data, tmp_path):
    import json

    from whaleflow.config import load_config
    from whaleflow.pipeline import run_local

    model = ("models=[{name: metric_compact, family: metric, backbone: wf_compactnet, embedding_dim: 32, "
             "p_individuals: 6, k_images: 4, stages: [{size: 32, epochs: 2, lr: 0.002}]}]")
    cfg = load_config("configs/demo.yaml", [f"data.root={tiny_data}", f"output.dir={tmp_path}", model,
                                            "ensemble.trials=4", "ensemble.outer_folds=0",
                                            "ensemble.classifier.enabled=false", "output.quiet=true",
                                            "pseudo_label.rounds=1", "pseudo_label.min_score=-10",
                                            "pseudo_label.max_share=0.5", "pseudo_label.min_precision=null",
                                            "predict.new_prior=0.3"])
    summary = run_local(cfg, progress=False)
    rdir = tmp_path / "pseudo" / "round_1"
    labels = pd.read_csv(rdir / "pseudo_labels.csv", dtype=str, keep_default_na=False)
    top = pd.read_csv(tmp_path / "ensemble" / "test_top.csv", dtype=str, keep_default_na=False)
    assert 0 < len(labels) <= len(top) // 2 and NEW_WHALE not in set(labels["id"])
    first_new = set(top["image"][top["new_first"] == "True"])
    assert not set(labels["image"]) & first_new
    with np.load(rdir / "trials" / "metric_compact" / "embeddings.npz") as d:
        train = set(d["images"][d["roles"] == "train"].astype(str))
    assert {PSEUDO_PREFIX + im for im in labels["image"]} <= train
    rounds = summary["ensemble"]["pseudo_rounds"]
    assert [r["round"] for r in rounds] == [0, 1] and rounds[1]["pseudo_labels"] == len(labels)
    assert rounds[1]["val_gain"] == pytest.approx(rounds[1]["val_map5"] - rounds[0]["val_map5"])
    assert "val_gain_clean" in rounds[1] and rounds[1]["val_sources_left_out"] >= 0
    index = pd.read_csv(tmp_path / "prepared" / "index.csv", dtype=str, keep_default_na=False)
    val_groups = set(index["group"][index["role"] == "val"])
    group = dict(zip(index["image"], index["group"]))
    assert not {group[im] for im in labels["image"]} & val_groups, "a validation photo's twin became a label"
    assert (tmp_path / "submission.csv").read_text() == (rdir / "submission.csv").read_text()
    assert "test_map5" in rounds[0] and "test_map5" in rounds[1]
    assert json.loads((tmp_path / "summary.json").read_text())["ensemble"]["pseudo_rounds"][1]["round"] == 1


def _val(scores, right, new=None):
    """val_predictions rows: truth w<i>; the top-1 is the truth when ``right`` (else another id)."""
    new = new or [False] * len(scores)
    truth = [NEW_WHALE if n else f"w{i}" for i, n in enumerate(new)]
    first = [f"w{i}" if r else f"x{i}" for i, r in enumerate(right)]
    return pd.DataFrame({"image": [f"v{i}" for i in range(len(scores))], "truth": truth,
                         "top5": [f"{f} y z" for f in first], "top1_score": scores})


def test_precision_floor_is_the_lowest_cut_with_enough_precision_brute_force():
    from whaleflow.pseudo_label import MIN_CALIBRATION, precision_floor

    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(5, 60))
        scores = np.round(rng.normal(size=n), 1)  # ties included
        right = rng.random(n) < 1 / (1 + np.exp(-2 * scores))
        new = list(rng.random(n) < 0.2)
        v = _val(scores, right, new)
        want = np.inf
        for s in np.unique(scores):  # brute force: every cut, all queries at or above it
            above = scores >= s
            ok = right & ~np.array(new)
            if above.sum() >= MIN_CALIBRATION and ok[above].mean() >= 0.8:
                want = min(want, s)
        assert precision_floor(v, 0.8) == want


def test_weighted_precision_floor_brute_force_and_unit_weights_change_nothing():
    """With the gallery-mix weights of val_predictions.csv the precision is weighted (the
    count of queries above the cut still needs MIN_CALIBRATION rows)."""
    from whaleflow.pseudo_label import MIN_CALIBRATION, precision_floor

    rng = np.random.default_rng(1)
    for _ in range(30):
        n = int(rng.integers(5, 60))
        scores = np.round(rng.normal(size=n), 1)
        right = rng.random(n) < 1 / (1 + np.exp(-2 * scores))
        new = list(rng.random(n) < 0.2)
        v = _val(scores, right, new)
        assert precision_floor(v.assign(weight=1.0), 0.8) == precision_floor(v, 0.8)
        w = rng.uniform(0.1, 3.0, n)
        want = np.inf
        ok = right & ~np.array(new)
        for s in np.unique(scores):
            above = scores >= s
            if above.sum() >= MIN_CALIBRATION and (w[above] * ok[above]).sum() / w[above].sum() >= 0.8 - 1e-12:
                want = min(want, s)
        assert precision_floor(v.assign(weight=w), 0.8) == want


def test_pick_with_validation_keeps_only_what_validation_trusts():
    v = _val(np.linspace(4.0, 0.0, 20), [True] * 10 + [False] * 10)  # right above 2.0, wrong below
    cfg = PseudoLabelConfig(rounds=1, min_score=1.0, max_share=1.0, min_precision=0.9)
    picked = pick_pseudo_labels(_top(), cfg, v)
    # the floor lies at the 11th query (score 1.89): 10 right of 11 ≥ 0.9; 1.5 and 2.0 of test are cut
    assert picked["image"].tolist() == ["t0.jpg", "t4.jpg", "t3.jpg"]
    off = dataclasses.replace(cfg, min_precision=None)
    assert len(pick_pseudo_labels(_top(), off, v)) == 4  # min_score alone
    hopeless = _val(np.linspace(4.0, 0.0, 20), [False] * 20)
    assert pick_pseudo_labels(_top(), cfg, hopeless).empty


def test_a_round_without_confident_labels_is_not_trained(tmp_path):
    from whaleflow.config import Config, OutputConfig
    from whaleflow.pseudo_label import run_rounds

    ens = tmp_path / "ensemble"
    ens.mkdir()
    _top().to_csv(ens / "test_top.csv", index=False)
    _val(np.linspace(4.0, 0.0, 20), [False] * 20).to_csv(ens / "val_predictions.csv", index=False)
    (tmp_path / "submission.csv").write_text("Image,Id\n")
    cfg = Config().replace(output=OutputConfig(dir=str(tmp_path), quiet=True),
                           pseudo_label=PseudoLabelConfig(rounds=2))

    def train_round(cfg_r, rdir):
        raise AssertionError("no round should train")

    out = run_rounds(cfg, {"val_map5": 0.5}, train_round, progress=False)
    assert [r["round"] for r in out["pseudo_rounds"]] == [0, 1] and out["pseudo_rounds"][1]["skipped"]
    assert (tmp_path / "submission.csv").read_text() == "Image,Id\n" and not (tmp_path / "pseudo").exists()
