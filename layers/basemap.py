"""Basemap layer: OSM roads and the river around the street, drawn from shipped data so
the map is readable with no tile server (see data/datasets/SOURCE.md; 黄浦 only)."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

from shapely.geometry import box, shape
from sqlalchemy.orm import Session

from data.settings import PROJECT_ROOT
from layers.base import GeoJSON, LegendEntry, Query, collection, feature, street_boundary

id = "basemap"
title = "底图（道路、水系）"
#: notice topics that may change its features (shipped data: nothing live changes it)
changed_by: frozenset[str] = frozenset()
FILE = PROJECT_ROOT / "data" / "datasets" / "basemap_huangpu_wgs84.geojson.gz"
MARGIN_DEG = 0.004  # about 400 m of context around the street


def legend() -> list[LegendEntry]:
    return [LegendEntry("road", "道路（OSM）", "#ced4da"), LegendEntry("water", "水系", "#a5d8ff")]


@cache
def _features(path: Path) -> list[tuple[Any, dict[str, Any]]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [(shape(f["geometry"]), f["properties"]) for f in json.load(fh)["features"]]


def features(session: Session, query: Query) -> GeoJSON:
    """Roads and water within the street's bounding box plus a margin, clipped to it."""
    boundary = street_boundary(session, query.street_id)
    if boundary is None:
        return collection([])
    minx, miny, maxx, maxy = boundary.bounds
    frame = box(minx - MARGIN_DEG, miny - MARGIN_DEG, maxx + MARGIN_DEG, maxy + MARGIN_DEG)
    out = []
    for geom, props in _features(FILE):
        if geom.intersects(frame):
            out.append(feature(geom.intersection(frame), id=None, kind=props["kind"], name=props.get("name"),
                               highway=props.get("highway")))
    return collection(out)


def detail(session: Session, entity_id: str, query: Query) -> dict[str, Any] | None:
    return None  # basemap features have no drill-down
