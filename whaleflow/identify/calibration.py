"""How sure is sure: a calibrated probability that a photo's top candidate is right.

Two steps, both fitted on the run's validation queries (blended, normalised scores,
the new-individual threshold as one more outcome):

1. **Posterior over outcomes.** A photo's scores ``s`` (one per individual) and the
   threshold ``t`` (the score of "new individual") become log-probabilities
   ``log softmax([s, t] / T)``. The ranking is exactly the run's (new first iff the
   best score is below ``t``), so nothing about the decision changes; the
   temperature ``T`` is the maximum-likelihood one on validation. These per-photo
   log-probabilities are what an encounter sums (:mod:`.encounters`).
2. **Isotonic correction.** The top outcome's posterior is only a score; whether the
   top candidate is right (the true individual, or truly new when "new" is on top)
   is regressed on it by pool-adjacent-violators, separately for the two kinds of
   decision (on the demo-sized held-out run, a high posterior of "new" did not mean a
   truly new query more often, while a high posterior of an individual did). Each pooled block's rate is the
   Beta(1, 1) posterior mean ``(k + 1) / (n + 2)`` — a block of 30 right answers out
   of 30 says 0.97, not 1.0, so a small validation set cannot promise a 1 % error —
   and a second weighted PAV pass keeps the smoothed steps monotone. ``p_correct`` is
   the step at a photo's posterior (between blocks, the lower one).

:func:`wilson` is the interval in which the observed false-match rate of the
auto-accepted photos is stated (:mod:`.run_calibration` checks it on outer folds).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

__all__ = ["Calibration", "IsotonicSteps", "accepts", "fit_isotonic", "fit_temperature", "fit_top_steps",
           "outcome_logprobs", "pav", "reliability", "top_steps_p", "wilson"]

TIE = 1e-12  # pooled means are float averages: equal rates may differ in the last bit


def accepts(p_correct, rate: float) -> np.ndarray:
    """Whether a calibrated ``p_correct`` meets a false-match rate: ``1 - p <= rate``, up to
    float rounding (99 right of 99 + 1 shrunk is exactly 0.99, and 1 - 0.99 > 0.01 in floats).
    NaN (no calibration) never does."""
    p = np.asarray(p_correct, float)
    return np.nan_to_num(1 - p, nan=np.inf) <= rate + 1e-9


def pav(y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool adjacent violators on ``y`` (already in feature order) with weights ``w``:
    (block start indices, block means, block weights); means strictly increase.

    Neighbours with *equal* means are pooled too (maximal blocks): a run of right answers
    must become one block of n, whose shrunk rate (n + 1) / (n + 2) can reach 0.99, not n
    blocks of one at 2/3 each — without that no false-match rate under 1/3 is ever statable."""
    starts, means, weights = [], [], []
    for i, (v, wi) in enumerate(zip(np.asarray(y, float), np.asarray(w, float))):
        starts.append(i)
        means.append(v)
        weights.append(wi)
        while len(means) > 1 and means[-2] >= means[-1] - TIE:  # a violation (or a tie): pool the last two blocks
            wsum = weights[-2] + weights[-1]
            means[-2] = (means[-2] * weights[-2] + means[-1] * weights[-1]) / wsum
            weights[-2] = wsum
            del starts[-1], means[-1], weights[-1]
    return np.array(starts, np.int64), np.array(means), np.array(weights)


@dataclass
class IsotonicSteps:
    """A non-decreasing step function: ``values[j]`` from ``edges[j]`` (the lowest feature of
    block j) on; ``counts[j]`` photos and ``right[j]`` right answers fell in block j."""

    edges: np.ndarray
    values: np.ndarray
    counts: np.ndarray
    right: np.ndarray

    def __call__(self, x) -> np.ndarray:
        j = np.searchsorted(self.edges, np.asarray(x, float), side="right") - 1
        return self.values[np.clip(j, 0, len(self.values) - 1)]

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("edges", "values", "counts", "right")}

    @classmethod
    def from_dict(cls, d: dict) -> "IsotonicSteps":
        return cls(np.asarray(d["edges"], float), np.asarray(d["values"], float),
                   np.asarray(d["counts"], float), np.asarray(d["right"], float))


def fit_isotonic(feature: np.ndarray, correct: np.ndarray) -> IsotonicSteps:
    """P(right | feature), non-decreasing in the feature, each block shrunk to (k+1)/(n+2)
    (see the module docstring). Equal features always share a block."""
    feature, correct = np.asarray(feature, float), np.asarray(correct, float)
    if not len(feature):
        raise ValueError("no validation queries to calibrate on")
    order = np.argsort(feature, kind="stable")
    x, y = feature[order], correct[order]
    ux, first, n = np.unique(x, return_index=True, return_counts=True)
    k = np.add.reduceat(y, first)
    starts, _, _ = pav(k / n, n)              # blocks of distinct feature values
    bn = np.add.reduceat(n, starts).astype(float)
    bk = np.add.reduceat(k, starts)
    smooth = (bk + 1) / (bn + 2)
    s2, vals, _ = pav(smooth, bn + 2)         # the shrunk rates may dip: make them monotone again
    edges = ux[starts][s2]
    return IsotonicSteps(edges, vals, np.add.reduceat(bn, s2), np.add.reduceat(bk, s2))


def outcome_logprobs(scores: np.ndarray, threshold: float, temperature: float) -> np.ndarray:
    """(n, C + 1) log-probabilities of each individual and, last, of "new individual"."""
    z = np.concatenate([np.asarray(scores, np.float64), np.full((len(scores), 1), float(threshold))], axis=1)
    z = z / temperature
    return z - logsumexp(z, axis=1, keepdims=True)


