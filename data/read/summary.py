"""The numbers beside the map, at any moment: cases (street, district, city), the daily work
against its targets, facilities, alerts and work orders.

Why one function: the panels, ``GET /api/v1/summary`` and the morning briefing must show the
same number for the same moment, so they all call ``summary``. Everything is computed from
history up to ``at`` — nothing from current state — so asking again later gives the same.
"""

from __future__ import annotations

import datetime as dt
import gzip
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from data.domain import rules
from data.domain.deadlines import Deadlines
from data.models import (
    Alert,
    Case,
    Committee,
    Compound,
    Gate,
    HomeObservation,
    Shop,
    Site,
    StateChange,
    Street,
    WorkReport,
    WorkTarget,
)
from data.pipeline.events import CASE_CATEGORIES
from data.read import queries
from data.store import among, states_as_of

DAILY = "covid_daily_2022.csv.gz"


@cache
def _official_daily(datasets: Path) -> pd.DataFrame:
    with gzip.open(datasets / DAILY, "rt", encoding="utf-8") as fh:
        df = pd.read_csv(fh, dtype={"region": str})
    df["date"] = pd.to_datetime(df["date"]).dt.date
    return df


def official(datasets: Path, region: str, day: dt.date) -> dict[str, Any] | None:
    """Official new and cumulative counts of a district (or 上海市) on ``day``; None outside the data."""
    df = _official_daily(datasets)
    rows = df[df["region"] == region]
    if rows.empty or not rows["date"].min() <= day <= rows["date"].max():
        return None
    upto, today = rows[rows["date"] <= day], rows[rows["date"] == day]
    return {"region": region, "date": day.isoformat(), "reported": not today.empty,
            "confirmed": {"new": int(today["confirm"].sum()), "total": int(upto["confirm"].sum())},
            "asymptomatic": {"new": int(today["wzz"].sum()), "total": int(upto["wzz"].sum())},
            "since": rows["date"].min().isoformat()}


def _new_and_total(when: Any, start: dt.datetime, amount: Any) -> tuple[Any, Any]:
    """SUM over a day (``when >= start``) and over all, as two portable aggregate columns."""
    return func.coalesce(func.sum(case((when >= start, amount), else_=0)), 0), func.coalesce(func.sum(amount), 0)


def _compounds_with_cases_today(session: Session, street_id: str, at: dt.datetime) -> int:
    """Compounds with a positive case (rules.POSITIVE) reported on the day of ``at`` (up to ``at``)."""
    return int(session.scalar(select(func.count(func.distinct(Case.compound_id)))
                              .join(Compound, Compound.id == Case.compound_id)
                              .where(Compound.street_id == street_id, Case.category.in_(rules.POSITIVE),
                                     Case.reported_at >= rules.day_start(at), Case.reported_at <= at)) or 0)


def _street_cases(session: Session, street_id: str, at: dt.datetime) -> dict[str, dict[str, int]]:
    """Per category: new since local midnight (``new``), in the 24 h to ``at`` (``new_24h``, what
    the morning briefing reports) and cumulative."""
    new, total = _new_and_total(Case.reported_at, rules.day_start(at), 1)
    new_24h = func.coalesce(func.sum(case((Case.reported_at > at - dt.timedelta(hours=24), 1), else_=0)), 0)
    rows = session.execute(select(Case.category, new, new_24h, total).join(Compound, Compound.id == Case.compound_id)
                           .where(Compound.street_id == street_id, Case.reported_at <= at)
                           .group_by(Case.category)).all()
    out = {c: {"new": 0, "new_24h": 0, "total": 0} for c in CASE_CATEGORIES}
    for category, n_new, n_24h, n_total in rows:
        out[category] = {"new": int(n_new), "new_24h": int(n_24h), "total": int(n_total)}
    return out


def _work(session: Session, street_id: str, at: dt.datetime) -> dict[str, dict[str, Any]]:
    """Per task: done today and in all, against the summed targets of the street."""
    start = rules.day_start(at)
    targets = dict(session.execute(select(WorkTarget.task, func.sum(WorkTarget.target))
                                   .where(WorkTarget.street_id == street_id).group_by(WorkTarget.task)).all())
    units = dict(session.execute(select(WorkTarget.task, func.min(WorkTarget.unit))
                                 .where(WorkTarget.street_id == street_id).group_by(WorkTarget.task)).all())
    scope = _street_targets(session, street_id)
    new, total = _new_and_total(WorkReport.ts, start, WorkReport.count)
    done = session.execute(select(WorkReport.task, new, total)
                           .where(WorkReport.ts <= at, WorkReport.target_id.in_(scope))
                           .group_by(WorkReport.task)).all()
    out = {t: {"new": 0, "total": 0, "target": int(targets.get(t, 0)), "unit": units.get(t)}
           for t in ("screening", "disinfection", "mask_reservation", "mask_distribution", "key_person_visit")}
    for task, n_new, n_total in done:
        out[task]["new"], out[task]["total"] = int(n_new), int(n_total)
    # key persons: a daily round — today's visits against everyone under home observation at that
    # moment (all visits ever against today's persons would read 285 / 134)
    visits = out["key_person_visit"]
    visits |= {"total": visits["new"], "target": _observed(session, street_id, at), "unit": "persons", "daily": True}
    return out


