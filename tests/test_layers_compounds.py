"""lay-c: the compounds layer gives every compound with its real position and drill-down."""

from __future__ import annotations

import datetime as dt

from data.store import session_factory
from layers import compounds
from layers.base import Query

NOW = dt.datetime(2022, 4, 10, tzinfo=dt.UTC)


def test_layc001_every_compound_once_with_real_coordinates(loaded):
    engine, data = loaded
    with session_factory(engine)() as s:
        fc = compounds.features(s, Query(data.street.id, NOW))
    assert len(fc["features"]) == len(data.compounds) >= 200
    by_id = {c.id: c for c in data.compounds}
    for f in fc["features"]:
        comp = by_id[f["id"]]
        assert f["geometry"]["type"] == "Point" and f["properties"]["kind"] == "point"
        lng, lat = f["geometry"]["coordinates"]
        assert abs(lng - comp.lng) < 1e-6 and abs(lat - comp.lat) < 1e-6


def test_layc002_committee_filter(loaded):
    engine, data = loaded
    com = data.committees[0].id
    with session_factory(engine)() as s:
        fc = compounds.features(s, Query(data.street.id, NOW, committee_id=com))
    assert {f["properties"]["committee_id"] for f in fc["features"]} == {com}
    assert len(fc["features"]) == sum(c.committee_id == com for c in data.compounds)


def test_layc003_drill_down_lists_addresses_and_gates(loaded):
    engine, data = loaded
    comp = max(data.compounds, key=lambda c: c.households)
    with session_factory(engine)() as s:
        got = compounds.detail(s, comp.id, Query(data.street.id, NOW))
    assert got["name"] == comp.name and got["households"] == comp.households
    assert got["addresses"] == sorted(a.address for a in data.addresses if a.compound_id == comp.id)
    assert [g["id"] for g in got["gates"]] == sorted(g.id for g in data.gates if g.compound_id == comp.id)


def test_layc004_tier_on_the_day(scenario):
    import datetime as dt

    scn = scenario
    with session_factory(scn["engine"])() as s:
        today = {f["id"]: f["properties"]["tier"] for f in compounds.features(
            s, Query(scn["data"].street.id, scn["at"](1)))["features"]}
        day_before = {f["id"]: f["properties"]["tier"] for f in compounds.features(
            s, Query(scn["data"].street.id, scn["at"](1) - dt.timedelta(days=1)))["features"]}
        week_later = {f["id"]: f["properties"]["tier"] for f in compounds.features(
            s, Query(scn["data"].street.id, scn["at"](1) + dt.timedelta(days=8)))["features"]}
    c3 = scn["c3"].id
    assert (today[c3], day_before[c3], week_later[c3]) == ("sealed", "precaution", "controlled")
