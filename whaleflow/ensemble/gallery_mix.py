"""Weights that make validation queries stand for the test queries' mix of gallery sizes.

A query's chance of a hit depends most on how many photos of its individual the
gallery holds: with one photo the network has a single view to match, with ten it
rarely misses. Validation and test differ there by construction. An individual
with one labelled photo can never give a validation query (it must keep a training
photo), yet in the test set it is asked about as often as its photos say: in a
``whaleflow synth`` set of 100 individuals, 19 % of the known test queries searched
a gallery with one photo of their individual, 5 % of the validation queries did, and
the expected test MAP@5 came out 0.07 too high.

So each known validation query gets the weight ``q(b) / p(b)`` of its gallery-size
bin ``b``: ``p`` is the share of known validation queries in that bin (gallery as the
query was scored: ``predict.val_gallery``), ``q`` the share the test queries are
expected to have. The expectation is that an individual is photographed again in
proportion to its labelled photos (as in the Kaggle splits, random over photos; the
same assumption behind ``prepare.sampling: proportional``): ``q(b) ∝ Σ n_t`` over the
individuals t whose labelled photo count ``n_t`` (the test gallery) falls in ``b``.
New-individual queries keep weight 1, so the known/new balance stays validation's.
The bins are powers of two (1, 2, 3–4, 5–8, …), joined with their neighbours (smallest
galleries first) until each holds ``MIN_QUERIES`` validation queries, so that no
handful of queries stands for a large share of the test set; a bin no validation query
fills is joined the same way.

The weights reach the expected test MAP@5 (:mod:`.outer`); with ``ensemble.weigh_choice``
they also choose the weights and the threshold. With ``ensemble.test_mix: validation``
every weight is 1 (validation as drawn).

Measured (expected − real test MAP@5 of ``configs/demo.yaml`` on four ``whaleflow synth``
sets: the demo's, seeds 1 and 2, the Happywhale layout with seed 3): validation as drawn
+0.017, +0.013, −0.021, +0.077; weighted −0.020, −0.029, −0.054, −0.017. The weights take
away the large optimism where validation holds few small galleries (the Happywhale layout
holds the least-photographed individuals out as new ones) and leave a pessimism of about
0.03: the test predictions come from fits on more photos (the classifier refit on train +
validation), which no weighting of validation can see. Weighting the choice as well moved
the real test MAP@5 by 0.000, +0.005, −0.003, −0.013: off by default.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.split import val_chunks
from ..labels import NEW_WHALE

__all__ = ["GalleryMix", "gallery_bin", "mix_text", "mix_weights", "run_gallery_mix", "mix_from_split"]

#: bins are joined until each holds this many validation queries: one query standing for a
#: tenth of the test set would make the estimate a coin toss (in ``make demo`` a single
#: query had the 2-photo galleries and would have weighed 12)
MIN_QUERIES = 10


def gallery_bin(size: np.ndarray) -> np.ndarray:
    """Bin index of a gallery size ≥ 1: 0 for 1, 1 for 2, 2 for 3–4, 3 for 5–8, …"""
    size = np.maximum(np.asarray(size, dtype=np.int64), 1)
    return np.ceil(np.log2(size)).astype(np.int64)


@dataclass
class GalleryMix:
    """Per validation query: its weight; and the two mixes it reconciles (for the report)."""

    weights: np.ndarray          # (n_val,), mean 1 over known queries' bins, 1 for new ones
    val_share: dict[str, float]  # bin label → share of known validation queries
    test_share: dict[str, float]  # bin label → expected share of known test queries
    # what the range over other test mixes needs (:mod:`.estimate_range`): each validation
    # query's gallery size as it was scored, and every labelled individual's photo count
    val_sizes: np.ndarray | None = field(default=None, repr=False)
    labelled_counts: dict[str, int] | None = field(default=None, repr=False)

    @property
    def effective_queries(self) -> float:
        """Kish's effective sample size: how many equally weighted queries the estimate is worth."""
        w = self.weights
        return float(w.sum() ** 2 / max((w ** 2).sum(), 1e-12))

    def to_dict(self) -> dict:
        """What ``summary.json`` keeps (and :func:`mix_text` reads)."""
        return {"val_share": self.val_share, "test_share": self.test_share,
                "effective_queries": self.effective_queries}


def mix_text(mix: dict) -> str:
    """One readable clause for the run's notes and the report, from :meth:`GalleryMix.to_dict`."""
    def shares(d: dict) -> str:
        return ", ".join(f"{k}: {100 * v:.0f} %" for k, v in d.items())
    return (f"gallery sizes (photos of the query's individual) validation {shares(mix['val_share'])}; "
            f"expected test {shares(mix['test_share'])}; worth {mix['effective_queries']:.0f} unweighted queries")


def _label(group: np.ndarray, g: int) -> str:
    """The gallery sizes of group ``g`` as text ("1", "3-8", "17+" for the last)."""
    bins = np.flatnonzero(group == g)
    lo, hi = (1 if bins[0] == 0 else 2 ** (bins[0] - 1) + 1), 2 ** bins[-1]
    if g == group.max():
        return f"{lo}+"
    return str(lo) if lo == hi else f"{lo}-{hi}"


