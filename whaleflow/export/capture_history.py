"""``--format capture-history``: individual × occasion, as capture-recapture software reads it.

``OUT`` (a CSV): one row per individual with at least one dated photo, one column per
occasion with at least one dated photo (sorted; an occasion in which no individual was
photographed cannot be told from one that was not surveyed, so it is not invented),
1 where the individual was photographed in it, else 0; then ``ch`` (the same as one
string, MARK's ``1001`` form) and ``photos`` (its dated photos). Photos without a
date are left out and counted in the summary.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..io import write_csv
from . import register
from .occasions import occasion_labels


def capture_history(records: pd.DataFrame, occasion: str) -> pd.DataFrame:
    """The capture-history table of ``records`` (see the module docstring)."""
    occ = occasion_labels(records["date"], occasion)
    dated = records.assign(occasion=occ)[occ.notna()]
    if dated.empty:
        raise DataError("no catalogue photo has a date, so there is no occasion to count.",
                        fix="pass --dates CSV (image,date), or export photos that carry EXIF DateTimeOriginal.")
    table = pd.crosstab(dated["id"], dated["occasion"]).clip(upper=1)
    table = table.reindex(sorted(table.columns), axis=1)
    table.columns = [str(c) for c in table.columns]
    out = table.reset_index().rename(columns={"id": "individual"})
    out["ch"] = table.astype(str).agg("".join, axis=1).to_numpy()
    out["photos"] = dated.groupby("id").size().reindex(table.index).to_numpy()
    return out


@register("capture-history")
def write_capture_history(records: pd.DataFrame, out: Path, options) -> str:
    table = capture_history(records, options.occasion)
    path = write_csv(out, table)
    undated = int(records["date"].isna().sum())
    return (f"capture history of {len(table)} individual(s) over {len(table.columns) - 3} occasion(s) "
            f"({options.occasion}) → {path}" + (f"; {undated} photo(s) without a date left out" if undated else ""))
