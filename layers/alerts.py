"""Alerts layer: what the rules raised in the last minutes (fever, quarantine violation,
scan at a closed gate …), urgent ones on top."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from data.models import Alert, Committee
from layers.base import GeoJSON, LegendEntry, Query, collection, feature, iso, street_boundary

id = "alerts"
title = "实时预警"
#: notice topics that may change its features (scans and rules raise alerts; the window moves with the clock)
changed_by = frozenset({"stream:checkins", "stream:alerts", "clock"})
KINDS = {"quarantine_violation": ("居家观察外出", "#c92a2a"), "fever": ("发热", "#e8590c"),
         "health_code": ("黄/红码", "#f59f00"), "closed_gate_scan": ("关闭出入口扫码", "#862e9c"),
         "registration_required": ("外省返沪待登记", "#1971c2"), "missed_checkin": ("未健康打卡", "#5f3dc4")}
SEVERITY = {"urgent": 4, "high": 3, "medium": 2, "low": 1}


def legend() -> list[LegendEntry]:
    return [LegendEntry(k, label, colour) for k, (label, colour) in KINDS.items()]


def features(session: Session, query: Query) -> GeoJSON:
    """Alerts of the last ``query.alert_window`` placed in the street (or in the committee asked)."""
    committee = session.get(Committee, query.committee_id) if query.committee_id else None
    boundary = committee.geom if committee is not None else street_boundary(session, query.street_id)
    alerts = session.scalars(select(Alert).where(Alert.ts <= query.at, Alert.ts > query.at - query.alert_window,
                                                 Alert.geom.is_not(None)).order_by(Alert.ts)).all()
    return collection(
        feature(a.geom, id=str(a.id), kind=a.kind, severity=SEVERITY.get(a.severity, 1), name=a.message,
                ts=iso(a.ts), entity=f"{a.entity_kind}:{a.entity_id}" if a.entity_kind else None)
        for a in alerts if boundary is not None and boundary.covers(a.geom))


def detail(session: Session, entity_id: str, query: Query) -> dict[str, Any] | None:
    alert = session.get(Alert, int(entity_id)) if entity_id.isdigit() else None
    if alert is None:
        return None
    return {"id": alert.id, "kind": alert.kind, "label": KINDS.get(alert.kind, (alert.kind,))[0],
            "severity": alert.severity, "ts": iso(alert.ts), "message": alert.message,
            "entity": f"{alert.entity_kind}:{alert.entity_id}" if alert.entity_kind else None}
