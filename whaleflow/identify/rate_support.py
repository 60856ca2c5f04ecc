"""Whether the run's validation can back a stated false-match rate.

``identify --auto-accept-fmr RATE`` is a claim about photos nobody looked at, and the only
evidence for it is the run's validation: the held-out (outer-fold) ``p_correct`` of each
validation query (or validation encounter) and whether its top outcome was right. The
rule accepts where ``1 - p_correct <= RATE``; on validation that accepts ``n`` queries, of
which ``k`` were wrong. A rate is **supported** when

* ``n >= 1 / RATE``: fewer accepted queries cannot show a single false match at that rate
  (100 accepted photos are needed to see one error in 1 %), and
* the 95 % Wilson upper bound of ``k / n`` is at most ``RATE``: the observed rate, with its
  uncertainty, stays under the stated one (with no error at all that takes
  ``n >= 3.84 (1 - RATE) / RATE``: 381 photos for 1 %). This implies the first for any
  ``n >= 2``; the first is stated anyway, being the reason a reader checks first.

Where it is not, identify accepts nothing (everything goes to review) and says so in one
line — :func:`support_line` — with the lowest rate of :data:`LADDER` validation does
support, rather than accepting at a rate it cannot back.
"""
from __future__ import annotations

import math

import numpy as np

from .calibration import accepts, wilson

#: the rates the report states and the "lowest supported" search tries
LADDER = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


def fmr_check(p_correct: np.ndarray, right: np.ndarray, rate: float) -> dict:
    """What accepting where ``1 - p_correct <= rate`` did on held-out validation: accepted
    share, false matches and their rate with a 95 % Wilson interval, and whether the rate
    is supported (see the module docstring)."""
    p, right = np.asarray(p_correct, float), np.asarray(right, bool)
    accepted = accepts(p, rate)
    n, wrong = int(accepted.sum()), int((accepted & ~right).sum())
    lo, hi = wilson(wrong, n)
    return {"rate": rate, "queries": int(len(p)), "accepted": n, "accepted_share": n / max(len(p), 1),
            "false_matches": wrong, "observed_fmr": wrong / n if n else 0.0, "fmr_low": lo, "fmr_high": hi,
            "needed": math.ceil(1 / rate - 1e-9), "supported": bool(n >= math.ceil(1 / rate - 1e-9) and hi <= rate + 1e-9)}


def lowest_supported(p_correct: np.ndarray, right: np.ndarray) -> float | None:
    """The lowest rate of :data:`LADDER` validation supports, or None."""
    return next((r for r in LADDER if fmr_check(p_correct, right, r)["supported"]), None)


def support_line(p_correct: np.ndarray, right: np.ndarray, rate: float, unit: str = "photo") -> str | None:
    """None where validation supports ``rate``; else the one line identify prints (and the
    review page shows) instead of accepting."""
    c = fmr_check(p_correct, right, rate)
    if c["supported"]:
        return None
    low = lowest_supported(p_correct, right)
    lowest = (f"the lowest rate it supports is {100 * low:g} %" if low is not None
              else f"it supports none of {', '.join(f'{100 * r:g} %' for r in LADDER)}")
    return (f"validation cannot support a false-match rate of {100 * rate:g} % per {unit}: at that rate its outer "
            f"folds accepted {c['accepted']} of {c['queries']} {unit}s with {c['false_matches']} wrong (95 % upper "
            f"bound {100 * c['fmr_high']:.2f} %), and backing {100 * rate:g} % needs at least {c['needed']} accepted "
            f"and an upper bound at most {100 * rate:g} %; nothing was auto-accepted, all {unit}s go to review "
            f"({lowest})")
