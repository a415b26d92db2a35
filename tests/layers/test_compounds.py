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


def test_layc005_drill_down_at_a_moment_tier_history_cases_observations_gates(scenario):
    """C3's confirmed case at T0 seals it that day; C1's observation (since T0-1d) runs on day
    2/14, with the person masked; gate G is closed from T0+1m."""
    scn = scenario
    street = scn["data"].street.id
    c1, c3, gate = scn["c1"], scn["c3"], scn["gate"]
    with session_factory(scn["engine"])() as s:
        before = compounds.detail(s, c3.id, Query(street, scn["at"](-1)))
        after = compounds.detail(s, c3.id, Query(street, scn["at"](1)))
        week_later = compounds.detail(s, c3.id, Query(street, scn["at"](8 * 24 * 60)))
        observed = compounds.detail(s, c1.id, Query(street, scn["at"](20)))
        gated = compounds.detail(s, gate.compound_id, Query(street, scn["at"](2)))
    day = scn["t0"].date()
    assert (before["tier"], after["tier"], week_later["tier"]) == ("precaution", "sealed", "controlled")
    assert len(after["tier_history"]) == 14 and after["tier_history"][-1] == {"date": day.isoformat(),
                                                                            "tier": "sealed"}
    assert {h["tier"] for h in after["tier_history"][:-1]} == {"precaution"}
    assert [h["tier"] for h in week_later["tier_history"]][-9:] == ["sealed"] * 7 + ["controlled"] * 2
    assert before["cases"] == [] and [c["label"] for c in after["cases"]] == ["确诊"]
    assert [o["day"] for o in observed["observations"]] == ["2/14"]
    assert observed["observations"][0]["person"].count("*") >= 10  # masked, never the raw ID
    assert {g["id"]: g["status"] for g in gated["gates"]}[gate.id] == "closed"
