"""An officer's work list: the committee's points from several layers, most urgent first.

Not a map layer (it is not in the registry): it reads the layers' own features for one
committee and moment, so the list and the map can never disagree about what is overdue,
missing or understaffed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from data.domain import rules
from data.domain.labels import label
from layers import alerts, gates, observations, workorders
from layers.base import GeoJSON, Query

#: urgency order of the reasons a point is on the list (lower comes first)
REASONS = {"supervised": "督办工单", "overdue": "超时工单", "alert": "新预警", "missed_checkin": "今日未健康打卡",
           "understaffed": "出入口值守不足", "ends_today": "今日观察期满", "order": "待办工单"}
RANK = {reason: i for i, reason in enumerate(REASONS)}


@dataclass(frozen=True)
class Item:
    """One line of the list: why it is there, which point, and what to show."""

    reason: str
    layer: str
    entity_id: str
    title: str
    note: str
    urgency: float  # within a reason, higher first (minutes overdue, alert time …)

    @property
    def label(self) -> str:
        return REASONS[self.reason]

    def sort_key(self) -> tuple[int, float]:
        return RANK[self.reason], -self.urgency


#: how a reader receives a layer's features (``data.access.policy.features`` for a signed-in actor)
Shown = Callable[[Any, GeoJSON], GeoJSON]


def worklist(session: Session, query: Query, shown: Shown = lambda layer, fc: fc) -> list[Item]:
    """The committee's (``query.committee_id``) points that need someone, most urgent first, from
    the layers' features as the reader receives them (``shown``)."""
    def _props(layer: Any, session: Session, query: Query) -> list[dict[str, Any]]:
        return [f["properties"] for f in shown(layer, layer.features(session, query))["features"]]

    items = []
    for p in _props(workorders, session, query):
        if p["kind"] not in rules.OPEN_STATES:
            continue
        reason = "supervised" if p["level"] == "supervised" else "overdue" if p["overdue"] else "order"
        marked = f"{label(p['level'])} · " if p["level"] else ""
        note = f"{marked}{workorders.STATES[p['kind']][0]} · {p['remaining']}"
        items.append(Item(reason, "workorders", p["id"], p["name"], note, p["overdue_minutes"]))
    items += _alert_groups(_props(alerts, session, query))
    for p in _props(observations, session, query):
        if p["kind"] != "active":
            continue
        if p["missing"]:
            items.append(Item("missed_checkin", "observations", p["id"], p["name"], f"第{p['label']}天", p["day"]))
        if p["ends_today"]:
            items.append(Item("ends_today", "observations", p["id"], p["name"], f"第{p['label']}天", p["day"]))
    for p in _props(gates, session, query):
        if p["understaffed"]:
            items.append(Item("understaffed", "gates", p["id"], f"{p['compound']} {p['name']}",
                              f"在岗 {p['guards_on_duty']}/{p['guards_required']}",
                              p["guards_required"] - p["guards_on_duty"]))
    return sorted(items, key=Item.sort_key)


def _alert_groups(props: list[dict[str, Any]]) -> list[Item]:
    """Alerts grouped by kind and place (twelve fevers at one gate are one line, "×12"); a group
    opens its newest alert. Why: an afternoon's alerts were 560 lines, a list nobody can work."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in props:
        groups.setdefault((p["kind"], p.get("place") or p["name"]), []).append(p)
    items = []
    for (kind, place), group in groups.items():
        newest = max(group, key=lambda p: (p["ts"], int(p["id"])))
        title = newest["name"] if len(group) == 1 else f"{label(kind)} ×{len(group)}：{place}"
        at = dt.datetime.fromisoformat(newest["ts"]).astimezone(rules.SHANGHAI)
        items.append(Item("alert", "alerts", newest["id"], title, f"{at:%H:%M}",
                          max(p["severity"] for p in group) * 1e6 + int(newest["id"])))
    return items
