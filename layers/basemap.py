"""Basemap layer: OSM roads and the river around the street, drawn from shipped data so
the map is readable with no tile server (see data/datasets/SOURCE.md; 黄浦 only)."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

from shapely.geometry import LineString, MultiLineString, MultiPolygon, Polygon, box, shape
from sqlalchemy.orm import Session

from data.settings import PROJECT_ROOT
from layers.base import GeoJSON, LegendEntry, Query, collection, feature, street_boundary

id = "basemap"
title = "底图（道路、水系）"
#: notice topics that may change its features (shipped data: nothing live changes it)
changed_by: frozenset[str] = frozenset()
FILE = PROJECT_ROOT / "data" / "datasets" / "basemap_huangpu_wgs84.geojson.gz"
MARGIN_DEG = 0.004  # about 400 m of context around the street
NAMED = frozenset({"primary", "secondary", "trunk", "tertiary"})  # road classes assets/map.js labels


def legend() -> list[LegendEntry]:
    return [LegendEntry("road", "道路（OSM）", "#ced4da"), LegendEntry("water", "水系", "#a5d8ff")]


@cache
def _features(path: Path) -> list[tuple[Any, dict[str, Any]]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [(shape(f["geometry"]), f["properties"]) for f in json.load(fh)["features"]]


def features(session: Session, query: Query) -> GeoJSON:
    """Roads and water within the street's bounding box plus a margin, clipped to it, as one
    feature per kind, road class and — for the roads the map names (assets/map.js: primary,
    secondary, trunk, tertiary) — name: each feature is one SVG element in the browser, and the
    street's ~950 pieces drawn one by one were a fifth of its elements. The map tries each
    piece of a named road in turn for a place for its name, as it tried the pieces before."""
    boundary = street_boundary(session, query.street_id)
    if boundary is None:
        return collection([])
    minx, miny, maxx, maxy = boundary.bounds
    frame = box(minx - MARGIN_DEG, miny - MARGIN_DEG, maxx + MARGIN_DEG, maxy + MARGIN_DEG)
    pieces: dict[tuple[str, str, str, bool], list[Any]] = defaultdict(list)
    for geom, props in _features(FILE):
        if not geom.intersects(frame):
            continue
        kind, highway = props["kind"], props.get("highway") or ""
        name = (props.get("name") or "") if kind == "road" and highway in NAMED else ""
        clipped = geom.intersection(frame)
        for part in getattr(clipped, "geoms", [clipped]):  # a clipped shape may fall apart
            if isinstance(part, LineString | Polygon) and not part.is_empty:
                pieces[kind, highway, name, isinstance(part, Polygon)].append(part)
    return collection(feature(MultiPolygon(parts) if polygons else MultiLineString(parts), id=None, kind=kind,
                              name=name or None, highway=highway or None)
                      for (kind, highway, name, polygons), parts in sorted(pieces.items()))


def detail(session: Session, entity_id: str, query: Query) -> dict[str, Any] | None:
    return None  # basemap features have no drill-down
