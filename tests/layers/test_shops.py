"""lay-s: shops by status at any moment, with their reports."""

from __future__ import annotations

from data.store import session_factory
from layers import shops
from layers.base import Query


def test_lays001_shop_closes_at_its_report(scenario):
    scn = scenario
    shop = scn["shop"].id
    with session_factory(scn["engine"])() as s:
        q = lambda m: {f["id"]: f["properties"]["kind"] for f in  # noqa: E731
                       shops.features(s, Query(scn["data"].street.id, scn["at"](m)))["features"]}
        before, after = q(1), q(3)
        detail = shops.detail(s, shop, Query(scn["data"].street.id, scn["at"](120)))
    assert before[shop] == scn["shop"].status and after[shop] == "closed"
    assert len(after) == len(scn["data"].shops)
    assert detail["reports"][0]["status"] == "closed" and detail["reports"][0]["reporter"] == "巡查"
