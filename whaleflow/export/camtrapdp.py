"""``--format camtrapdp``: a Camera Trap Data Package 1.0 whose observations carry ``individualID``.

Written into the folder ``OUT``, following the Camtrap DP 1.0 table schemas
(https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0/…):

* ``deployments.csv``: one deployment (``--deployment``, ``--latitude``/``--longitude``
  are required by the standard), from the first to the last photo;
* ``media.csv``: one row per dated photo (``mediaID`` = image name, made unique where two
  photos share a name, ``timestamp``, ``filePath``, ``filePublic`` false,
  ``fileMediatype``). ``filePath`` is the photo's ``file://`` URL: the standard takes a
  URL or a path inside the package, never a local path (``/data/a.jpg`` breaks its
  pattern), and the photos stay where they are;
* ``observations.csv``: one media-level ``animal`` observation per photo, with
  ``individualID`` (the catalogue's id), ``scientificName`` (``--scientific-name``),
  the box as ``bboxX, bboxY, bboxWidth, bboxHeight`` (relative to the photo, clipped to it;
  empty when unknown or empty inside the photo),
  ``classificationMethod`` human (training labels and enrolled decisions are a person's)
  and, for enrolled photos, when it was decided;
* ``datapackage.json``: the profile, the three resources and the required metadata.

Camtrap DP needs a timestamp with a zone for every media file: photos without a date
are left out (counted), and EXIF times, which carry no zone, get ``--utc-offset``.
Before anything is written the package is checked against what Camtrap DP 1.0 requires
(:mod:`.camtrapdp_spec`); a package that breaks it is refused with its first problem.
Camtrap DP was made for camera traps; its ``project.captureMethod`` vocabulary has no
hand-held photography, so ``activityDetection`` is written and the package says so.
"""
from __future__ import annotations

import json
import mimetypes
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..io import write_csv, write_text
from . import register
from .camtrapdp_spec import VERSION, problems

BASE = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
TABLES = ("deployments", "media", "observations")


def _stamp(when: pd.Timestamp, offset: str) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if offset in ("Z", "+00:00") else offset)


def _sizes(paths) -> list[tuple[int, int]]:
    from PIL import Image

    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                out.append(im.size)
        except OSError:
            out.append((0, 0))
    return out


def file_url(path: str | Path) -> str:
    """The photo's ``file://`` URL (``..`` in a name percent-encoded: the pattern forbids it)."""
    return Path(path).resolve().as_uri().replace("..", "%2E%2E")


def unique_ids(names: pd.Series) -> pd.Series:
    """``names`` with a repeated one numbered (``a.jpg``, ``a.jpg_2``): two photos of one
    catalogue may share a file name, a mediaID may not."""
    k = names.groupby(names).cumcount()
    return names.where(k == 0, names + "_" + (k + 1).astype(str))


def _boxes(rec: pd.DataFrame) -> pd.DataFrame:
    """The boxes relative to each photo, clipped to it; all four empty where the photo's
    size or the box is unknown, or nothing of the box lies inside the photo."""
    wh = np.array(_sizes(rec["path"]), float).reshape(-1, 2)
    w, h = np.where(wh[:, 0] > 0, wh[:, 0], np.nan), np.where(wh[:, 1] > 0, wh[:, 1], np.nan)
    x0, x1 = np.clip(rec["x0"] / w, 0, 1), np.clip(rec["x1"] / w, 0, 1)
    y0, y1 = np.clip(rec["y0"] / h, 0, 1), np.clip(rec["y1"] / h, 0, 1)
    ok = (x1 - x0 > 0) & (y1 - y0 > 0)
    box = pd.DataFrame({"bboxX": x0, "bboxY": y0, "bboxWidth": x1 - x0, "bboxHeight": y1 - y0}).round(4)
    return box.where(ok & (box["bboxWidth"] > 0) & (box["bboxHeight"] > 0))


