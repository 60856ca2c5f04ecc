"""Split invariants: groups move whole, val individuals keep a train image, new_whale prior, folds, seeds."""
import numpy as np
import pandas as pd
import pytest

from whaleflow.data.split import query_ids, roles_for_fold, split_train
from whaleflow.data.split_report import check_split, split_summary, write_split
from whaleflow.errors import ConfigError, DataError

NW = "new_whale"


def make_frame(seed=0, individuals=60, new_whales=80):
    """Long-tailed individuals, some near-duplicate groups of 2-3, a conflict group, many new_whale."""
    rng = np.random.default_rng(seed)
    rows, group = [], 0
    for k in range(individuals):
        shots = int(min(12, rng.zipf(1.8)))
        for s in range(shots):
            size = 1 + int(rng.random() < 0.25) + int(rng.random() < 0.1)  # near-duplicates
            for d in range(size):
                rows.append((f"i{k}_{s}_{d}.jpg", f"w_{k:03d}", group))
            group += 1
    for k in range(new_whales):
        size = 1 + int(rng.random() < 0.2)
        for d in range(size):
            rows.append((f"nw{k}_{d}.jpg", NW, group))
        group += 1
    # a conflict group (two known ids) and a mixed group (known id + new_whale)
    rows += [("c1.jpg", "w_000", group), ("c2.jpg", "w_001", group)]
    rows += [("m1.jpg", "w_002", group + 1), ("m2.jpg", NW, group + 1)]
    return pd.DataFrame(rows, columns=["image", "id", "group"])


@pytest.mark.parametrize("folds", [1, 3])
def test_invariants_hold_in_every_fold(folds):
    frame = make_frame()
    out = split_train(frame, val_fraction=0.2, new_whale_val_fraction=0.28, folds=folds, seed=1)
    assert check_split(out) == []
    assert len(out) == len(frame) and set(out["role"]) <= {"train", "val", "unused"}
    for f in range(folds):
        role = roles_for_fold(out, f)
        assert (role == "val").sum() > 0
        # no near-duplicate of a val image in train
        val_groups = set(out["group"][role == "val"])
        assert not ((role == "train") & out["group"].isin(val_groups)).any()
        # every known val individual keeps a train image
        train_ids = set(out["id"][role == "train"])
        assert set(out["id"][(role == "val") & (out["id"] != NW)]) <= train_ids
        # new_whale never trains
        assert not ((role == "train") & (out["id"] == NW)).any()


def test_folds_are_disjoint_and_roles_view_fold_zero():
    out = split_train(make_frame(), folds=3, seed=0)
    assert set(out["fold"]) <= {-1, 0, 1, 2}
    assert (out["role"].to_numpy() == roles_for_fold(out, 0)).all()
    per_fold = [set(out["image"][out["fold"] == f]) for f in range(3)]
    assert not (per_fold[0] & per_fold[1]) and not (per_fold[1] & per_fold[2])


def test_new_whale_share_matches_prior_and_surplus_unused():
    frame = make_frame(individuals=120, new_whales=300)
    out = split_train(frame, new_whale_val_fraction=0.28, seed=0)
    val = out[out["role"] == "val"]
    share = (val["id"] == NW).mean()
    assert abs(share - 0.28) < 0.04
    nw = out[out["id"] == NW]
    assert set(nw["role"]) == {"val", "unused"}
    assert (out[out["role"] == "unused"]["id"] == NW).all()


def test_zero_prior_keeps_new_whale_out_of_val():
    out = split_train(make_frame(), new_whale_val_fraction=0.0)
    assert not ((out["role"] == "val") & (out["id"] == NW)).any()


def test_single_group_individuals_and_conflicts_never_validate():
    frame = make_frame()
    out = split_train(frame, val_fraction=0.5, seed=3, hold_out_new=False)
    groups_per_id = frame[frame["id"] != NW].groupby("id")["group"].nunique()
    singles = set(groups_per_id[groups_per_id == 1].index) - {"w_000", "w_001", "w_002"}
    assert singles, "the fixture must hold single-group individuals"
    assert not out[out["id"].isin(singles)]["role"].eq("val").any()
    conflict = out[out["image"].isin(["c1.jpg", "c2.jpg"])]
    assert (conflict["role"] == "train").all() and (conflict["fold"] == -1).all()
    assert out.set_index("image").loc["m2.jpg", "role"] == "unused"  # ambiguous new_whale


def test_deterministic_per_seed():
    frame = make_frame()
    a = split_train(frame, seed=7, folds=2)
    b = split_train(frame, seed=7, folds=2)
    c = split_train(frame, seed=8, folds=2)
    pd.testing.assert_frame_equal(a, b)
    assert not a["role"].equals(c["role"])


