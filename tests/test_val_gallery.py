"""The test-like validation gallery: each query against train + the other chunks' known val photos."""
from types import SimpleNamespace

import numpy as np
import pandas as pd

from whaleflow.families.base import FamilyTask, Split
from whaleflow.labels import NEW_WHALE


class Recording(FamilyTask):
    """FamilyTask's gallery logic with a transparent scorer: a class's score is how many of its
    gallery photos are in the same cache row as the query (0/1), plus the class's photo count /100."""

    def __init__(self, index):
        self.prepared = SimpleNamespace(index=index)
        self.train_cfg = SimpleNamespace(seed=0)
        self.splits = {r: FamilyTask._split(index, r) for r in ("train", "val", "test")}
        self.galleries = []

    def score_queries_named(self, q_rows, g_rows, g_labels, classes):
        self.galleries.append((set(q_rows.tolist()), set(g_rows.tolist())))
        out = np.zeros((len(q_rows), len(classes)), np.float32)
        for j, c in enumerate(range(len(classes))):
            out[:, j] = (g_labels == c).sum() / 100.0
        return out

    def modules(self):
        return []

    def score_queries(self, *a):
        raise AssertionError("not used")

    def image_vectors(self, rows, flip):
        raise AssertionError("not used")

    train_epoch = state_dict = load_state_dict = model_state = load_model_state = score_views = build_networks = \
        image_vectors


def _index():
    rows = []
    # train: w1 ×2, w2 ×1, w3 ×1; val: w1 ×2 (one duplicate pair), w2 ×1, new_whale ×2, held-out w9 ×1
    spec = [("train", "w1", 0), ("train", "w1", 1), ("train", "w2", 2), ("train", "w3", 3),
            ("val", "w1", 10), ("val", "w1", 10), ("val", "w2", 11), ("val", NEW_WHALE, 12),
            ("val", NEW_WHALE, 13), ("val", "w9", 14), ("test", "", 20)]
    for i, (role, ident, group) in enumerate(spec):
        rows.append({"image": f"i{i}.jpg", "id": ident, "role": role, "group": group, "row": i,
                     "held_out": ident == "w9"})
    return pd.DataFrame(rows)


def test_each_chunk_sees_train_and_the_other_chunks_known_val_photos_only():
    index = _index()
    task = Recording(index)
    cs = task.test_like_val_scores(chunks=3)
    val = index[index["role"] == "val"]
    group_of = dict(zip(index["row"], index["group"]))
    known_val_rows = set(val["row"][(val["id"] != NEW_WHALE) & ~val["held_out"]])
    train_rows = set(index["row"][index["role"] == "train"])
    seen = set()
    for queries, gallery in task.galleries:
        seen |= queries
        q_groups = {group_of[r] for r in queries}
        assert train_rows <= gallery
        assert not {group_of[r] for r in gallery} & q_groups, "no query sees itself or its twins"
        assert gallery - train_rows == {r for r in known_val_rows if group_of[r] not in q_groups}
    assert seen == set(val["row"])
    # held-out w9 is new as a query and its class is in no gallery; classes = known individuals
    assert list(cs.truth) == list(np.where(val["held_out"], NEW_WHALE, val["id"]))
    assert "w9" not in set(cs.classes) and set(cs.classes) == {"w1", "w2", "w3"}
    # brute force: for each query, photos per class in train + the known val photos of other chunks, / 100
    chunk = dict(zip(val["row"], task.val_chunk_ids(3)))
    assert len(set(chunk.values())) == 3
    for qi, r in enumerate(val["row"]):
        gal = [(rr, ii) for rr, ii in zip(index["row"], index["id"])
               if rr in train_rows or (rr in known_val_rows and chunk[rr] != chunk[r])]
        for j, c in enumerate(cs.classes):
            assert cs.scores[qi, j] == np.float32(sum(ii == c for _, ii in gal) / 100.0)


def test_split_keeps_query_and_gallery_ids():
    s = FamilyTask._split(_index(), "val")
    assert isinstance(s, Split)
    assert list(s.ids).count(NEW_WHALE) == 3 and "w9" in set(s.gallery_ids)


def test_the_gallery_plan_gives_every_query_the_gallery_the_families_score_it_against():
    """whaleflow.data.gallery_plan (used outside the families, e.g. by local-feature matching)
    and FamilyTask.test_like_val_scores agree photo for photo, and the test gallery holds every
    labelled photo, held-out individuals under their own ids."""
    from whaleflow.data.gallery_plan import GalleryPlan

    index = _index()
    task = Recording(index)
    task.test_like_val_scores(chunks=3)
    plan = GalleryPlan(index, "test_like", chunks=3, seed=0)
    image_of = dict(zip(index["row"], index["image"]))
    for queries, gallery in task.galleries:
        chunks = {plan.val_chunk(image_of[r]) for r in queries}
        assert len(chunks) == 1
        images, ids = plan.val_gallery_of(chunks.pop())
        assert set(images) == {image_of[r] for r in gallery}
        assert NEW_WHALE not in set(ids) and "w9" not in set(ids)
    t_images, t_ids = plan.test_gallery()
    labelled = index[index["role"].isin(["train", "val"]) & (index["id"] != NEW_WHALE)]
    assert set(t_images) == set(labelled["image"]) and "w9" in set(t_ids)
    train_only = GalleryPlan(index, "train", chunks=3, seed=0)
    assert set(train_only.val_gallery_of(0)[0]) == set(index["image"][index["role"] == "train"])
