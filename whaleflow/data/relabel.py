"""Cross-release label mapping by perceptual hash.

Data sets get re-released: HWI's 2018 "playground" release and the 2019 competition
share most photos, but individuals were renamed, merged and split between them. Each
image of the previous release is matched to its nearest current image by hash
(Hamming distance ≤ ``dup_distance``, aspect ratios agreeing); each old label then maps
to the current label most of its matched images carry (majority vote), and the
agreement (share of votes for the winner) says how clean that mapping is.

The matched current images whose label agrees with their old label's mapping are
photos two releases labelled the same way: a trustworthy pool for a large
validation set (:func:`whaleflow.data.split.split_train` takes them first via
``prefer_val``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..io import write_csv
from ..labels import NEW_WHALE
from .dedup import aspect_ok, hamming_pairs, pack_hashes

MAPPING_COLUMNS = ["old_id", "new_id", "matched_images", "agreement", "old_images"]


@dataclass
class Relabel:
    mapping: pd.DataFrame   # old_id, new_id, matched_images, agreement, old_images
    matches: pd.DataFrame   # old_image, old_id, image, id, distance
    preferred: set[str] = field(default_factory=set)  # current images two releases agree on
    summary: dict = field(default_factory=dict)


def map_labels(current: pd.DataFrame, previous: pd.DataFrame, *, max_distance: int = 4,
               max_aspect_ratio: float = 1.2, new_whale: str = NEW_WHALE) -> Relabel:
    """Match ``previous`` images to ``current`` ones and map old labels to new labels.

    Both frames have columns image, id, hash, width, height (rows with an empty hash
    are ignored).
    """
    cur = current[current["hash"].astype(str) != ""].reset_index(drop=True)
    prev = previous[previous["hash"].astype(str) != ""].reset_index(drop=True)
    i, j, d = hamming_pairs(pack_hashes(prev["hash"].tolist()), max_distance,
                            pack_hashes(cur["hash"].tolist()))
    good = aspect_ok(prev["width"].to_numpy()[i], prev["height"].to_numpy()[i],
                     cur["width"].to_numpy()[j], cur["height"].to_numpy()[j], max_aspect_ratio)
    pairs = pd.DataFrame({"p": i[good], "c": j[good], "distance": d[good]})
    # Nearest current image per previous image (ties: the first current row).
    pairs = pairs.sort_values(["p", "distance", "c"], kind="stable").drop_duplicates("p")
    matches = pd.DataFrame({
        "old_image": prev["image"].to_numpy()[pairs["p"]],
        "old_id": prev["id"].astype(str).to_numpy()[pairs["p"]],
        "image": cur["image"].to_numpy()[pairs["c"]],
        "id": cur["id"].astype(str).to_numpy()[pairs["c"]],
        "distance": pairs["distance"].to_numpy(),
    })

    rows = []
    old_counts = prev["id"].astype(str).value_counts()
    known_old = matches[matches["old_id"] != new_whale]
    by_old = {k: g for k, g in known_old.groupby("old_id", sort=True)}
    for old_id in sorted(set(old_counts.index) - {new_whale}):
        sub = by_old.get(old_id)
        if sub is None or not len(sub):
            rows.append({"old_id": old_id, "new_id": "", "matched_images": 0, "agreement": 0.0,
                         "old_images": int(old_counts[old_id])})
            continue
        votes = sub["id"].value_counts()
        winner = sorted(votes.index, key=lambda k: (-votes[k], k == new_whale, k))[0]
        rows.append({"old_id": old_id, "new_id": winner, "matched_images": int(len(sub)),
                     "agreement": round(float(votes[winner] / len(sub)), 4),
                     "old_images": int(old_counts[old_id])})
    mapping = pd.DataFrame(rows, columns=MAPPING_COLUMNS)
    target = dict(zip(mapping["old_id"], mapping["new_id"]))
    agree = known_old[(known_old["old_id"].map(target) == known_old["id"]) & (known_old["id"] != new_whale)]
    renamed = mapping[(mapping["matched_images"] > 0) & (mapping["old_id"] != mapping["new_id"])]
    old_nw = matches[matches["old_id"] == new_whale]
    summary = {
        "previous_images": int(len(previous)),
        "matched_images": int(len(matches)),
        "old_ids": int(len(mapping)),
        "mapped_ids": int((mapping["matched_images"] > 0).sum()),
        "renamed_ids": int(len(renamed)),
        "merged_into_fewer": int(mapping.loc[mapping["matched_images"] > 0, "new_id"].duplicated().sum()),
        "low_agreement_ids": int(((mapping["agreement"] < 1.0) & (mapping["matched_images"] > 0)).sum()),
        "old_new_whale_now_known": int((old_nw["id"] != new_whale).sum()),
        "preferred_val_images": int(agree["image"].nunique()),
    }
    return Relabel(mapping, matches.reset_index(drop=True), set(agree["image"]), summary)


def write_mapping(relabel: Relabel, folder: str | Path) -> None:
    """``label_map.csv`` (one row per old label) and ``label_matches.csv`` (per image)."""
    folder = Path(folder)
    write_csv(folder / "label_map.csv", relabel.mapping)
    write_csv(folder / "label_matches.csv", relabel.matches)
