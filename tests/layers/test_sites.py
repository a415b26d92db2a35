"""lay-t: sites by kind — real metro entrances and parks, synthetic care homes and others."""

from __future__ import annotations

from collections import Counter

from data.store import session_factory
from layers import sites
from layers.base import Query


def test_layt001_every_site_with_its_kind(scenario):
    scn = scenario
    with session_factory(scn["engine"])() as s:
        fc = sites.features(s, Query(scn["data"].street.id, scn["at"](0)))
        metro = next(f for f in fc["features"] if f["properties"]["kind"] == "metro_entrance")
        detail = sites.detail(s, metro["id"], Query(scn["data"].street.id, scn["at"](0)))
    kinds = Counter(f["properties"]["kind"] for f in fc["features"])
    assert kinds == Counter(site.kind for site in scn["data"].sites)
    assert not metro["properties"]["synthetic"] and detail["source_ref"] and detail["label"] == "地铁出入口"
