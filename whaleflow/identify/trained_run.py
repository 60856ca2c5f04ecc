"""A finished run folder, opened for identification: its models, galleries and tuned blend.

What it reads (nothing is trained, no Ray, no ``prepared/``, ``tune/`` or checkpoints):

* ``config.yaml`` (the resolved config: image cache sizes, boxes margin, grey, flip TTA,
  new_whale rules) and ``photos.csv`` (the run's photos: crop boxes and hashes for the
  near-duplicate shortcut, local-feature verification and the review page;
  :mod:`whaleflow.data.run_photos`);
* per trial ``model.pt`` (weights, read with ``torch.load(weights_only=True)``, the image
  size they were validated at, the training classes, the trial's model config) and
  ``gallery.npz``;
* ``trials/classifier/model.pt`` and the trials' ``embeddings.npz`` (the classifier on
  embeddings and the per-block scaling it was fitted with);
* ``ensemble/weights.json``: which models, their weights, score normalisers and the
  new_whale threshold.

Each family model is its networks alone (:meth:`~whaleflow.families.base.FamilyTask.for_inference`:
no split, sampler, optimiser or miner) with the exported weights, so scoring a new photo runs
the same code (:meth:`~whaleflow.families.base.FamilyTask.score_views`) that wrote the run's
validation and test scores.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Config, ModelConfig, cache_sizes, from_dict, load_config
from ..data.dataset import CachedImages
from ..data.run_photos import RUN_PHOTOS, read_run_photos
from ..engine.checkpoint import CheckpointError, load_checkpoint
from ..ensemble.classifier_model import CLASSIFIER_NAME, embedding_scaling, known_classes
from ..ensemble.fitted_blend import WEIGHTS_FILE, FittedBlend
from ..ensemble.normalize import ScoreNormalizer
from ..errors import DataError
from ..local.gallery_matcher import GalleryMatcher
from ..local.local_trial import LOCAL_NAME
from ..final_fit import final_dir
from ..storage import NOT_MIRRORED, RunStore, is_uri
from .gallery import Enrolled, TrialGallery, load_trial_gallery

#: the name of a validated trial loaded beside its final fit, for the classifier's embeddings
VALIDATED_PREFIX = "validated/"
#: run folders a bucket's mirror leaves out: identify reads nothing in them
_NOT_READ = ("prepared", "tune")
_FIX_EXPORT = "identify needs a run trained and blended by this whaleflow version (whaleflow run …)."


@dataclass
class FamilyModel:
    """One trial: its family's networks with the exported weights, and its gallery."""

    name: str
    family: str
    task: object
    base_gallery: TrialGallery   # the run's own photos (trials/<name>/gallery.npz)
    gallery: TrialGallery        # what it scores against: the run's photos, then the enrolled ones

    @property
    def views(self) -> tuple[bool, ...]:
        return self.task.views

    def vectors(self, pixels: np.ndarray, by_size: dict | None = None) -> dict[bool, np.ndarray]:
        """Query vectors per view of prepared photos (n, H, W), as cache rows are embedded;
        ``by_size`` (:attr:`~whaleflow.identify.photos.Photos.by_size`): the photos at each cache
        size, of which the model reads the one its stage size reads in the run."""
        from ..data.dataset import pick_cache

        self.task.images_eval = CachedImages(pick_cache(by_size, self.task.size) if by_size else pixels, augment=None)
        return self.task.row_views(np.arange(len(pixels), dtype=np.int64))

    def class_scores(self, q: dict[bool, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        classes, labels = self.gallery.labels()
        return np.asarray(self.task.score_views(q, self.gallery.views, labels, classes), np.float32), classes

    def embedding(self, q: dict[bool, np.ndarray]) -> np.ndarray:
        """What ``embeddings.npz`` holds for these photos (views side by side)."""
        return np.concatenate([self.task.embedding_from(q[f]) for f in self.views], axis=1)

    def image_scores(self, q: dict[bool, np.ndarray]) -> np.ndarray:
        return np.asarray(self.task.image_scores(q, self.gallery.views), np.float32)


@dataclass
class ClassifierModel:
    """Approach 3: the fitted classifier, the trials it reads and their block scaling."""

    model: object
    sources: list[str]
    scaling: list[tuple[np.ndarray, float]]
    classes: np.ndarray
    inputs: list[str] | None = None    # the family model giving each source's embedding (default: its name)

    def input_of(self, source: str) -> str:
        return self.inputs[self.sources.index(source)] if self.inputs else source

    def class_scores(self, embeddings: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        blocks = [(embeddings[s] - mean) / div for s, (mean, div) in zip(self.sources, self.scaling)]
        return self.model.predict_scores(np.concatenate(blocks, axis=1)), self.classes


@dataclass
class TrainedRun:
    run_dir: Path
    cfg: Config
    photos: pd.DataFrame                   # the run's photos (photos.csv): paths, crop boxes, hashes
    families: list[FamilyModel]
    classifier: ClassifierModel | None
    names: list[str]                       # blended models, in weights.json order
    weights: dict[str, float]
    normalizers: dict[str, ScoreNormalizer]
    threshold: float
    enrolled: Enrolled
    store: RunStore | None = None          # the bucket the run came from (enroll pushes its gallery there)
    local: object | None = None            # whaleflow.local.GalleryMatcher when the blend verifies local features

    @property
    def blend(self) -> FittedBlend:
        """The run's fitted blend (test side) as these fields hold it now: what new photos are
        predicted with (:meth:`FittedBlend.predict`, the ensemble's own predict)."""
        return FittedBlend(list(self.names), self.weights, self.normalizers, self.threshold)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) every photo is letterboxed to: the run's largest image cache."""
        return self.sizes[0]

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """Every image cache size ``prepare`` built for the run, largest first (one per distinct
        stage size, :func:`~whaleflow.config.cache_sizes` of the run's resolved config)."""
        return [tuple(int(v) for v in s) for s in cache_sizes(self.cfg)]

    def family(self, name: str) -> FamilyModel:
        return next(f for f in self.families if f.name == name)

    def use_enrolled(self, enrolled: Enrolled) -> None:
        """Score against the run's photos plus ``enrolled`` from now on."""
        self.enrolled = enrolled
        for f in self.families:
            f.gallery = enrolled.for_trial(f.name, f.base_gallery)


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise DataError(f"no {what}.", file=path, fix=_FIX_EXPORT)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{what} is not valid JSON ({exc}).", file=path, fix=_FIX_EXPORT) from None


def _load_family(cfg: Config, trial_dir: Path, enrolled: Enrolled) -> FamilyModel:
    """The trial's family networks (:meth:`~whaleflow.families.base.FamilyTask.for_inference`) with
    the weights, image size and training classes of its ``model.pt``, and its ``gallery.npz``."""
    from .. import families  # noqa: F401  (registers the families)
    from ..registry import FAMILIES

    path = trial_dir / "model.pt"
    if not path.is_file():
        raise DataError("the run folder has no exported model for this trial (model.pt).", file=path, fix=_FIX_EXPORT)
    try:
        exported = load_checkpoint(path)
    except CheckpointError as exc:
        raise DataError(str(exc)) from None
    if exported.get("format") != "whaleflow.exported_model/1":
        raise DataError("not a whaleflow exported model.", file=path, fix=_FIX_EXPORT)
    model_cfg = from_dict(ModelConfig, exported["model_config"], where=str(path))
    task = FAMILIES.get(model_cfg.family).for_inference(model_cfg, [str(c) for c in exported["classes"]],
                                                        cfg.predict, device=cfg.train.device)
    task.load_inference_state(exported["model"])
    task.size = tuple(exported["size"])
    base = load_trial_gallery(trial_dir, task.views)
    return FamilyModel(trial_dir.name, model_cfg.family, task, base, enrolled.for_trial(trial_dir.name, base))


def _load_classifier(trial_dir: Path, run_dir: Path) -> ClassifierModel:
    from ..classify.embedding_classifier import EmbeddingClassifier

    result = _read_json(trial_dir / "result.json", "classifier result")
    sources = list(result.get("sources", []))
    paths = [run_dir / "trials" / s / "embeddings.npz" for s in sources]
    missing = [p for p in paths if not p.is_file()]
    if missing or not (trial_dir / "model.pt").is_file():
        raise DataError("the classifier's model or source embeddings are missing.",
                        file=missing[0] if missing else trial_dir / "model.pt", fix=_FIX_EXPORT)
    model = EmbeddingClassifier.load(trial_dir / "model.pt")
    # the test fit's classes: every catalogue individual of train + val, held-out ones included
    scaling, roles, catalog_ids = embedding_scaling(paths)
    return ClassifierModel(model, sources, scaling, known_classes(catalog_ids, (roles == "train") | (roles == "val")))


def _run_folder(run_dir: str | Path) -> tuple[Path, RunStore | None]:
    """The run folder on this machine: ``run_dir``, or for a bucket this node's mirror of what
    identify reads (checkpoints, ``prepared/`` and ``tune/`` left in the bucket)."""
    store = None
    if is_uri(run_dir):
        store = RunStore(str(run_dir))
        store.check()
        if not store.exists("config.yaml"):
            raise DataError("not a run folder (no config.yaml).", file=run_dir, fix="pass the output.dir of a finished run.")
        store.pull("", exclude=NOT_MIRRORED + _NOT_READ, delete=True)  # the bucket's enrolments, not a stale mirror's
        if not store.exists(RUN_PHOTOS) and store.exists("prepared/summary.json"):
            store.pull("prepared", exclude=("cache",))  # a run prepared before photos.csv: made from these files
        run_dir = store.local
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError("no such run folder.", file=run_dir, fix="pass the output.dir of a finished run.")
    if not (run_dir / "config.yaml").is_file():
        raise DataError("not a run folder (no config.yaml).", file=run_dir, fix="pass the output.dir of a finished run.")
    return run_dir, store


def load_run(run_dir: str | Path, *, device: str = "auto") -> TrainedRun:
    """Open ``run_dir`` for :func:`~whaleflow.identify.identify` and :func:`~whaleflow.identify.enroll`.

    ``device``: ``auto`` (a GPU when one is visible), ``cpu`` or ``cuda``. Errors name the
    missing file in one line.
    """
    run_dir, store = _run_folder(run_dir)
    cfg = load_config(run_dir / "config.yaml")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, device=device),
                              output=dataclasses.replace(cfg.output, quiet=True))
    fitted = FittedBlend.load(run_dir, side="test", fix=_FIX_EXPORT)
    names = fitted.names
    photos = read_run_photos(run_dir)
    enrolled = Enrolled.load(run_dir)
    # under train.final_fit the blend's test scores came from the final fits (train + val):
    # new photos are scored by those models, with the normalisers and threshold of the test side
    final = set(fitted.final_fit)
    families = [_load_family(cfg, final_dir(run_dir, n) if n in final else run_dir / "trials" / n, enrolled)
                for n in names if n not in (CLASSIFIER_NAME, LOCAL_NAME)]
    if not families:
        raise DataError("the blend holds no trained family model.", file=run_dir / WEIGHTS_FILE, fix=_FIX_EXPORT)
    classifier = None
    if CLASSIFIER_NAME in names:
        classifier = _load_classifier(run_dir / "trials" / CLASSIFIER_NAME, run_dir)
        for s in classifier.sources:  # the classifier reads the validated trials' embeddings
            if s in names and s not in final:
                continue
            extra = _load_family(cfg, run_dir / "trials" / s, enrolled)
            if s in final:
                extra = dataclasses.replace(extra, name=VALIDATED_PREFIX + s)
            families.append(extra)  # a source with blend weight left out still feeds the classifier
        classifier.inputs = [VALIDATED_PREFIX + s if s in final else s for s in classifier.sources]
    return TrainedRun(run_dir, cfg, photos, families, classifier, names, fitted.weights, fitted.normalizers,
                      fitted.threshold, enrolled, store,
                      _local_matcher(cfg, run_dir, photos) if LOCAL_NAME in names else None)


def _local_matcher(cfg: Config, run_dir: Path, photos: pd.DataFrame) -> GalleryMatcher:
    """The local-feature matcher with the settings the blend's local scores were made with."""
    res = run_dir / "trials" / LOCAL_NAME / "result.json"
    if not res.is_file():
        raise DataError("the blend verifies local features but their result is missing.", file=res,
                        fix="rerun `whaleflow ensemble` for this run.")
    return GalleryMatcher(cfg, photos, json.loads(res.read_text()).get("settings"))
