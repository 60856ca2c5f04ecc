"""prepare(): the whole data path on a tiny planted set; reuse; load_prepared; the printed summary."""
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from whaleflow.config import load_config
from whaleflow.data import dedup
from whaleflow.data.prepare import load_prepared, prepare
from whaleflow.data.split_report import check_split
from whaleflow.errors import DataError


def texture(seed, w=96, h=64):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (6, 9, 3)).astype(np.uint8)).resize((w, h), Image.BICUBIC)


def make_set(root):
    """Kaggle layout: 8 individuals × 3, one planted train duplicate, 10 new_whale, a test leak."""
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    rows, seed = [], 0
    for k in range(8):
        for s in range(3):
            texture(seed).save(root / "train" / f"w{k}_{s}.jpg")
            rows.append((f"w{k}_{s}.jpg", f"w_{k}"))
            seed += 1
    texture(0, 80, 54).save(root / "train" / "w0_dup.jpg", quality=70)  # near-duplicate of w0_0
    rows.append(("w0_dup.jpg", "w_0"))
    for k in range(10):
        texture(100 + k).save(root / "train" / f"nw{k}.jpg")
        rows.append((f"nw{k}.jpg", "new_whale"))
    pd.DataFrame(rows, columns=["Image", "Id"]).to_csv(root / "train.csv", index=False)
    texture(4).save(root / "test" / "leak.jpg", quality=80)  # duplicates w1_1
    for k in range(4):
        texture(200 + k).save(root / "test" / f"q{k}.jpg")
    (root / "boxes.csv").write_text("Image,x0,y0,x1,y1\nw0_0.jpg,10,5,80,60\nw0_1.jpg,50,5,10,60\n"
                                    "leak.jpg,500,500,600,600\n")
    return root


def fake_catalog(root):
    tr = pd.read_csv(root / "train.csv")
    test = sorted(p.name for p in (root / "test").iterdir())
    return SimpleNamespace(
        root=root, layout="kaggle",
        train=pd.DataFrame({"image": tr["Image"], "id": tr["Id"],
                            "path": [str(root / "train" / i) for i in tr["Image"]]}),
        test=pd.DataFrame({"image": test, "path": [str(root / "test" / i) for i in test]}),
        skipped=pd.DataFrame(columns=["image", "split", "path", "reason"]))


def config(**prep):
    over = [f"prepare.{k}={v}" for k, v in prep.items()]
    return load_config(None, ["prepare.cache_size=32", "prepare.dup_distance=6",
                              "prepare.val_fraction=0.3", "data.boxes=boxes.csv"] + over)


@pytest.fixture
def data(tmp_path):
    return make_set(tmp_path / "data")


def test_prepare_writes_everything(data, tmp_path, capsys):
    p = prepare(config(), tmp_path / "run", catalog=fake_catalog(data), progress=True)
    out = capsys.readouterr().out
    for word in ("prepared 35 train images", "duplicates:", "leaks: 1", "split (fold 0", "boxes:", "cache:"):
        assert word in out
    pdir = tmp_path / "run" / "prepared"
    for name in ("index.csv", "split.csv", "duplicates.csv", "leaks.csv", "conflicts.csv", "summary.json", "summary.txt",
                 "skipped.csv", "box_problems.csv", "hashes.csv", "test_duplicates.json"):
        assert (pdir / name).is_file(), name
    assert p.images.shape == (40, 32, 32) and p.size == (32, 32)
    s = json.loads((pdir / "summary.json").read_text())
    assert s["images"] == {"train": 35, "test": 5, "individuals": 8, "new_whale_train": 10}
    assert s["leaks"] == 1 and s["duplicates"]["train_groups"] == 1 and s["conflicts"] == 0
    assert s["boxes"]["box"] == 1 and s["boxes"]["invalid"] == 2 and s["boxes"]["problems"] == 2
    assert p.test_duplicates == {"leak.jpg": ["w_1"]}
    idx = p.index
    assert set(idx.loc[idx["split"] == "test", "role"]) == {"test"}
    assert set(idx.loc[idx["id"] == "new_whale", "role"]) <= {"val", "unused"}
    g = dict(zip(idx["image"], idx["group"]))
    assert g["w0_0.jpg"] == g["w0_dup.jpg"]
    roles = dict(zip(idx["image"], idx["role"]))
    assert roles["w0_0.jpg"] == roles["w0_dup.jpg"]  # a group moves together
    split = pd.read_csv(pdir / "split.csv")
    assert check_split(split) == []
    val = p.rows("val")
    assert len(val) and np.array_equal(p.labels("val"), idx.set_index("row").loc[val, "id"].to_numpy())
    assert len(p.rows("test")) == 5 and (p.labels("test") == "").all()
    assert sorted(np.concatenate([p.rows(r) for r in ("train", "val", "unused", "test")]).tolist()) == \
        list(range(40))


