"""Alerts layer: what the rules raised in the last minutes (fever, quarantine violation,
scan at a closed gate …), urgent ones on top."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from data.models import Alert, Committee
from data.pipeline.events import ALERT_LABELS, public_alert
from layers.base import GeoJSON, LegendEntry, Query, collection, feature, iso, street_boundary

id = "alerts"
title = "实时预警"
#: notice topics that may change its features (scans and rules raise alerts; the window moves with the clock)
changed_by = frozenset({"stream:checkins", "stream:alerts", "clock"})
COLOURS = {"quarantine_violation": "#c92a2a", "fever": "#e8590c", "health_code": "#f59f00",
           "closed_gate_scan": "#862e9c", "registration_required": "#1971c2", "missed_checkin": "#5f3dc4"}
KINDS = {kind: (ALERT_LABELS[kind], colour) for kind, colour in COLOURS.items()}
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
                ts=iso(a.ts), entity=f"{a.entity_kind}:{a.entity_id}" if a.entity_kind else None,
                committee_id=a.committee_id, place=a.place)
        for a in alerts if boundary is not None and boundary.covers(a.geom))


def public(features: list[GeoJSON]) -> list[GeoJSON]:
    """Outside the scope an alert says what happened and where (its place), never who."""
    return [{**f, "properties": {**f["properties"], "name": public_alert(f["properties"]["kind"],
                                                                         f["properties"]["place"])}}
            for f in features]


def public_detail(detail: dict[str, Any]) -> dict[str, Any]:
    return {**detail, "message": public_alert(detail["kind"], detail["place"])}


def detail(session: Session, entity_id: str, query: Query) -> dict[str, Any] | None:
    alert = session.get(Alert, int(entity_id)) if entity_id.isdigit() else None
    if alert is None:
        return None
    return {"id": alert.id, "kind": alert.kind, "label": KINDS.get(alert.kind, (alert.kind,))[0],
            "severity": alert.severity, "ts": iso(alert.ts), "message": alert.message,
            "place": alert.place, "committee_id": alert.committee_id,
            "entity": f"{alert.entity_kind}:{alert.entity_id}" if alert.entity_kind else None}
