"""``PerModelASHA``: early stopping where samples of the same model compete, never across models.

One experiment trains different models side by side, and they are all wanted in the
ensemble: a siamese net that starts slowly must not be stopped because a metric net
is ahead at epoch 3. So each model gets its own ASHA (``AsyncHyperBandScheduler``)
over its own samples, with ``max_t`` = that model's epochs. ``stop_last_trials`` is
off: a trial that reaches its last epoch still has to export its artifacts.
"""
from __future__ import annotations

import pickle

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler


class PerModelASHA(FIFOScheduler):
    def __init__(self, epochs: dict[str, int], *, reduction_factor: float = 3, grace_fraction: float = 0.25):
        super().__init__()
        self.epochs = dict(epochs)
        self.reduction_factor = reduction_factor
        self.grace_fraction = grace_fraction
        self._metric: str | None = None
        self._mode: str | None = None
        self._subs: dict[str, AsyncHyperBandScheduler] = {}

    def set_search_properties(self, metric, mode, **spec) -> bool:
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        return True

    def _sub(self, trial) -> AsyncHyperBandScheduler:
        model = trial.config["variant"]["model"]
        if model not in self._subs:
            max_t = max(1, int(self.epochs.get(model, 1)))
            self._subs[model] = AsyncHyperBandScheduler(
                time_attr="training_iteration", metric=self._metric, mode=self._mode, max_t=max_t,
                grace_period=max(1, int(max_t * self.grace_fraction)), reduction_factor=self.reduction_factor,
                stop_last_trials=False,
            )
        return self._subs[model]

    def on_trial_add(self, tune_controller, trial) -> None:
        self._sub(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result) -> str:
        if result.get("finished"):  # the trainable's closing report, after export
            return TrialScheduler.CONTINUE
        sub = self._sub(trial)
        if trial.trial_id not in sub._trial_info:  # a trial restored by --resume
            sub.on_trial_add(tune_controller, trial)
        return sub.on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result) -> None:
        sub = self._sub(trial)
        if trial.trial_id in sub._trial_info:
            sub.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        sub = self._sub(trial)
        if trial.trial_id in sub._trial_info:
            sub.on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "PerModelASHA: " + "; ".join(f"{m}: {s.debug_string()}" for m, s in self._subs.items())

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as fh:
            pickle.dump(self.__dict__.copy(), fh)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            self.__dict__.update(pickle.load(fh))
