"""lay-k: cases by category in the recent window, with their seriousness for cluster colours."""

from __future__ import annotations

from data.store import session_factory
from layers import cases
from layers.base import Query


def test_layk001_cases_by_category_in_window(scenario):
    scn = scenario
    with session_factory(scn["engine"])() as s:
        now = cases.features(s, Query(scn["data"].street.id, scn["at"](1)))
        before = cases.features(s, Query(scn["data"].street.id, scn["at"](-3 * 24 * 60)))
    kinds = sorted(f["properties"]["kind"] for f in now["features"])
    assert kinds == ["confirmed", "home_observation", "home_observation"]
    assert max(f["properties"]["severity"] for f in now["features"]) == cases.CATEGORIES["confirmed"][2]
    assert before["features"] == []
