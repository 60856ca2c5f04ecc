"""Class scores stored as each query's top-K classes: the artifact format above a class count.

Dense scores are ``queries × classes`` float32: at Happywhale scale (27,956 test
queries × 15,587 individuals) that is 1.7 GB per trial, and an ensemble of nine
trials held tens of GB. MAP@5 and the new_whale threshold only ever look at each
query's best five classes, and a blend of M models at its best ``M·K`` candidates,
so above ``predict.store_topk_above`` classes a trial keeps only each query's top
``predict.store_topk`` (100) classes: ids as int32, scores as float16 (ranking and
thresholds need ~3 digits; probabilities are stored as their logits, since float16 has
no resolution left next to 1), plus per query ``rest``, the best score it did *not* keep
(an upper bound of every class left out; what an ensemble assumes for them), and the
range of the dense matrix (``value_range``: whether it was probability-like, which
the ensemble's normaliser needs to know). 27,956 × 100 × 6 bytes = 17 MB.

The file is an ``.npz`` like :class:`ClassScores`' but with ``topk_ids``,
``topk_values`` and ``rest`` instead of ``scores``; :func:`load_class_scores` reads
either. Rows are written in chunks, so the dense matrix is never copied whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import save_npz
from .class_scores import ClassScores

_CHUNK = 4096


@dataclass
class TopKScores:
    ids: np.ndarray             # (n, K) int32 class index into ``classes``, best first
    values: np.ndarray          # (n, K) float32 in memory (float16 on disk), descending
    rest: np.ndarray            # (n,) the best score not kept (−inf when every class is kept)
    images: np.ndarray          # (n,) str
    classes: np.ndarray         # (C,) str
    truth: np.ndarray | None = None
    value_range: tuple[float, float] = (0.0, 0.0)  # min and max of the dense matrix

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])

    @classmethod
    def from_dense(cls, cs: ClassScores, k: int) -> "TopKScores":
        """Keep each row's ``k`` best classes of a dense :class:`ClassScores` (chunked)."""
        s = cs.scores
        n, c = s.shape
        k = max(1, min(int(k), c))
        ids = np.empty((n, k), np.int32)
        vals = np.empty((n, k), np.float32)
        rest = np.full(n, -np.inf, np.float32)
        lo, hi = np.inf, -np.inf
        for a in range(0, n, _CHUNK):
            blk = np.asarray(s[a : a + _CHUNK], dtype=np.float32)
            lo, hi = min(lo, float(blk.min())), max(hi, float(blk.max()))
            kk = min(k + 1, c)
            part = np.argpartition(-blk, kk - 1, axis=1)[:, :kk]
            v = np.take_along_axis(blk, part, axis=1)
            order = np.argsort(-v, axis=1, kind="stable")
            part, v = np.take_along_axis(part, order, 1), np.take_along_axis(v, order, 1)
            ids[a : a + _CHUNK], vals[a : a + _CHUNK] = part[:, :k], v[:, :k]
            if kk > k:
                rest[a : a + _CHUNK] = v[:, k]
        rng = (lo, hi) if n else (0.0, 0.0)
        return cls(ids, vals, rest, np.asarray(cs.images), np.asarray(cs.classes), cs.truth, rng)

    @property
    def probability_like(self) -> bool:
        return bool(self.value_range[0] >= 0.0 and self.value_range[1] <= 1.0)

    def save(self, path: str | Path) -> Path:
        """float16 on disk; probabilities as their logits (float16 has no digits left next
        to 1, where sigmoid outputs pile up), turned back on load."""
        enc = _logit if self.probability_like else (lambda x: x)
        arrays = dict(topk_ids=self.ids.astype(np.int32), topk_values=enc(self.values).astype(np.float16),
                      rest=enc(self.rest).astype(np.float16), images=self.images.astype(str),
                      classes=self.classes.astype(str), value_range=np.asarray(self.value_range, np.float64))
        if self.truth is not None:
            arrays["truth"] = np.asarray(self.truth).astype(str)
        return save_npz(path, **arrays)

    def row_order(self, images: np.ndarray) -> np.ndarray:
        """Row index of each of ``images`` (all must be present)."""
        row = {im: i for i, im in enumerate(self.images)}
        missing = [im for im in images if im not in row]
        if missing:
            raise ValueError(f"scores lack {len(missing)} images, e.g. {missing[:3]}")
        return np.array([row[im] for im in images], dtype=np.int64)

    def class_map(self, classes: np.ndarray) -> np.ndarray:
        """Index of each of this file's classes in ``classes`` (−1 where absent)."""
        col = {c: i for i, c in enumerate(np.asarray(classes))}
        return np.array([col.get(c, -1) for c in self.classes], dtype=np.int64)

    @classmethod
    def concat(cls, parts: "list[TopKScores]", truth=None) -> "TopKScores":
        """Row blocks of one split (same classes and K) as one."""
        lo = min(p.value_range[0] for p in parts)
        hi = max(p.value_range[1] for p in parts)
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        return cls(cat("ids"), cat("values"), cat("rest"), cat("images"), parts[0].classes, truth, (lo, hi))

    def truth_columns(self) -> np.ndarray:
        """Validation truth as a column of ``values``: -1 new_whale, -2 not kept (or unknown)."""
        from .topk import truth_indices

        t = truth_indices(np.asarray(self.truth), self.classes)
        hit = (self.ids == t[:, None]) & (t[:, None] >= 0)
        return np.where(hit.any(axis=1), hit.argmax(axis=1), np.where(t == -1, -1, -2)).astype(np.int64)

    def dense(self) -> ClassScores:
        """A dense matrix (left-out classes at ``rest``): for small sets and tests."""
        c = len(self.classes)
        out = np.repeat(self.rest.astype(np.float32)[:, None], c, axis=1)
        fill = np.where(np.isfinite(out), out, self.values.astype(np.float32).min(axis=1, keepdims=True) - 1.0)
        np.put_along_axis(fill, self.ids.astype(np.int64), self.values.astype(np.float32), axis=1)
        return ClassScores(fill, self.images, self.classes, self.truth)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


def load_class_scores(path: str | Path) -> ClassScores | TopKScores:
    """A trial's ``scores_{val,test}.npz``, dense or top-K, as it was written."""
    with np.load(path, allow_pickle=False) as data:
        truth = data["truth"] if "truth" in data.files else None
        if "topk_ids" in data.files:
            lo, hi = (float(x) for x in data["value_range"])
            dec = _sigmoid if (lo >= 0.0 and hi <= 1.0) else (lambda x: x)
            values = dec(data["topk_values"].astype(np.float32))
            rest = dec(data["rest"].astype(np.float32))
            return TopKScores(data["topk_ids"], values, rest, data["images"], data["classes"], truth, (lo, hi))
        return ClassScores(scores=data["scores"], images=data["images"], classes=data["classes"], truth=truth)


def store_class_scores(cs: ClassScores, path: str | Path, *, topk: int = 100, above: int = 2000) -> Path:
    """Write ``cs`` dense, or as top-``topk`` when it has more than ``above`` classes."""
    if above is not None and len(cs.classes) > int(above) and int(topk) < len(cs.classes):
        return TopKScores.from_dense(cs, topk).save(path)
    return cs.save(path)
