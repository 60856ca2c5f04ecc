"""A planted relabelling between two releases: renames, a merge, a split label, unmatched ids."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from whaleflow.config import load_config
from whaleflow.data import prepare as prepare_mod
from whaleflow.data.dedup import hash_images
from whaleflow.data.relabel import map_labels, write_mapping
from whaleflow.data.split_report import check_split


def texture(seed, w=96, h=64):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (6, 9, 3)).astype(np.uint8)).resize((w, h), Image.BICUBIC)


# (seed, old id, new id): the same photo in both releases; None = absent from that release
PLAN = [
    (1, "old_a", "w_x"), (2, "old_a", "w_x"), (3, "old_a", "w_x"),   # renamed
    (4, "old_b", "w_y"), (5, "old_b", "w_y"),                         # merged with old_c …
    (6, "old_c", "w_y"), (7, "old_c", "w_y"),                         # … into w_y
    (8, "old_d", "w_d"), (9, "old_d", "w_d"), (10, "old_d", "w_z"),   # 2 of 3 agree
    (11, "new_whale", "w_q"),                                         # resolved since
    (12, "new_whale", "new_whale"),
    (13, "old_e", None),                                              # dropped photo
    (14, None, "w_x"), (15, None, "w_d"), (16, None, "new_whale"),    # new photos
]


def release(root, which):
    rows = []
    for seed, old, new in PLAN:
        label = old if which == "old" else new
        if label is None:
            continue
        # the releases re-encode differently: a different size and JPEG quality
        img = texture(seed, *((96, 64) if which == "old" else (120, 80)))
        path = root / which / f"{which}{seed}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, quality=90 if which == "old" else 75)
        rows.append((path.name, label, str(path)))
    frame = pd.DataFrame(rows, columns=["image", "id", "path"])
    return pd.concat([frame, hash_images(frame["path"])[["width", "height", "hash"]]], axis=1)


def test_mapping_table(tmp_path):
    old, new = release(tmp_path, "old"), release(tmp_path, "new")
    rel = map_labels(new, old, max_distance=6)
    m = rel.mapping.set_index("old_id")
    assert list(rel.mapping.columns) == ["old_id", "new_id", "matched_images", "agreement", "old_images"]
    assert m.loc["old_a"].tolist() == ["w_x", 3, 1.0, 3]
    assert m.loc["old_b", "new_id"] == m.loc["old_c", "new_id"] == "w_y"
    assert m.loc["old_d"].tolist() == ["w_d", 3, pytest.approx(0.6667), 3]
    assert m.loc["old_e"].tolist() == ["", 0, 0.0, 1]
    assert "new_whale" not in m.index
    assert len(rel.matches) == 12
    assert rel.preferred == {f"new{s}.jpg" for s in (1, 2, 3, 4, 5, 6, 7, 8, 9)}
    s = rel.summary
    assert s["matched_images"] == 12 and s["mapped_ids"] == 4 and s["renamed_ids"] == 4
    assert s["merged_into_fewer"] == 1 and s["low_agreement_ids"] == 1
    assert s["old_new_whale_now_known"] == 1 and s["preferred_val_images"] == 9
    write_mapping(rel, tmp_path / "out")
    assert len(pd.read_csv(tmp_path / "out" / "label_map.csv")) == 5


def catalog(frame, root):
    from types import SimpleNamespace
    return SimpleNamespace(root=root, layout="kaggle", train=frame[["image", "id", "path"]],
                           test=pd.DataFrame({"image": [], "path": []}),
                           skipped=pd.DataFrame(columns=["image", "split", "path", "reason"]))


def test_prepare_prefers_matched_images_for_validation(tmp_path, monkeypatch):
    old, new = release(tmp_path, "old"), release(tmp_path, "new")
    monkeypatch.setattr(prepare_mod, "catalog_for", lambda root, cfg, progress: catalog(old, root))
    cfg = load_config(None, [f"data.previous_root={tmp_path / 'old'}", "prepare.cache_size=16",
                             "prepare.dup_distance=6", "prepare.val_fraction=0.3"])
    p = prepare_mod.prepare(cfg, tmp_path / "run", catalog=catalog(new, tmp_path / "new"), progress=False)
    assert (p.dir / "label_map.csv").is_file() and p.summary["relabel"]["mapped_ids"] == 4
    val = set(p.index.loc[p.index["role"] == "val", "image"]) - {"new12.jpg", "new16.jpg"}
    assert val and val <= {f"new{s}.jpg" for s in range(1, 10)}
    assert check_split(pd.read_csv(p.dir / "split.csv")) == []