def test_second_prepare_reuses_hashes_and_cache(data, tmp_path, monkeypatch):
    first = prepare(config(), tmp_path / "run", catalog=fake_catalog(data), progress=False)
    assert first.summary["cache"]["reused"] is False
    monkeypatch.setattr(dedup, "hash_image", lambda *a: pytest.fail("hash recomputed"))
    second = prepare(config(), tmp_path / "run", catalog=fake_catalog(data), progress=False)
    assert second.summary["cache"]["reused"] is True
    pd.testing.assert_frame_equal(first.index, second.index)
    loaded = load_prepared(tmp_path / "run")
    pd.testing.assert_frame_equal(loaded.index, first.index)
    assert np.array_equal(np.asarray(loaded.images), np.asarray(first.images))
    assert loaded.test_duplicates == first.test_duplicates and loaded.size == (32, 32)
    assert np.array_equal(loaded.rows("val", fold=0), first.rows("val"))
    changed = prepare(config(cache_size=24), tmp_path / "run", catalog=fake_catalog(data), progress=False)
    assert changed.summary["cache"]["reused"] is False and changed.images.shape[1:] == (24, 24)


def test_folds_and_corrupt_images(data, tmp_path):
    (data / "train" / "nw3.jpg").write_bytes(b"not a jpeg")
    p = prepare(config(folds=2, val_fraction=0.2), tmp_path / "run", catalog=fake_catalog(data),
                progress=False)
    assert p.summary["skipped"]["total"] == 1 and "nw3.jpg" not in set(p.index["image"])
    assert p.summary["split"]["folds"] == 2
    v0, v1 = set(p.rows("val", fold=0)), set(p.rows("val", fold=1))
    assert v0 and v1 and not v0 & v1
    with pytest.raises(DataError, match="nw3.jpg"):
        prepare(load_config(None, ["data.strict=true", "prepare.cache_size=32"]), tmp_path / "strict",
                catalog=fake_catalog(data), progress=False)


def test_load_prepared_errors(tmp_path):
    with pytest.raises(DataError, match="not a prepared folder"):
        load_prepared(tmp_path)


def test_prepare_from_config_root(tiny_data, tmp_path):
    pytest.importorskip("whaleflow.data.catalog")
    cfg = load_config(None, [f"data.root={tiny_data}", "prepare.cache_size=32"])
    p = prepare(cfg, tmp_path / "run", progress=False)
    assert p.summary["images"]["train"] > 0 and p.images.shape[1:] == (32, 32)
    assert check_split(pd.read_csv(p.dir / "split.csv")) == []


def test_one_cache_per_stage_size_with_disk_use_and_a_local_copy(data, tmp_path, capsys):
    cfg = load_config(None, ["prepare.dup_distance=6", "prepare.val_fraction=0.3",
                             "models.0.stages=[{size: 24, epochs: 1}, {size: 32, epochs: 1}, {size: 24, epochs: 1}]"])
    p = prepare(cfg, tmp_path / "run", catalog=fake_catalog(data), progress=True)
    assert sorted(p.caches) == [(24, 24), (32, 32)] and p.size == (32, 32)
    assert np.array_equal(np.asarray(p.caches[(32, 32)]), np.asarray(p.images))
    assert [e["size"] for e in p.summary["caches"]] == [[32, 32], [24, 24]]
    assert all(e["bytes"] >= 40 * e["size"][0] * e["size"][1] for e in p.summary["caches"])
    out = capsys.readouterr().out
    assert "32×32 (" in out and "24×24 (" in out and "MB on disk" in out
    local = load_prepared(tmp_path / "run", local_cache_dir=tmp_path / "node")
    assert sorted(local.caches) == [(24, 24), (32, 32)]
    assert str(tmp_path / "node") in str(local.caches[(24, 24)].filename)
    assert np.array_equal(np.asarray(local.caches[(24, 24)]), np.asarray(p.caches[(24, 24)]))


def test_happywhale_layout_holds_out_individuals_and_warns_on_a_far_prior(tmp_path, caplog):
    from whaleflow.data.synthetic import generate_synthetic
    from whaleflow.labels import NEW_WHALE

    root = tmp_path / "hw"
    generate_synthetic(root, individuals=30, seed=2, width=64, height=48, layout="happywhale")
    cfg = load_config(None, [f"data.root={root}", "prepare.cache_size=32", "prepare.new_whale_val_fraction=0.25"])
    p = prepare(cfg, tmp_path / "run", progress=False)
    f0 = p.summary["split"]["fold_0"]
    assert p.summary["layout"] == "happywhale" and p.layout == "happywhale"
    assert f0["val_held_out"] > 0 and abs(f0["val_new_share"] - 0.25) < 0.06
    assert p.summary["warnings"] == []
    held = p.index[p.index["held_out"]]
    assert set(held["role"]) == {"val"} and not set(held["id"]) & set(p.labels("train"))
    val_labels = p.labels("val")
    assert (val_labels == NEW_WHALE).sum() == len(held)  # queries see them as new
    back = load_prepared(p.dir)
    assert back.index["held_out"].dtype == bool and back.index["held_out"].sum() == len(held)
    # a prior far from what validation holds is a warning, in the summary and the log
    cfg2 = load_config(None, [f"data.root={root}", "prepare.cache_size=32", "prepare.new_whale_val_fraction=0.25",
                              "predict.new_prior=0.5"])
    with caplog.at_level("WARNING", logger="whaleflow.data"):
        p2 = prepare(cfg2, tmp_path / "run2", progress=False)
    assert len(p2.summary["warnings"]) == 1 and "predict.new_prior expects 50 %" in p2.summary["warnings"][0]
    assert "predict.new_prior" in caplog.text