def _street_targets(session: Session, street_id: str) -> list[str]:
    ids: list[str] = []
    for model in (Compound, Committee, Site, Shop):
        ids += session.scalars(select(model.id).where(model.street_id == street_id))
    return ids


def _observed(session: Session, street_id: str, at: dt.datetime) -> int:
    rows = session.execute(select(HomeObservation.start_at, HomeObservation.planned_end_at, HomeObservation.ended_at)
                           .join(Compound, Compound.id == HomeObservation.compound_id)
                           .where(Compound.street_id == street_id, HomeObservation.start_at <= at)).all()
    return sum(rules.observation_active(s, p, e, at) for s, p, e in rows)


def _facilities(session: Session, street_id: str, at: dt.datetime) -> dict[str, Any]:
    """Gates by status and understaffed; shops by status; sites checked today by kind."""
    gate_rows = session.execute(select(Gate.id, Gate.guards_required).join(Compound)
                                .where(Compound.street_id == street_id)).all()
    gate_states = states_as_of(session, "gate", at, [g for g, _ in gate_rows])
    required = dict(gate_rows)
    gates: dict[str, int] = {"open": 0, "closed": 0, "restricted": 0, "understaffed": 0}
    on_duty = queries.guards_on_duty(session, gate_states, at)
    for gid, st in gate_states.items():
        gates[st["status"]] += 1
        gates["understaffed"] += int(on_duty[gid] < required[gid])
    shop_ids = list(session.scalars(select(Shop.id).where(Shop.street_id == street_id)))
    shops: dict[str, int] = {"open": 0, "closed": 0, "unverified": 0}
    for st in states_as_of(session, "shop", at, shop_ids).values():
        shops[st["status"]] += 1
    start = rules.day_start(at)
    checked_shops = session.scalar(select(func.count(func.distinct(StateChange.entity_id))).where(
        StateChange.entity_kind == "shop", StateChange.source == "event", StateChange.at >= start,
        StateChange.at <= at, among(StateChange.entity_id, shop_ids)))
    sites = {}
    for kind in ("construction_site", "elderly_care"):
        ids = list(session.scalars(select(Site.id).where(Site.street_id == street_id, Site.kind == kind)))
        checked = session.scalar(select(func.count(func.distinct(StateChange.entity_id))).where(
            StateChange.entity_kind == "site", StateChange.source == "event", StateChange.at >= start,
            StateChange.at <= at, among(StateChange.entity_id, ids)))
        sites[kind] = {"total": len(ids), "checked_today": int(checked or 0)}
    return {"gates": gates, "shops": {**shops, "total": len(shop_ids), "checked_today": int(checked_shops or 0)},
            "sites": sites}


def summary(session: Session, street_id: str, at: dt.datetime, datasets: Path, policy: Deadlines) -> dict[str, Any]:
    """Every panel number for ``street_id`` as of ``at`` (see module docstring)."""
    street = session.get(Street, street_id)
    if street is None:
        raise LookupError(f"street {street_id!r} is not loaded")
    day = rules.local_day(at)
    tiers = queries.compound_tiers(session, street_id, at)
    alerts: dict[str, int] = {}
    for kind, geom in session.execute(select(Alert.kind, Alert.geom).where(
            Alert.ts > at - dt.timedelta(hours=24), Alert.ts <= at, Alert.geom.is_not(None))):
        if street.geom.covers(geom):
            alerts[kind] = alerts.get(kind, 0) + 1
    orders = queries.work_order_counts(session, street_id, at, policy)
    return {
        "street": {"id": street.id, "name": street.name, "district": street.district},
        "as_of": at.isoformat(), "day": day.isoformat(),
        "cases": {"street": _street_cases(session, street_id, at),
                  "district": official(datasets, street.district, day), "city": official(datasets, "上海市", day)},
        "tiers": {t: sum(v == t for v in tiers.values()) for t in ("sealed", "controlled", "precaution")},
        "compounds_with_cases_today": _compounds_with_cases_today(session, street_id, at),
        "work": _work(session, street_id, at),
        "facilities": _facilities(session, street_id, at),
        "alerts_24h": alerts,
        "work_orders": orders,
    }
