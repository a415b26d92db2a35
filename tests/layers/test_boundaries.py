"""lay-b: the boundaries layer answers features, legend and drill-down from the database."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from data.models import Committee
from data.store import session_factory
from layers import BY_ID, LAYERS, boundaries
from layers.base import Query

NOW = dt.datetime(2022, 4, 10, tzinfo=dt.UTC)


def test_layb001_street_then_every_committee(loaded):
    engine, data = loaded
    with session_factory(engine)() as s:
        fc = boundaries.features(s, Query(data.street.id, NOW))
        kinds = [f["properties"]["kind"] for f in fc["features"]]
        assert kinds == ["street"] + ["committee"] * len(data.committees)
        one = data.committees[3].id
        fc = boundaries.features(s, Query(data.street.id, NOW, committee_id=one))
        assert [f["id"] for f in fc["features"]] == [data.street.id, one]
        assert boundaries.features(s, Query("S000-none", NOW)) == {"type": "FeatureCollection", "features": []}


def test_layb002_committee_drill_down_counts_its_compounds(loaded):
    engine, data = loaded
    with session_factory(engine)() as s:
        com = s.scalars(select(Committee).order_by(Committee.id)).first()
        got = boundaries.detail(s, com.id, Query(data.street.id, NOW))
        expect = [c for c in data.compounds if c.committee_id == com.id]
        assert got["compounds"] == len(expect)
        assert got["households"] == sum(c.households for c in expect)
        street = boundaries.detail(s, data.street.id, Query(data.street.id, NOW))
        assert street["compounds"] == len(data.compounds)
        assert boundaries.detail(s, "nope", Query(data.street.id, NOW)) is None


def test_layb003_registry_lists_each_layer_once():
    assert [layer.id for layer in LAYERS] == list(BY_ID)
    assert all(layer.legend() for layer in LAYERS)
