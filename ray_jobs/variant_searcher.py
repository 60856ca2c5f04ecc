"""``VariantSearcher``: one seeded Optuna study per model variant, inside one Tune experiment.

Optuna searches one space per study, but a whaleflow experiment trains several
models, each with its own dimensions (a siamese net's mining interval means nothing
to a metric net). So this searcher keeps one ``OptunaSearch`` per variant (a model,
or a model at one point of its ``grid_search`` keys) and hands out trials round-robin
until every variant has had ``num_samples``; results go back to the study that
suggested them. Studies live in one Optuna storage object (an SQLite file in the run
folder), so a rerun continues them; Tune saves and restores the searcher itself on
``--resume``. A new study's first trial is the config's own recipe (``points_to_evaluate``)
when its values lie in the searched ranges: with ``num_samples: 1`` the recipe is what trains.
"""
from __future__ import annotations

import pickle
from typing import Any

from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch


class VariantSearcher(Searcher):
    """``VariantSearcher(variants, num_samples=2, metric="val_map5", mode="max", seed=0, storage_url=...)``.

    ``variants``: from :func:`ray_jobs.search_space.expanded_variants` —
    ``{"model", "constants", "domains"}`` per variant.
    """

    def __init__(self, variants: list[dict], num_samples: int, *, metric: str, mode: str, seed: int = 0,
                 storage_url: str | None = None, study_prefix: str = "whaleflow"):
        super().__init__(metric=metric, mode=mode)
        if num_samples < 1:
            raise ValueError("num_samples must be ≥ 1")
        self.variants = variants
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.storage_url = storage_url
        self.study_prefix = study_prefix
        self._studies: dict[int, OptunaSearch] = {}
        self._issued = [0] * len(variants)
        self._owner: dict[str, int] = {}

    @property
    def total(self) -> int:
        return len(self.variants) * self.num_samples

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        # The space lives in ``variants``; Tune's param_space is empty by design.
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        return True

    def _study(self, i: int) -> OptunaSearch | None:
        v = self.variants[i]
        if not v["domains"]:
            return None
        if i not in self._studies:
            storage = None
            constants = "-".join(f"{k}={v['constants'][k]}" for k in sorted(v["constants"]))
            name = f"{self.study_prefix}:{v['model']}" + (f":{constants}" if constants else "")
            fresh = True
            if self.storage_url:
                import optuna

                storage = optuna.storages.RDBStorage(self.storage_url)
                fresh = name not in optuna.get_all_study_names(storage)  # a rerun continues its study
            recipe = v.get("recipe")
            self._studies[i] = OptunaSearch(
                space=OptunaSearch.convert_search_space(v["domains"]),
                metric=self.metric,
                mode=self.mode,
                seed=self.seed + i,
                study_name=name,
                storage=storage,
                points_to_evaluate=[dict(recipe)] if recipe and fresh else None,
            )
        return self._studies[i]

    def suggest(self, trial_id: str) -> dict | None:
        left = [i for i, n in enumerate(self._issued) if n < self.num_samples]
        if not left:
            return Searcher.FINISHED
        i = min(left, key=lambda j: (self._issued[j], j))  # round-robin over variants
        study = self._study(i)
        params = dict(study.suggest(trial_id) or {}) if study is not None else {}
        self._issued[i] += 1
        self._owner[trial_id] = i
        v = self.variants[i]
        return {"variant": {"model": v["model"], "params": {**v["constants"], **params}}}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        study = self._for(trial_id)
        if study is not None and self.metric in result and "training_iteration" in result:
            study.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        study = self._for(trial_id)
        if study is not None:
            study.on_trial_complete(trial_id, result=result, error=error)

    def _for(self, trial_id: str) -> OptunaSearch | None:
        i = self._owner.get(trial_id)
        return None if i is None else self._studies.get(i)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as fh:
            pickle.dump(self.__dict__.copy(), fh)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            state: dict[str, Any] = pickle.load(fh)
        self.__dict__.update(state)
