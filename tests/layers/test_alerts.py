"""lay-a: alerts of the last minutes, at their gates."""

from __future__ import annotations

import datetime as dt

from data.store import session_factory
from layers import alerts
from layers.base import Query


def test_laya001_recent_alerts_only(scenario):
    scn = scenario
    with session_factory(scn["engine"])() as s:
        now = alerts.features(s, Query(scn["data"].street.id, scn["at"](6)))
        later = alerts.features(s, Query(scn["data"].street.id, scn["at"](120), alert_window=dt.timedelta(hours=1)))
        first = alerts.detail(s, now["features"][0]["id"], Query(scn["data"].street.id, scn["at"](120)))
    kinds = sorted(f["properties"]["kind"] for f in now["features"])
    assert kinds == ["closed_gate_scan", "fever"]
    assert all(f["properties"]["entity"] == f"gate:{scn['gate'].id}" for f in now["features"])
    assert later["features"] == []
    assert first["label"] in ("发热", "关闭出入口扫码")
