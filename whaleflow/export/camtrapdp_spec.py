"""What Camtrap DP 1.0 requires, written down by hand, and a check of a package against it.

Taken from the Camtrap DP **1.0** profile and table schemas
(``https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0/camtrap-dp-profile.json``,
``deployments-table-schema.json``, ``media-table-schema.json``,
``observations-table-schema.json``; copied by hand, not downloaded: whaleflow runs
offline). Only what whaleflow writes or must not get wrong is here: each table's required
fields (``constraints.required: true``), the vocabularies of the fields it fills, the
``filePath`` pattern (a URL or a path inside the package: it may not start with ``/``,
``.`` or ``~``, nor hold ``..``), the ranges of coordinates and boxes, the unique and
foreign keys, the timestamp format, and the package metadata the profile requires.

:func:`problems` lists every violation (empty: the package meets these); the exporter
runs it before writing, so a package that breaks the standard is never written.
"""
from __future__ import annotations

import re
from datetime import datetime

import pandas as pd

VERSION = "1.0"

#: per table, the fields whose ``constraints.required`` is true in the 1.0 table schemas
REQUIRED = {
    "deployments": ("deploymentID", "latitude", "longitude", "deploymentStart", "deploymentEnd"),
    "media": ("mediaID", "deploymentID", "timestamp", "filePath", "filePublic", "fileMediatype"),
    "observations": ("observationID", "deploymentID", "eventStart", "eventEnd", "observationLevel",
                     "observationType"),
}
#: the 1.0 vocabularies (``constraints.enum``) of the fields whaleflow fills
ENUMS = {
    ("observations", "observationLevel"): ("media", "event"),
    ("observations", "observationType"): ("animal", "human", "vehicle", "blank", "unknown", "unclassified"),
    ("observations", "classificationMethod"): ("human", "machine"),
    ("media", "filePublic"): ("true", "false"),
}
#: (table, field) → (minimum, maximum) in 1.0 (box sides must be positive: minimum 1e-15)
RANGES = {
    ("deployments", "latitude"): (-90, 90), ("deployments", "longitude"): (-180, 180),
    ("observations", "bboxX"): (0, 1), ("observations", "bboxY"): (0, 1),
    ("observations", "bboxWidth"): (1e-15, 1), ("observations", "bboxHeight"): (1e-15, 1),
    ("observations", "count"): (1, float("inf")),
}
DATETIMES = {"deployments": ("deploymentStart", "deploymentEnd"), "media": ("timestamp",),
             "observations": ("eventStart", "eventEnd", "classificationTimestamp")}
FILE_PATH = re.compile(r"^(?=^[^./~])(^((?!\.{2}).)*$).*$")   # media.filePath's pattern, verbatim
UNIQUE = {"deployments": "deploymentID", "media": "mediaID", "observations": "observationID"}
FOREIGN = [("media", "deploymentID", "deployments"), ("observations", "deploymentID", "deployments"),
           ("observations", "mediaID", "media")]
#: the package properties the 1.0 profile requires (beyond Frictionless' ``resources``)
PACKAGE = ("resources", "profile", "created", "contributors", "project", "spatial", "temporal", "taxonomic")
PROJECT = ("title", "samplingDesign", "captureMethod", "individualAnimals", "observationLevel")
SAMPLING = ("simpleRandom", "systematicRandom", "clusteredRandom", "experimental", "targeted", "opportunistic")
CAPTURE = ("activityDetection", "timeLapse")
ROLES = ("contact", "principalInvestigator", "rightsHolder", "publisher", "contributor")
NAME = re.compile(r"^[a-z0-9._-]+$")   # a Frictionless package name