def _nll(logp: np.ndarray, target: np.ndarray) -> float:
    return float(-logp[np.arange(len(target)), target].mean())


def _targets(truth_idx: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Outcome column per query (new → the last) and which queries have one (a truth outside
    a top-K candidate list has none)."""
    truth_idx = np.asarray(truth_idx, np.int64)
    keep = truth_idx >= -1
    return np.where(truth_idx == -1, n_classes, truth_idx)[keep], keep


def fit_temperature(scores: np.ndarray, truth_idx: np.ndarray, threshold: float) -> float:
    """The temperature of maximum validation likelihood (searched on log T in [e^-7, e^4])."""
    target, keep = _targets(truth_idx, scores.shape[1])
    s = np.asarray(scores, np.float64)[keep]
    if not len(s):
        return 1.0
    res = minimize_scalar(lambda lt: _nll(outcome_logprobs(s, threshold, np.exp(lt)), target),
                          bounds=(-7.0, 4.0), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def top_right(scores: np.ndarray, truth_idx: np.ndarray, threshold: float) -> np.ndarray:
    """Whether each query's top outcome is right: its best individual is the truth when that
    beats the threshold, else the query is truly new."""
    s = np.asarray(scores)
    new_first = s.max(axis=1) < threshold if s.shape[1] else np.ones(len(s), bool)
    best = s.argmax(axis=1) if s.shape[1] else np.zeros(len(s), np.int64)
    truth_idx = np.asarray(truth_idx)
    return np.where(new_first, truth_idx == -1, best == truth_idx)


def fit_top_steps(logp: np.ndarray, right: np.ndarray) -> tuple[IsotonicSteps, IsotonicSteps | None]:
    """The isotonic steps of "the top outcome is right" on the top outcome's probability, one
    fit where a known individual is on top and one where "new individual" (the last column)
    is (None when it never is). Photos and encounters are calibrated alike."""
    logp, right = np.atleast_2d(logp), np.asarray(right, bool)
    top, new = np.exp(logp.max(axis=1)), logp.argmax(axis=1) == logp.shape[1] - 1
    known = fit_isotonic(top[~new], right[~new]) if (~new).any() else fit_isotonic(top, right)
    return known, fit_isotonic(top[new], right[new]) if new.any() else None


def top_steps_p(steps: IsotonicSteps, steps_new: IsotonicSteps | None, logp: np.ndarray) -> np.ndarray:
    """P(top outcome right) of each row of outcome log-probabilities, from :func:`fit_top_steps`'s steps."""
    logp = np.atleast_2d(logp)
    top = np.exp(np.max(logp, axis=1))
    p = steps(top)
    if steps_new is not None:
        p = np.where(logp.argmax(axis=1) == logp.shape[1] - 1, steps_new(top), p)
    return p


@dataclass
class Calibration:
    """A run's calibration: the temperature and the isotonic steps, one set per kind of
    decision — a known individual on top (``steps``) or "new individual" on top
    (``steps_new``): the same posterior means different things for the two (see the
    module docstring)."""

    temperature: float
    steps: IsotonicSteps
    steps_new: IsotonicSteps | None = None
    new_share: float | None = None     # share of validation queries that were new (the prior of "new")

    def log_prior(self, n_classes: int) -> np.ndarray | None:
        """Log prior of each outcome (individuals equal, then new), for fusing encounters."""
        if self.new_share is None or n_classes < 1:
            return None
        new = min(max(self.new_share, 1e-3), 1 - 1e-3)
        return np.log(np.r_[np.full(n_classes, (1 - new) / n_classes), new])

    @classmethod
    def fit(cls, scores: np.ndarray, truth_idx: np.ndarray, threshold: float) -> "Calibration":
        temperature = fit_temperature(scores, truth_idx, threshold)
        logp = outcome_logprobs(scores, threshold, temperature)
        known, new = fit_top_steps(logp, top_right(scores, truth_idx, threshold))
        return cls(temperature, known, new, float((np.asarray(truth_idx) == -1).mean()))

    def logprobs(self, scores: np.ndarray, threshold: float) -> np.ndarray:
        return outcome_logprobs(scores, threshold, self.temperature)

    def p_correct_from_logprobs(self, logp: np.ndarray) -> np.ndarray:
        """P(top outcome right) from a photo's outcome log-probabilities."""
        return top_steps_p(self.steps, self.steps_new, logp)

    def p_correct(self, scores: np.ndarray, threshold: float) -> np.ndarray:
        return self.p_correct_from_logprobs(self.logprobs(scores, threshold))

    def to_dict(self) -> dict:
        return {"temperature": self.temperature, "steps": self.steps.to_dict(),
                "steps_new": self.steps_new.to_dict() if self.steps_new is not None else None,
                "new_share": self.new_share}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        new = d.get("steps_new")
        return cls(float(d["temperature"]), IsotonicSteps.from_dict(d["steps"]),
                   IsotonicSteps.from_dict(new) if new else None, d.get("new_share"))


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a rate k / n (95 % by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def reliability(predicted: np.ndarray, correct: np.ndarray, bins: int = 10) -> list[dict]:
    """Predicted against observed in equal-width bins of the predicted probability (the
    last bin closed): per non-empty bin its range, count, mean prediction and observed rate."""
    p, c = np.asarray(predicted, float), np.asarray(correct, float)
    b = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for j in range(bins):
        m = b == j
        if m.any():
            out.append({"lo": j / bins, "hi": (j + 1) / bins, "n": int(m.sum()),
                        "predicted": float(p[m].mean()), "observed": float(c[m].mean())})
    return out