def mix_weights(val_gallery: np.ndarray, known: np.ndarray, labelled_counts: np.ndarray,
                min_queries: int = MIN_QUERIES, shares: np.ndarray | None = None) -> GalleryMix:
    """Weights for validation queries whose own individual has ``val_gallery`` photos in the
    gallery they were scored against (``known`` marks known-individual queries), so that their
    bins carry the shares test queries are expected to have, given every known individual's
    labelled photo count ``labelled_counts`` (its test gallery). ``shares`` (per power-of-two
    bin) replaces that expectation with another mix (:mod:`.estimate_range`)."""
    known = np.asarray(known, dtype=bool)
    weights = np.ones(len(known), dtype=np.float64)
    counts = np.asarray(labelled_counts, dtype=np.float64)
    counts = counts[counts > 0]
    if not known.any() or not len(counts):
        return GalleryMix(weights, {}, {})
    vb = gallery_bin(np.asarray(val_gallery)[known])
    tb = gallery_bin(counts)
    nb = int(max(vb.max(), tb.max(), 0 if shares is None else len(shares) - 1)) + 1
    n_val = np.bincount(vb, minlength=nb)
    if shares is None:
        q = np.bincount(tb, weights=counts, minlength=nb) / counts.sum()
    else:
        q = np.zeros(nb)
        q[: len(shares)] = np.asarray(shares, dtype=np.float64) / max(float(np.sum(shares)), 1e-12)
    group = _groups(n_val, min_queries)
    pg = np.bincount(group, weights=n_val) / len(vb)
    qg = np.bincount(group, weights=q)
    weights[known] = qg[group[vb]] / pg[group[vb]]
    return GalleryMix(weights, {_label(group, g): float(pg[g]) for g in np.unique(group)},
                      {_label(group, g): float(qg[g]) for g in np.unique(group)})


def _groups(n_val: np.ndarray, min_queries: int) -> np.ndarray:
    """Group id per bin: adjacent bins joined, smallest galleries first, until each group holds
    ``min_queries`` validation queries (a short last group joins the one before it)."""
    group, g, held = np.zeros(len(n_val), dtype=np.int64), 0, 0
    for b, c in enumerate(n_val):
        group[b], held = g, held + c
        if held >= min_queries and b < len(n_val) - 1:
            g, held = g + 1, 0
    if held < min_queries and g > 0:  # the last group is short (or empty): join the one before
        group[group == g] = g - 1
    return group


def mix_from_split(split_csv: str | Path, val_images: np.ndarray, truth_known: np.ndarray, *,
                   val_gallery: str, chunks: int, seed: int, min_queries: int = MIN_QUERIES) -> GalleryMix | None:
    """:func:`mix_weights` for the validation queries ``val_images`` (in the ensemble's order)
    from a run's ``prepared/split.csv``; None when the file is missing or does not list them.

    The gallery of a validation query is rebuilt as the families scored it: ``test_like``
    (train + the known validation photos of the other chunks, see
    ``FamilyTask.test_like_val_scores``) or ``train``; held-out individuals are new queries
    in validation and known ones in the test gallery, as in training.
    """
    path = Path(split_csv)
    if not path.is_file():
        return None
    split = pd.read_csv(path, dtype={"image": str, "id": str, "role": str, "group": str})
    held = split.get("held_out", pd.Series(False, index=split.index)).astype(str).str.lower().isin(("true", "1"))
    ids = split["id"].astype(str)
    labelled = split["role"].isin(("train", "val")) & (ids != NEW_WHALE) & (ids != "")
    val = split[split["role"] == "val"].copy()
    if not set(map(str, val_images)) <= set(val["image"]):
        return None
    val["chunk"] = val_chunks(val["group"].to_numpy() if "group" in val else val["image"].to_numpy(),
                              chunks, seed)
    train_n = ids[(split["role"] == "train") & labelled].value_counts()
    val_known = val[(val["id"] != NEW_WHALE) & ~held[val.index]]
    per_chunk = val_known.groupby(["id", "chunk"]).size()
    val_n = val_known["id"].value_counts()
    rows = val.set_index("image").loc[list(map(str, val_images))]
    t = rows["id"].to_numpy()
    size = train_n.reindex(t, fill_value=0).to_numpy()
    if val_gallery == "test_like":  # the other chunks' photos of the same individual
        own = np.array([per_chunk.get((i, c), 0) for i, c in zip(t, rows["chunk"])])
        size = size + val_n.reindex(t, fill_value=0).to_numpy() - own
    per_id = ids[labelled].value_counts()
    mix = mix_weights(size, np.asarray(truth_known, dtype=bool), per_id.to_numpy(), min_queries)
    mix.val_sizes = np.where(np.asarray(truth_known, dtype=bool), size, 0)
    mix.labelled_counts = {str(k): int(v) for k, v in per_id.items()}
    return mix


def run_gallery_mix(cfg, run_dir: str | Path, val_images: np.ndarray, truth_idx: np.ndarray) -> GalleryMix | None:
    """The run's weights under ``ensemble.test_mix`` (None: ``validation``, or no split to read)."""
    mode = cfg.ensemble.test_mix
    if mode == "validation":
        return None
    return mix_from_split(Path(run_dir) / "prepared" / "split.csv", val_images, np.asarray(truth_idx) != -1,
                               val_gallery=cfg.predict.val_gallery, chunks=cfg.predict.val_chunks,
                               seed=cfg.train.seed)
