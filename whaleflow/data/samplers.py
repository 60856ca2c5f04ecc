"""Batch samplers: P×K batches for metric learning, balanced pair batches for siamese nets.

A horizontally flipped fluke is a different individual (the pattern and the trailing
edge are not symmetric), so with C known individuals the samplers work with 2C
*virtual classes*: class ``c`` unflipped and class ``c + C`` = ``c`` flipped. Every
batch says which images to flip, and its labels are virtual labels. A *virtual
image* index is ``i`` (image ``i`` as is) or ``i + n`` (image ``i`` flipped); miners
that score the flipped copies too speak in those indices.

Individuals with one image are still used: P×K samples with replacement (the copies
differ by augmentation), a same pair of a singleton is the image with itself
(augmented twice), and its flipped twin is a free extra class.

The pair sampler can be told which images must never be negatives of each other
(``neg_codes``: individuals merged through near-duplicate groups,
:func:`whaleflow.mining.negative_codes`); its random negatives respect them as mined
ones do. With mined pairs, ``random_share`` of every batch's positives and negatives
stay random, so the net keeps seeing the easy cases it is ranked on too.

Both samplers are deterministic per (seed, epoch): ``set_epoch`` makes a resumed run
draw what the interrupted run would have drawn.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np

from ..errors import DataError
from ..labels import NEW_WHALE
from ..registry import SAMPLERS


class _Base:
    def __init__(self, labels, flip_new_class: bool, seed: int, rows=None):
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) == 0:
            raise DataError("a sampler needs a non-empty 1-D array of training labels.")
        if labels.dtype.kind in "USO" and (labels.astype(str) == NEW_WHALE).any():
            raise DataError(f"{NEW_WHALE} is not a training class.",
                            fix="sample from the 'train' role of a prepared set only.")
        self.classes_, self.codes = np.unique(labels, return_inverse=True)
        self.n = len(labels)
        self.n_classes = len(self.classes_)
        self.flip_new_class = bool(flip_new_class)
        self.num_classes = self.n_classes * (2 if self.flip_new_class else 1)
        self.rows = np.arange(self.n) if rows is None else np.asarray(rows, dtype=np.int64)
        if len(self.rows) != self.n:
            raise DataError(f"rows ({len(self.rows)}) and labels ({self.n}) differ in length.")
        order = np.argsort(self.codes, kind="stable")
        bounds = np.searchsorted(self.codes[order], np.arange(self.n_classes + 1))
        self.members = [order[bounds[c]:bounds[c + 1]] for c in range(self.n_classes)]
        self.seed = int(seed)
        self._epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)

    def epoch(self, epoch: int):
        """The batches of epoch ``epoch`` (the same ones whenever it is asked for)."""
        self.set_epoch(epoch)
        return iter(self)

    def state_dict(self) -> dict:
        """What a checkpoint needs to resume the same stream of batches."""
        return {"seed": self.seed, "epoch": self._epoch}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self._epoch = int(state["epoch"])

    def _rng(self) -> np.random.Generator:
        rng = np.random.default_rng([self.seed, self._epoch])
        self._epoch += 1
        return rng

    def virtual_label(self, pos: np.ndarray, flip: np.ndarray) -> np.ndarray:
        return self.codes[pos] + np.where(flip, self.n_classes, 0)

    def split_virtual(self, v) -> tuple[np.ndarray, np.ndarray]:
        """Virtual image indices → (positions, flips)."""
        v = np.asarray(v, dtype=np.int64)
        limit = self.n * (2 if self.flip_new_class else 1)
        if v.size and (v.min() < 0 or v.max() >= limit):
            raise ValueError(f"virtual image indices must lie in [0, {limit})")
        return v % self.n, v >= self.n


@SAMPLERS.register("pk")
class PKSampler(_Base):
    """P virtual classes × K images per batch: yields (rows, flips, virtual_labels)."""

    def __init__(self, labels, p: int, k: int, flip_new_class: bool = True, seed: int = 0, rows=None):
        super().__init__(labels, flip_new_class, seed, rows)
        if p < 1 or k < 1:
            raise DataError(f"P×K batches need p ≥ 1 and k ≥ 1, got p={p}, k={k}.")
        self.p = min(int(p), self.num_classes)
        self.k = int(k)

    def __len__(self) -> int:
        virtual_images = self.n * (2 if self.flip_new_class else 1)
        return max(1, -(-virtual_images // (self.p * self.k)))

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        rng = self._rng()
        queue = np.zeros(0, dtype=np.int64)
        for _ in range(len(self)):
            if len(queue) < self.p:  # every virtual class once before any twice
                queue = np.concatenate([queue, rng.permutation(self.num_classes)])
            chosen, queue = queue[: self.p], queue[self.p:]
            if len(set(chosen.tolist())) < len(chosen):  # a refill boundary repeated a class
                rest = np.setdiff1d(np.arange(self.num_classes), chosen)
                chosen = np.concatenate([np.unique(chosen), rng.choice(rest, self.p - len(np.unique(chosen)),
                                                                        replace=False)])
            pos, flips, labs = [], [], []
            for v in chosen:
                c, flip = int(v) % self.n_classes, int(v) >= self.n_classes
                m = self.members[c]
                if len(m) >= self.k:
                    pick = rng.choice(m, self.k, replace=False)
                else:  # few images: each at least once, the rest repeated (augmentation varies them)
                    pick = np.concatenate([m, rng.choice(m, self.k - len(m), replace=True)])
                pos.append(pick)
                flips.append(np.full(self.k, flip))
                labs.append(np.full(self.k, v))
            pos = np.concatenate(pos)
            yield self.rows[pos], np.concatenate(flips), np.concatenate(labs).astype(np.int64)


class PairBatch(NamedTuple):
    """Rows and flips of both sides, and the target: 1.0 same virtual individual, 0.0 different."""

    a: np.ndarray
    flip_a: np.ndarray
    b: np.ndarray
    flip_b: np.ndarray
    target: np.ndarray


@SAMPLERS.register("pairs")
class PairSampler(_Base):
    """Balanced pair batches: half same, half different; mined pairs when given, else random."""

    def __init__(self, labels, batch_size: int, flip_new_class: bool = True, seed: int = 0, rows=None,
                 neg_codes=None, random_share: float = 0.0):
        super().__init__(labels, flip_new_class, seed, rows)
        if batch_size < 2 or batch_size % 2:
            raise DataError(f"pair batches need an even batch size ≥ 2, got {batch_size}.")
        if not 0.0 <= random_share < 1.0:
            raise DataError(f"random_share must lie in [0, 1), got {random_share}.")
        self.batch_size = int(batch_size)
        self.random_share = float(random_share)
        codes = self.codes if neg_codes is None else np.unique(np.asarray(neg_codes), return_inverse=True)[1]
        if len(codes) != self.n:
            raise DataError(f"neg_codes ({len(codes)}) and labels ({self.n}) differ in length.")
        self.neg_codes = codes.reshape(-1).astype(np.int64)
        self.n_neg_codes = int(self.neg_codes.max()) + 1
        self.mined: tuple[np.ndarray, ...] | None = None

    def virtual_neg_code(self, pos: np.ndarray, flip: np.ndarray) -> np.ndarray:
        """Equal codes: never a negative pair (same individual, or merged by a duplicate group)."""
        return self.neg_codes[pos] + np.where(flip, self.n_neg_codes, 0)

    def set_mined(self, neg_a, neg_b, pos_a, pos_b) -> None:
        """Use mined pairs (virtual image indices) from now on: negatives and positives.

        An empty kind (no negatives, or no positives) is filled with random pairs.
        """
        na, fa = self.split_virtual(neg_a)
        nb, fb = self.split_virtual(neg_b)
        pa, ga = self.split_virtual(pos_a)
        pb, gb = self.split_virtual(pos_b)
        if len(na) != len(nb) or len(pa) != len(pb):
            raise ValueError("mined pairs: both sides of a kind need the same number of indices")
        if (self.virtual_neg_code(na, fa) == self.virtual_neg_code(nb, fb)).any():
            raise ValueError("a mined negative pair shows the same virtual individual (or near-duplicates)")
        if (self.virtual_label(pa, ga) != self.virtual_label(pb, gb)).any():
            raise ValueError("a mined positive pair shows two different virtual individuals")
        self.mined = (na, nb, fa, fb, pa, pb, ga, gb)

    def clear_mined(self) -> None:
        self.mined = None

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.mined is not None:
            na, nb, fa, fb, pa, pb, ga, gb = self.mined
            state["mined"] = [self._virtual(na, fa), self._virtual(nb, fb),
                              self._virtual(pa, ga), self._virtual(pb, gb)]
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if state.get("mined") is not None:
            self.set_mined(*state["mined"])
        else:
            self.mined = None

    def _virtual(self, pos: np.ndarray, flip: np.ndarray) -> np.ndarray:
        return pos + np.where(flip, self.n, 0)

    def __len__(self) -> int:
        if self.mined is not None and len(self.mined[0]) and len(self.mined[4]):
            return max(1, -(-(len(self.mined[0]) + len(self.mined[4])) // self.batch_size))
        return max(1, -(-2 * self.n * (2 if self.flip_new_class else 1) // self.batch_size))

    def _flips(self, rng, size) -> np.ndarray:
        return rng.random(size) < 0.5 if self.flip_new_class else np.zeros(size, dtype=bool)

    def _random_same(self, rng, h):
        a = rng.integers(0, self.n, h)
        b = np.array([rng.choice(m) if len(m) == 1 else rng.choice(m[m != i])
                      for i, m in ((i, self.members[self.codes[i]]) for i in a)], dtype=np.int64)
        f = self._flips(rng, h)
        return a, b, f, f.copy()

    def _random_diff(self, rng, h):
        a, fa = rng.integers(0, self.n, h), self._flips(rng, h)
        b, fb = rng.integers(0, self.n, h), self._flips(rng, h)
        if self.n_neg_codes * (2 if self.flip_new_class else 1) < 2:
            raise DataError("different pairs need two virtual individuals; give more individuals.")
        while True:
            bad = self.virtual_neg_code(a, fa) == self.virtual_neg_code(b, fb)
            if not bad.any():
                return a, b, fa, fb
            b[bad], fb[bad] = rng.integers(0, self.n, bad.sum()), self._flips(rng, bad.sum())

    def __iter__(self) -> Iterator[PairBatch]:
        rng = self._rng()
        h = self.batch_size // 2
        if self.mined is not None:
            na, nb, fa, fb, pa, pb, ga, gb = self.mined
            neg, pos = _Cycle(len(na), rng), _Cycle(len(pa), rng)
        r = int(round(h * self.random_share)) if self.mined is not None else h  # random pairs per kind
        for _ in range(len(self)):
            if self.mined is not None and len(pa) and r < h:
                i = pos.take(h - r)
                same = _join((pa[i], pb[i], ga[i], gb[i]), self._random_same(rng, r) if r else None)
            else:
                same = self._random_same(rng, h)
            if self.mined is not None and len(na) and r < h:
                j = neg.take(h - r)
                diff = _join((na[j], nb[j], fa[j], fb[j]), self._random_diff(rng, r) if r else None)
            else:
                diff = self._random_diff(rng, h)
            a, b, f1, f2 = (np.concatenate([s, d]) for s, d in zip(same, diff))
            t = np.concatenate([np.ones(h, np.float32), np.zeros(h, np.float32)])
            order = rng.permutation(self.batch_size)
            yield PairBatch(self.rows[a[order]], f1[order], self.rows[b[order]], f2[order], t[order])


def _join(mined: tuple, random: tuple | None) -> tuple:
    """Mined pairs followed by random ones (the batch is shuffled afterwards)."""
    return mined if random is None else tuple(np.concatenate([m, x]) for m, x in zip(mined, random))


class _Cycle:
    """Indices 0..n-1 in shuffled passes, reshuffled whenever one pass runs out."""

    def __init__(self, n: int, rng: np.random.Generator):
        self.n, self.rng = n, rng
        self.queue = np.zeros(0, dtype=np.int64)

    def take(self, h: int) -> np.ndarray:
        while len(self.queue) < h:
            self.queue = np.concatenate([self.queue, self.rng.permutation(self.n)])
        out, self.queue = self.queue[:h], self.queue[h:]
        return out
