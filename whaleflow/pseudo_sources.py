"""Pseudo-labels that cannot carry a validation photo's label back into training.

Round 0's test predictions search a train + validation gallery. A test photo taken in the
same burst as a validation photo is its near twin: its prediction is the most confident of
all, it becomes a pseudo-label, and in the next round it sits in training beside its twin —
against the split's own rule that near-duplicates never straddle train and validation. The
round's validation MAP@5 then rises for that reason alone. So a candidate is dropped when

* its near-duplicate group (prepare's perceptual-hash groups) holds a validation photo, or
* its best match among the labelled photos of the individual it was given — by the round-0
  models' own embeddings, cosine summed over the trials — is a validation photo;

and each round's validation gain is also reported on the validation photos that no
candidate came from (``val_gain_clean``): neither in a candidate's group nor its best match.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["drop_validation_sources", "clean_gain"]


def _embeddings(run_dir: Path) -> tuple[np.ndarray, pd.DataFrame] | None:
    """Unit embeddings of every photo, one block per round-0 trial side by side (so a dot
    product is the sum of the trials' cosines), and their images, roles, ids and groups."""
    blocks, meta = [], None
    for path in sorted((run_dir / "trials").glob("*/embeddings.npz")):
        z = np.load(path, allow_pickle=False)
        frame = pd.DataFrame({"image": z["images"].astype(str), "role": z["roles"].astype(str),
                              "id": (z["catalog_ids"] if "catalog_ids" in z.files else z["ids"]).astype(str),
                              "group": z["groups"].astype(str) if "groups" in z.files else z["images"].astype(str)})
        if meta is None:
            meta = frame
        elif not np.array_equal(meta["image"].to_numpy(), frame["image"].to_numpy()):
            continue  # another image order (a trial of another data set): not comparable
        e = z["embeddings"].astype(np.float32)
        blocks.append(e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12))
    if not blocks:
        return None
    return np.concatenate(blocks, axis=1), meta


def drop_validation_sources(run_dir: str | Path, labels: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, set[str]]:
    """(kept labels, dropped labels with a ``reason``, the validation photos any candidate came
    from) for ``labels`` (``image, id, score``) picked from round 0 of ``run_dir``."""
    found = _embeddings(Path(run_dir))
    if found is None or labels.empty:
        return labels, labels.iloc[:0].assign(reason=pd.Series(dtype=str)), set()
    emb, meta = found
    pos = {im: i for i, im in enumerate(meta["image"])}
    val = meta[meta["role"] == "val"]
    val_groups = val.groupby("group")["image"].apply(list).to_dict()
    labelled = meta[meta["role"].isin(("train", "val"))]
    reasons, sources = [], set()
    for image, ident in zip(labels["image"].astype(str), labels["id"].astype(str)):
        i = pos.get(image)
        if i is None:
            reasons.append("")
            continue
        twins = val_groups.get(meta["group"].iat[i], [])
        gallery = labelled[labelled["id"] == ident]
        best = None
        if len(gallery):
            rows = gallery.index.to_numpy()
            best = gallery.iloc[int(np.argmax(emb[rows] @ emb[i]))]
        if twins:
            sources.update(twins)
            reasons.append(f"near-duplicate of validation photo {twins[0]}")
        elif best is not None and best["role"] == "val":
            sources.add(str(best["image"]))
            reasons.append(f"best match is validation photo {best['image']}")
        else:
            reasons.append("")
    reasons = np.array(reasons, dtype=object)
    drop = reasons != ""
    return labels[~drop].reset_index(drop=True), labels[drop].assign(reason=reasons[drop]).reset_index(drop=True), sources


def clean_gain(before: pd.DataFrame, after: pd.DataFrame, sources: set[str]) -> float | None:
    """Validation MAP@5 gain between two rounds' ``val_predictions.csv`` over the queries that
    are not in ``sources``; None when either lacks hit positions or nothing is left."""
    if "hit_position" not in before or "hit_position" not in after:
        return None

    def ap(frame):
        hit = frame.set_index(frame["image"].astype(str))["hit_position"].astype(int)
        return (1.0 / hit.where(hit > 0, np.inf))

    a, b = ap(before), ap(after)
    keep = [im for im in a.index if im in b.index and im not in sources]
    if not keep:
        return None
    return float(b.loc[keep].mean() - a.loc[keep].mean())
