"""train.final_fit: the final fit trains on the validation photos too, for the validated epoch count."""
import json

import numpy as np
import pandas as pd
import pytest

from whaleflow.config import StageConfig, load_config
from whaleflow.final_fit import final_epochs, final_prepared, truncate_stages
from whaleflow.labels import NEW_WHALE



def test_final_data_folds_validation_into_training():
    import dataclasses

    @dataclasses.dataclass
    class P:
        index: pd.DataFrame

    idx = pd.DataFrame({
        "image": ["a", "b", "c", "d", "e", "t"],
        "id": ["w1", "w1", NEW_WHALE, "w2", "w3", ""],
        "role": ["train", "val", "val", "val", "unused", "test"],
        "held_out": [False, False, False, True, False, False],
    })
    out = final_prepared(P(idx)).index
    assert out["role"].tolist() == ["train", "train", "unused", "train", "unused", "test"]
    assert out.loc[3, "id"] == "w2" and not out["held_out"].any()  # the held-out individual trains as itself
    assert idx["role"].tolist()[1] == "val", "the original index is left alone"


def test_epochs_and_stages():
    stages = [StageConfig(size=32, epochs=4), StageConfig(size=48, epochs=5)]
    assert [s.epochs for s in truncate_stages(stages, 6)] == [4, 2]
    assert [s.size for s in truncate_stages(stages, 3)] == [32]
    assert sum(s.epochs for s in truncate_stages(stages, 20)) == 9
    assert final_epochs({"best_epoch": 4, "epochs": 9}) == 5 and final_epochs({"epochs": 7}) == 7


@pytest.mark.slow
def test_local_final_fit_trains_on_val_photos_and_feeds_the_test_scores(tiny_data, tmp_path):
    from whaleflow.pipeline import run_local

    model = ("models=[{name: metric_compact, family: metric, backbone: wf_compactnet, embedding_dim: 32, "
             "p_individuals: 6, k_images: 4, stages: [{size: 32, epochs: 3, lr: 0.002}]}]")
    cfg = load_config("configs/demo.yaml", [f"data.root={tiny_data}", f"output.dir={tmp_path}", model,
                                            "ensemble.trials=4", "ensemble.outer_folds=0",
                                            "ensemble.classifier.epochs=20", "output.quiet=true",
                                            "train.final_fit=true"])
    summary = run_local(cfg, progress=False)
    validated = json.loads((tmp_path / "trials" / "metric_compact" / "result.json").read_text())
    final = json.loads((tmp_path / "final" / "metric_compact" / "result.json").read_text())
    assert final["final_of"] == "metric_compact" and final["final_epochs"] == validated["best_epoch"] + 1
    assert len(pd.read_csv(tmp_path / "final" / "metric_compact" / "metrics.csv")) == final["final_epochs"]
    index = pd.read_csv(tmp_path / "prepared" / "index.csv", dtype=str, keep_default_na=False)
    val_known = set(index["image"][(index["role"] == "val") & (index["id"] != NEW_WHALE)])
    with np.load(tmp_path / "final" / "metric_compact" / "embeddings.npz") as d:
        roles = dict(zip(d["images"].astype(str), d["roles"].astype(str)))
    assert val_known and all(roles[im] == "train" for im in val_known), "the final fit trains on them"
    weights = json.loads((tmp_path / "ensemble" / "weights.json").read_text())
    assert weights["final_fit"] == ["metric_compact"]
    assert any("final fits" in n for n in summary["ensemble"]["notes"])
    # toggling final_fit does not retrain the validated trial
    assert (tmp_path / "trials" / "metric_compact" / "fingerprint.txt").read_text().strip() == validated["fingerprint"]
