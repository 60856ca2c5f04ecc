"""``--format camtrapdp``: a Camera Trap Data Package 1.0 whose observations carry ``individualID``.

Written into the folder ``OUT``, following the Camtrap DP 1.0 table schemas
(https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0/…):

* ``deployments.csv``: one deployment (``--deployment``, ``--latitude``/``--longitude``
  are required by the standard), from the first to the last photo;
* ``media.csv``: one row per dated photo (``mediaID`` = image name, ``timestamp``,
  ``filePath``, ``filePublic`` false, ``fileMediatype``);
* ``observations.csv``: one media-level ``animal`` observation per photo, with
  ``individualID`` (the catalogue's id), ``scientificName`` (``--scientific-name``),
  the box as ``bboxX, bboxY, bboxWidth, bboxHeight`` (relative to the photo, when known),
  ``classificationMethod`` human (training labels and enrolled decisions are a person's)
  and, for enrolled photos, when it was decided;
* ``datapackage.json``: the profile, the three resources and the required metadata.

Camtrap DP needs a timestamp with a zone for every media file: photos without a date
are left out (counted), and EXIF times, which carry no zone, get ``--utc-offset``.
Camtrap DP was made for camera traps; its ``project.captureMethod`` vocabulary has no
hand-held photography, so ``activityDetection`` is written and the package says so.
"""
from __future__ import annotations

import json
import mimetypes
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..io import write_csv, write_text
from . import register

VERSION = "1.0"
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


def tables(records: pd.DataFrame, options) -> dict[str, pd.DataFrame]:
    """The three Camtrap DP tables of the dated ``records``."""
    rec = records[records["date"].notna()].reset_index(drop=True)
    off, dep = options.utc_offset, options.deployment
    stamps = [_stamp(t, off) for t in rec["date"]]
    deployments = pd.DataFrame([{"deploymentID": dep, "latitude": options.latitude, "longitude": options.longitude,
                                 "deploymentStart": _stamp(rec["date"].min(), off),
                                 "deploymentEnd": _stamp(rec["date"].max(), off)}])
    media = pd.DataFrame({"mediaID": rec["image"], "deploymentID": dep, "timestamp": stamps,
                          "filePath": rec["path"], "filePublic": "false", "fileName": rec["image"],
                          "fileMediatype": [mimetypes.guess_type(p)[0] or "image/jpeg" for p in rec["path"]]})
    wh = np.array(_sizes(rec["path"]), float).reshape(-1, 2)
    w, h = np.where(wh[:, 0] > 0, wh[:, 0], np.nan), np.where(wh[:, 1] > 0, wh[:, 1], np.nan)
    decided = pd.to_datetime(rec["decided"], errors="coerce", utc=True)
    obs = pd.DataFrame({
        "observationID": "obs_" + rec["image"], "deploymentID": dep, "mediaID": rec["image"], "eventID": "",
        "eventStart": stamps, "eventEnd": stamps, "observationLevel": "media", "observationType": "animal",
        "scientificName": options.scientific_name, "count": 1, "individualID": rec["id"],
        "bboxX": (rec["x0"] / w).round(4), "bboxY": (rec["y0"] / h).round(4),
        "bboxWidth": ((rec["x1"] - rec["x0"]) / w).round(4), "bboxHeight": ((rec["y1"] - rec["y0"]) / h).round(4),
        "classificationMethod": "human",
        "classifiedBy": np.where(rec["source"] == "enrolled", "whaleflow enroll (reviewed decision)", "training labels"),
        "classificationTimestamp": [d.strftime("%Y-%m-%dT%H:%M:%SZ") if not pd.isna(d) else "" for d in decided],
    })
    return {"deployments": deployments, "media": media, "observations": obs}


def datapackage(t: dict[str, pd.DataFrame], options) -> dict:
    start, end = t["deployments"]["deploymentStart"][0], t["deployments"]["deploymentEnd"][0]
    return {
        "profile": f"{BASE}/camtrap-dp-profile.json",
        "name": options.name, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
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
    out.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        write_csv(out / f"{name}.csv", t[name])
    write_text(out / "datapackage.json", json.dumps(datapackage(t, options), indent=2) + "\n")
    undated = int(records["date"].isna().sum())
    return (f"Camtrap DP {VERSION}: {len(t['observations'])} observation(s) of "
            f"{t['observations']['individualID'].nunique()} individual(s) → {out}"
            + (f"; {undated} photo(s) without a date left out" if undated else ""))
