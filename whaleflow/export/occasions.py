"""Sampling occasions: which occasion a photo's date falls in.

``--occasion`` is ``day``, ``week`` (ISO weeks, Monday first), ``month``, ``year``, or
``<N>d`` (N-day blocks counted from the first dated photo: ``10d``). An occasion's
label is its first day (``2026-07-01``; ``2026-07`` for a month, ``2026`` for a year).
"""
from __future__ import annotations

import re

import pandas as pd

from ..errors import DataError

CALENDAR = {"day": "D", "week": "W-SUN", "month": "M", "year": "Y"}
_FORMAT = {"day": "%Y-%m-%d", "week": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}


def occasion_labels(dates: pd.Series, occasion: str) -> pd.Series:
    """The occasion label of each date (NaT → None), sortable as text."""
    spec = str(occasion).strip().lower()
    m = re.fullmatch(r"(\d+)d", spec)
    if spec not in CALENDAR and not (m and int(m.group(1)) > 0):
        raise DataError(f"--occasion {occasion!r} is not an occasion length.",
                        fix="use day, week, month, year or a number of days such as 10d.")
    dates = pd.to_datetime(dates)
    out = pd.Series([None] * len(dates), index=dates.index, dtype=object)
    ok = dates.notna()
    if not ok.any():
        return out
    if m:
        first = dates[ok].min().normalize()
        days = int(m.group(1))
        block = ((dates[ok].dt.normalize() - first).dt.days // days) * days
        out[ok] = [(first + pd.Timedelta(days=int(b))).strftime("%Y-%m-%d") for b in block]
    else:
        periods = dates[ok].dt.to_period(CALENDAR[spec])
        out[ok] = [p.start_time.strftime(_FORMAT[spec]) for p in periods]
    return out
