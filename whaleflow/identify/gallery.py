"""The catalogue a trained run identifies against: the run's own gallery plus enrolled photos.

Each trial's export wrote ``trials/<name>/gallery.npz``: every labelled train and val
photo (the gallery its test scores were computed against), with the vectors its family
compares, per view (``view0``; ``view1`` = the flipped photo, with flip TTA). Those files
are never changed. Photos confirmed later (``whaleflow enroll``) live in one file,
``RUN_DIR/gallery/enrolled.npz``: names, ids, paths, perceptual hashes, the prepared
pixels (for the review page) and, per trial, the same vectors. One file for every family
means one atomic replace per enrolment: no family can see a photo another does not.
Centroids (metric family) and k-NN sets (siamese, arcface) are computed from these
vectors at scoring time, as in training, so enrolling updates them by construction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import save_npz

ENROLLED = Path("gallery") / "enrolled.npz"
ENROLL_LOG = Path("gallery") / "enroll_log.csv"
_SEP = "__"


def _view_key(trial: str, flip: bool) -> str:
    return f"{trial}{_SEP}view{int(flip)}"


@dataclass
class TrialGallery:
    """What one trial scores a query against: image names, ids, vectors per view, origin."""

    images: np.ndarray
    ids: np.ndarray
    views: dict[bool, np.ndarray]
    enrolled: np.ndarray  # bool per photo: added by enroll (not in the run's training data)

    def labels(self) -> tuple[np.ndarray, np.ndarray]:
        """(class names sorted, class index of every photo), as ``labelled_gallery`` builds them."""
        classes = np.array(sorted(set(self.ids.tolist())))
        col = {c: i for i, c in enumerate(classes)}
        return classes, np.array([col[c] for c in self.ids], dtype=np.int64)


def load_trial_gallery(trial_dir: Path, views: tuple[bool, ...]) -> TrialGallery:
    path = trial_dir / "gallery.npz"
    if not path.is_file():
        raise DataError("the trial has no exported gallery (gallery.npz).", file=path,
                        fix="retrain the run with this whaleflow version (its export writes model.pt and gallery.npz).")
    with np.load(path, allow_pickle=False) as d:
        missing = [f"view{int(f)}" for f in views if f"view{int(f)}" not in d.files]
        if missing:
            raise DataError(f"gallery lacks {', '.join(missing)} (flip TTA changed since export).", file=path,
                            fix="keep predict.flip_tta as the run was trained.")
        images, ids = d["images"].astype(str), d["ids"].astype(str)
        vecs = {f: d[f"view{int(f)}"].astype(np.float32) for f in views}
    return TrialGallery(images, ids, vecs, np.zeros(len(images), bool))


@dataclass
class Enrolled:
    """Photos added by ``enroll``; ``vectors[trial][flip]`` is (n, D) per trial and view."""

    images: np.ndarray = field(default_factory=lambda: np.zeros(0, str))
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, str))
    paths: np.ndarray = field(default_factory=lambda: np.zeros(0, str))
    hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, str))
    sizes: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # (width, height)
    pixels: np.ndarray | None = None
    vectors: dict[str, dict[bool, np.ndarray]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def load(cls, run_dir: str | Path) -> "Enrolled":
        path = Path(run_dir) / ENROLLED
        if not path.is_file():
            return cls()
        try:
            with np.load(path, allow_pickle=False) as d:
                arrays = {k: d[k] for k in d.files}
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read the enrolled gallery ({exc}).", file=path,
                            fix="restore it from a backup, or delete it to forget every enrolment.") from None
        vectors: dict[str, dict[bool, np.ndarray]] = {}
        for key, arr in arrays.items():
            if _SEP in key:
                trial, view = key.rsplit(_SEP, 1)
                vectors.setdefault(trial, {})[view == "view1"] = arr.astype(np.float32)
        return cls(arrays["images"].astype(str), arrays["ids"].astype(str), arrays["paths"].astype(str),
                   arrays["hashes"].astype(str), arrays["sizes"].astype(np.int64), arrays["pixels"], vectors)

    def save(self, run_dir: str | Path) -> Path:
        """Write every enrolled photo and vector in one atomic replace."""
        arrays = {"images": self.images.astype(str), "ids": self.ids.astype(str), "paths": self.paths.astype(str),
                  "hashes": self.hashes.astype(str), "sizes": self.sizes.astype(np.int64), "pixels": self.pixels}
        for trial, views in self.vectors.items():
            for flip, arr in views.items():
                arrays[_view_key(trial, flip)] = arr.astype(np.float32)
        return save_npz(Path(run_dir) / ENROLLED, **arrays)

    def extended(self, images, ids, paths, hashes, sizes, pixels, vectors) -> "Enrolled":
        """A new :class:`Enrolled` with these photos appended (self is unchanged)."""
        px = pixels if self.pixels is None or not len(self) else np.concatenate([self.pixels, pixels])
        merged: dict[str, dict[bool, np.ndarray]] = {}
        for trial, views in vectors.items():
            old = self.vectors.get(trial, {})
            merged[trial] = {f: (np.concatenate([old[f], v]) if f in old and len(self) else v) for f, v in views.items()}
        return Enrolled(np.concatenate([self.images, np.asarray(images, str)]),
                        np.concatenate([self.ids, np.asarray(ids, str)]),
                        np.concatenate([self.paths, np.asarray(paths, str)]),
                        np.concatenate([self.hashes, np.asarray(hashes, str)]),
                        np.concatenate([self.sizes, np.asarray(sizes, np.int64).reshape(-1, 2)]), px, merged)

    def for_trial(self, trial: str, base: TrialGallery) -> TrialGallery:
        """``base`` followed by the enrolled photos (the run's own photos keep their order)."""
        if not len(self):
            return base
        mine = self.vectors.get(trial)
        if mine is None or any(f not in mine for f in base.views):
            raise DataError(f"the enrolled gallery has no vectors for trial {trial!r}.", file=ENROLLED,
                            fix="the run's trials changed since enrolling: delete gallery/ and enroll again.")
        views = {f: np.concatenate([base.views[f], mine[f]]) for f in base.views}
        return TrialGallery(np.concatenate([base.images, self.images]), np.concatenate([base.ids, self.ids]), views,
                            np.concatenate([base.enrolled, np.ones(len(self), bool)]))