def test_prefer_val_images_are_taken_first():
    frame = make_frame()
    multi = frame[frame["id"] != NW].groupby("id")["group"].nunique()
    ids = [i for i in multi[multi >= 2].index if i not in ("w_000", "w_001", "w_002")][:5]
    preferred = {frame[frame["id"] == i]["image"].iloc[-1] for i in ids}
    out = split_train(frame, val_fraction=0.05, prefer_val=preferred, seed=0)
    assert set(out[out["image"].isin(preferred)]["role"]) == {"val"}
    assert check_split(out) == []


def test_summary_and_csv(tmp_path):
    out = split_train(make_frame(), folds=2)
    s = split_summary(out)
    assert s["folds"] == 2 and s["fold_0"]["val_images"] == (out["role"] == "val").sum()
    path = write_split(out, tmp_path / "split.csv")
    back = pd.read_csv(path)
    assert list(back.columns) == ["image", "id", "role", "fold", "held_out", "group", "reason"]
    assert back["role"].iloc[0] == "val" and len(back) == len(out)
    assert back["reason"].str.len().min() > 0


def test_bad_input():
    with pytest.raises(DataError, match="group"):
        split_train(pd.DataFrame({"image": ["a"], "id": ["x"]}))
    with pytest.raises(ConfigError):
        split_train(make_frame(), new_whale_val_fraction=1.0)
    with pytest.raises(ConfigError):
        split_train(make_frame(), folds=0)


@pytest.mark.parametrize("folds", [1, 3])
def test_without_new_whale_whole_individuals_are_held_out_at_the_prior(folds):
    """A Happywhale-like set (no new-individual label): validation still holds new ones."""
    frame = make_frame(individuals=500, new_whales=0)
    out = split_train(frame, val_fraction=0.15, new_whale_val_fraction=0.25, folds=folds, seed=2)
    assert check_split(out) == []
    for f in range(folds):
        role = roles_for_fold(out, f)
        val = out[role == "val"]
        held = val["held_out"].to_numpy()
        assert held.any() and abs(held.mean() - 0.25) < 0.04
        # held-out individuals never appear in train, with any photo, in that fold
        held_ids = set(val["id"][held])
        assert not (set(out["id"][role == "train"]) & held_ids)
        assert set(out["id"][val.index[~held]]).isdisjoint(held_ids)
        assert (query_ids(val)[held] == NW).all() and (query_ids(val)[~held] != NW).all()
        # whole individuals: every photo of a held-out individual validates
        assert (role[out["id"].isin(held_ids).to_numpy()] == "val").all()
    s = split_summary(out)["fold_0"]
    assert s["val_held_out"] == s["val_new_whale"] and s["val_new_share"] == pytest.approx(
        s["val_new_whale"] / s["val_images"])


def test_new_whale_photos_come_first_and_holdout_only_tops_up():
    plenty = split_train(make_frame(individuals=120, new_whales=300), new_whale_val_fraction=0.28, seed=0)
    assert not plenty["held_out"].any()
    few = split_train(make_frame(individuals=200, new_whales=10), new_whale_val_fraction=0.28, seed=0)
    val = few[few["role"] == "val"]
    assert (val["id"] == NW).sum() == (few["id"] == NW).sum() - 1 and val["held_out"].any()  # m2: unused
    new_share = ((val["id"] == NW) | val["held_out"]).mean()
    assert abs(new_share - 0.28) < 0.04
    off = split_train(make_frame(individuals=200, new_whales=10), new_whale_val_fraction=0.28, seed=0,
                      hold_out_new=False)
    assert not off["held_out"].any()


def test_held_out_individuals_are_the_rarest():
    frame = make_frame(individuals=200, new_whales=0)
    out = split_train(frame, new_whale_val_fraction=0.2, seed=0)
    photos = frame.groupby("id").size()
    held = set(out["id"][out["held_out"]])
    assert max(photos[list(held)]) <= min(photos[list(set(photos.index) - held)]) + 1


def test_proportional_sampling_validates_individuals_as_often_as_they_are_photographed():
    frame = make_frame(individuals=300, new_whales=200)
    photos = frame[frame["id"] != NW].groupby("id").size()
    mean_photos = {}
    for sampling in ("proportional", "round_robin"):
        out = split_train(frame, val_fraction=0.2, sampling=sampling, seed=0)
        assert check_split(out) == []
        val = out[(out["role"] == "val") & (out["id"] != NW)]
        mean_photos[sampling] = photos[val["id"]].mean()
    # a query of a much-photographed individual is likelier, as in a test set
    assert mean_photos["proportional"] > mean_photos["round_robin"] + 0.5
    with pytest.raises(ConfigError):
        split_train(frame, sampling="alphabetical")