def _is_stamp(text: str) -> bool:
    try:
        datetime.strptime(text.replace("Z", "+00:00"), "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return False
    return True


def _table_problems(name: str, t: pd.DataFrame) -> list[str]:
    out = []
    for col in REQUIRED[name]:
        if col not in t.columns:
            out.append(f"{name}: required field {col} is missing")
            continue
        empty = int(t[col].isna().sum() + t[col].astype(str).str.strip().isin(("", "nan", "NaN", "NaT")).sum())
        if empty:
            out.append(f"{name}: required field {col} is empty in {empty} row(s)")
    for (tab, col), allowed in ENUMS.items():
        if tab == name and col in t.columns:
            bad = sorted(set(t[col].astype(str)) - set(allowed) - {""})
            if bad:
                out.append(f"{name}: {col} {bad[0]!r} is not one of {', '.join(allowed)}")
    for (tab, col), (lo, hi) in RANGES.items():
        if tab == name and col in t.columns:
            v = pd.to_numeric(t[col].replace("", None), errors="coerce").dropna()
            if ((v < lo) | (v > hi)).any():
                out.append(f"{name}: {col} outside [{lo:g}, {hi:g}] in {int(((v < lo) | (v > hi)).sum())} row(s)")
    for col in DATETIMES[name]:
        if col in t.columns:
            bad = [s for s in t[col].astype(str) if s and not _is_stamp(s)]
            if bad:
                out.append(f"{name}: {col} {bad[0]!r} is not YYYY-MM-DDThh:mm:ss with Z or ±hh:mm")
    if name == "media" and "filePath" in t.columns:
        bad = [p for p in t["filePath"].astype(str) if not FILE_PATH.match(p)]
        if bad:
            out.append(f"media: filePath {bad[0]!r} is neither a URL nor a path inside the package")
    key = UNIQUE[name]
    if key in t.columns and t[key].duplicated().any():
        out.append(f"{name}: {key} {t.loc[t[key].duplicated(), key].iloc[0]!r} is not unique")
    return out


def _package_problems(pkg: dict) -> list[str]:
    out = [f"datapackage.json: required property {p} is missing" for p in PACKAGE if p not in pkg]
    if "name" in pkg and not NAME.match(str(pkg["name"])):
        out.append(f"datapackage.json: name {pkg['name']!r} may hold only lower-case letters, digits, '.', '_', '-'")
    if f"/{VERSION}/" not in str(pkg.get("profile", "")):
        out.append(f"datapackage.json: profile is not the Camtrap DP {VERSION} profile")
    project = pkg.get("project", {})
    out += [f"datapackage.json: project.{p} is missing" for p in PROJECT if p not in project]
    if project.get("samplingDesign", SAMPLING[0]) not in SAMPLING:
        out.append(f"datapackage.json: project.samplingDesign {project['samplingDesign']!r} is not in the vocabulary")
    if not set(project.get("captureMethod", [CAPTURE[0]])) <= set(CAPTURE):
        out.append("datapackage.json: project.captureMethod holds a term outside activityDetection, timeLapse")
    for c in pkg.get("contributors", []):
        if "title" not in c or c.get("role", "contributor") not in ROLES:
            out.append(f"datapackage.json: contributor {c!r} needs a title and a role among {', '.join(ROLES)}")
    if not {"start", "end"} <= set(pkg.get("temporal", {})):
        out.append("datapackage.json: temporal needs start and end")
    if any("scientificName" not in t for t in pkg.get("taxonomic", [])):
        out.append("datapackage.json: every taxonomic entry needs a scientificName")
    names = [r.get("name") for r in pkg.get("resources", [])]
    for n in REQUIRED:
        r = next((r for r in pkg.get("resources", []) if r.get("name") == n), None)
        if r is None:
            out.append(f"datapackage.json: resource {n} is missing")
        elif not {"path", "profile", "schema"} <= set(r) or f"/{VERSION}/" not in str(r["schema"]):
            out.append(f"datapackage.json: resource {n} needs path, profile and the {VERSION} schema URL")
    if len(names) != len(set(names)):
        out.append("datapackage.json: resource names repeat")
    return out


def problems(tables: dict[str, pd.DataFrame], package: dict) -> list[str]:
    """Every way ``tables`` (deployments, media, observations; values as written to CSV) and
    ``package`` (datapackage.json) break what Camtrap DP 1.0 requires; empty when none."""
    out = []
    for name in REQUIRED:
        out += _table_problems(name, tables[name]) if name in tables else [f"table {name} is missing"]
    for child, col, parent in FOREIGN:
        if child in tables and parent in tables and col in tables[child].columns:
            refs = set(tables[child][col].astype(str)) - {""}
            missing = refs - set(tables[parent][col].astype(str))
            if missing:
                out.append(f"{child}: {col} {sorted(missing)[0]!r} is not in {parent}")
    return out + _package_problems(package)