def tables(records: pd.DataFrame, options) -> dict[str, pd.DataFrame]:
    """The three Camtrap DP tables of the dated ``records``."""
    rec = records[records["date"].notna()].reset_index(drop=True)
    off, dep = options.utc_offset, options.deployment
    stamps = [_stamp(t, off) for t in rec["date"]]
    media_id = unique_ids(rec["image"].astype(str))
    deployments = pd.DataFrame([{"deploymentID": dep, "latitude": options.latitude, "longitude": options.longitude,
                                 "deploymentStart": _stamp(rec["date"].min(), off),
                                 "deploymentEnd": _stamp(rec["date"].max(), off)}])
    media = pd.DataFrame({"mediaID": media_id, "deploymentID": dep, "timestamp": stamps,
                          "filePath": [file_url(p) for p in rec["path"]], "filePublic": "false",
                          "fileName": rec["image"],
                          "fileMediatype": [mimetypes.guess_type(p)[0] or "image/jpeg" for p in rec["path"]]})
    decided = pd.to_datetime(rec["decided"], errors="coerce", utc=True)
    obs = pd.DataFrame({
        "observationID": "obs_" + media_id, "deploymentID": dep, "mediaID": media_id, "eventID": "",
        "eventStart": stamps, "eventEnd": stamps, "observationLevel": "media", "observationType": "animal",
        "scientificName": options.scientific_name, "count": 1, "individualID": rec["id"],
        **_boxes(rec).to_dict("series"),
        "classificationMethod": "human",
        "classifiedBy": np.where(rec["source"] == "enrolled", "whaleflow enroll (reviewed decision)", "training labels"),
        "classificationTimestamp": [d.strftime("%Y-%m-%dT%H:%M:%SZ") if not pd.isna(d) else "" for d in decided],
    })
    return {"deployments": deployments, "media": media, "observations": obs}


def package_name(name: str) -> str:
    """A Frictionless package name: lower case, digits, ``.``, ``_``, ``-``."""
    return re.sub(r"[^a-z0-9._-]+", "-", str(name).lower()).strip("-") or "whaleflow-catalogue"


def datapackage(t: dict[str, pd.DataFrame], options) -> dict:
    start, end = t["deployments"]["deploymentStart"][0], t["deployments"]["deploymentEnd"][0]
    return {
        "profile": f"{BASE}/camtrap-dp-profile.json",
        "name": package_name(options.name), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "contributors": [{"title": options.contributor, "role": "contributor"}],
        "project": {"title": options.name, "samplingDesign": "opportunistic", "captureMethod": ["activityDetection"],
                    "individualAnimals": True, "observationLevel": ["media"],
                    "description": "Photo-identification catalogue exported by whaleflow; captureMethod is the "
                                   "nearest term Camtrap DP has for hand-held photographs."},
        "spatial": {"type": "Point", "coordinates": [options.longitude, options.latitude]},
        "temporal": {"start": start[:10], "end": end[:10]},
        "taxonomic": [{"scientificName": options.scientific_name}],
        "resources": [{"name": n, "path": f"{n}.csv", "profile": "tabular-data-resource", "format": "csv",
                       "mediatype": "text/csv", "encoding": "utf-8", "schema": f"{BASE}/{n}-table-schema.json"}
                      for n in TABLES],
    }


@register("camtrapdp")
def write_camtrapdp(records: pd.DataFrame, out: Path, options) -> str:
    if options.latitude is None or options.longitude is None:
        raise DataError("Camtrap DP requires the deployment's --latitude and --longitude.",
                        fix="e.g. --latitude 64.1 --longitude -21.9 (decimal degrees, WGS84).")
    if not (-90 <= options.latitude <= 90 and -180 <= options.longitude <= 180):
        raise DataError(f"latitude {options.latitude} / longitude {options.longitude} out of range.",
                        fix="latitude in [-90, 90], longitude in [-180, 180].")
    if records["date"].notna().sum() == 0:
        raise DataError("no catalogue photo has a date; Camtrap DP needs a timestamp per photo.",
                        fix="pass --dates CSV (image,date), or photos that carry EXIF DateTimeOriginal.")
    t = tables(records, options)
    pkg = datapackage(t, options)
    found = problems(t, pkg)
    if found:
        raise DataError(f"the Camtrap DP {VERSION} package would break the standard: {found[0]}"
                        + (f" (and {len(found) - 1} more)" if len(found) > 1 else "") + ".",
                        fix="report this as a whaleflow bug; nothing was written.")
    out.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        write_csv(out / f"{name}.csv", t[name])
    write_text(out / "datapackage.json", json.dumps(pkg, indent=2) + "\n")
    undated = int(records["date"].isna().sum())
    return (f"Camtrap DP {VERSION}: {len(t['observations'])} observation(s) of "
            f"{t['observations']['individualID'].nunique()} individual(s) → {out}"
            + (f"; {undated} photo(s) without a date left out" if undated else ""))
