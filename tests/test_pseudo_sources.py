"""No pseudo-label from a validation photo's near-duplicate group or best match."""
import numpy as np
import pandas as pd
import pytest

from whaleflow.pseudo_sources import clean_gain, drop_validation_sources


def _run(tmp_path):
    # photos: two of individual A (one train, one val), one train of B; three test photos
    images = ["a_tr.jpg", "a_val.jpg", "b_tr.jpg", "t_twin.jpg", "t_nearval.jpg", "t_neartrain.jpg"]
    roles = ["train", "val", "train", "test", "test", "test"]
    ids = ["A", "A", "B", "", "", ""]
    groups = ["g0", "g1", "g2", "g1", "g4", "g5"]  # t_twin shares a_val's near-duplicate group
    emb = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.1, 1, 0], [0.2, 1, 0.1], [1, 0.1, 0.3]], np.float32)
    trial = tmp_path / "trials" / "m"
    trial.mkdir(parents=True)
    np.savez(trial / "embeddings.npz", embeddings=emb, images=np.array(images), roles=np.array(roles),
             ids=np.array(ids), catalog_ids=np.array(ids), groups=np.array(groups))
    return tmp_path


def test_twins_and_best_matches_of_validation_photos_are_dropped(tmp_path):
    run = _run(tmp_path)
    labels = pd.DataFrame({"image": ["t_twin.jpg", "t_nearval.jpg", "t_neartrain.jpg"], "id": ["A", "A", "A"],
                           "score": [9.0, 8.0, 7.0]})
    kept, dropped, sources = drop_validation_sources(run, labels)
    assert kept["image"].tolist() == ["t_neartrain.jpg"]
    assert dropped["image"].tolist() == ["t_twin.jpg", "t_nearval.jpg"]
    assert "near-duplicate" in dropped["reason"][0] and "best match" in dropped["reason"][1]
    assert sources == {"a_val.jpg"}
    # the best match is looked up among the given individual's photos only
    kept_b, dropped_b, _ = drop_validation_sources(run, labels.assign(id="B").iloc[1:])
    assert kept_b["image"].tolist() == ["t_nearval.jpg", "t_neartrain.jpg"] and dropped_b.empty


def test_without_embeddings_nothing_is_dropped(tmp_path):
    labels = pd.DataFrame({"image": ["x.jpg"], "id": ["A"], "score": [1.0]})
    kept, dropped, sources = drop_validation_sources(tmp_path, labels)
    assert kept.equals(labels) and dropped.empty and not sources


def test_clean_gain_leaves_out_the_sources():
    before = pd.DataFrame({"image": ["v1", "v2", "v3"], "hit_position": [0, 2, 1]})
    after = pd.DataFrame({"image": ["v1", "v2", "v3"], "hit_position": [1, 1, 1]})
    assert clean_gain(before, after, set()) == pytest.approx((3 - 1.5) / 3)
    assert clean_gain(before, after, {"v1"}) == pytest.approx((2 - 1.5) / 2)
    assert clean_gain(before, after, {"v1", "v2", "v3"}) is None
