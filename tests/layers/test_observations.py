"""lay-o: home observations with day N/14 and today's missing check-in."""

from __future__ import annotations

from data.store import session_factory
from layers import observations
from layers.base import Query


def test_layo001_day_n_and_missing_checkin(scenario):
    scn = scenario
    with session_factory(scn["engine"])() as s:
        fc = observations.features(s, Query(scn["data"].street.id, scn["at"](15)))
        by_compound = {f["properties"]["address"]: f["properties"] for f in fc["features"]}
        one, two = by_compound[scn["c1"].address], by_compound[scn["c2"].address]
        assert (one["day"], one["label"], one["missing"]) == (2, "2/14", False)  # checked in at T0+10m
        assert (two["day"], two["missing"]) == (3, True)
        early = {
            f["properties"]["address"]: f["properties"]
            for f in observations.features(s, Query(scn["data"].street.id, scn["at"](5)))["features"]
        }
        assert early[scn["c1"].address]["missing"]  # before P's check-in at T0+10m
        detail = observations.detail(
            s,
            next(f["id"] for f in fc["features"] if f["properties"]["address"] == scn["c1"].address),
            Query(scn["data"].street.id, scn["at"](15)),
        )
    assert [c["temperature"] for c in detail["checkins"]] == [36.5]
    assert detail["active"] and detail["day"] == 2 and detail["checked_in_today"]
    assert "*" in detail["person"]  # masked identity only
