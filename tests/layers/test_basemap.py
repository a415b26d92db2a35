"""lay-m: the offline vector basemap around the street."""

from __future__ import annotations

from collections import Counter

from shapely.geometry import box, shape

from data.store import session_factory
from layers import basemap
from layers.base import Query


def test_laym001_roads_and_water_around_the_street(scenario):
    scn = scenario
    with session_factory(scn["engine"])() as s:
        fc = basemap.features(s, Query(scn["data"].street.id, scn["at"](0)))
    pieces = Counter()
    for f in fc["features"]:
        pieces[f["properties"]["kind"]] += len(getattr(shape(f["geometry"]), "geoms", [None]))
    assert pieces["road"] > 900 and pieces["water"] >= 1  # Suzhou Creek runs along the north edge
    names = [f["properties"]["name"] for f in fc["features"]]
    assert {"西藏中路", "福州路", "九江路"} <= set(names)
    # one feature per road named on the map (each an SVG element in the browser), one per class for the rest
    named = [(f["properties"]["name"], f["properties"]["highway"]) for f in fc["features"] if f["properties"]["name"]]
    assert len(named) == len(set(named)) and len(fc["features"]) < 120
    minx, miny, maxx, maxy = scn["data"].street.geom.bounds
    frame = box(minx - 0.0041, miny - 0.0041, maxx + 0.0041, maxy + 0.0041)
    assert all(frame.covers(shape(f["geometry"])) for f in fc["features"])
