"""The morning briefing's numbers and the summary tables, frozen at a cut-off.

Why from history only: the 8 a.m. briefing must give the same numbers when it is reopened
a week later, so everything here is computed from events stamped up to the cut-off (state
history, case reports, check-ins), never from current state. The headline numbers are
``data.read.summary.summary`` at the cut-off — the same function the summary API answers with — and
the per-committee totals are computed once here for both the PDF and the workbook.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from data.domain import rules
from data.domain.deadlines import Deadlines
from data.models import (
    Alert,
    Case,
    Committee,
    Compound,
    Gate,
    HealthCheckIn,
    HomeObservation,
    Person,
    ReturneeRegistration,
    Shop,
    Street,
)
from data.pipeline.events import CASE_CATEGORIES
from data.read import queries
from data.read.summary import summary
from data.store import among, states_as_of

DAY = dt.timedelta(days=1)
LONGEST = 10
SPARK_DAYS = 7
GATE_COLUMNS = ["committee", "compound", "gate", "status", "guards"]
OVERDUE_COLUMNS = ["committee", "order", "category", "state", "level", "owner", "late", "description"]
REGISTRATION_DAYS = 14
#: per-committee totals: column → heading (the PDF and the workbook's 汇总 sheet share them)
COMMITTEE_COLUMNS = {"committee": "居委", "confirmed_24h": "阳性（24小时）", "confirmed_prev": "阳性（前24小时）",
                     "change": "增减", "observing": "居家观察在观", "missed": "昨日未打卡",
                     "registrations": "返沪登记（14天）", "orders_open": "在办工单", "orders_overdue": "超时工单"}
UNASSIGNED = "（未分配居委）"
#: columns that name or reach a person: shown only inside the reader's person-level scope
PERSON_COLUMNS = ("address", "person", "phone", "description")
WITHHELD = "（限本居委）"


def cutoff_at(day: dt.date, cutoff: dt.time = dt.time(7, 0)) -> dt.datetime:
    """The cut-off moment of the briefing for ``day``, Shanghai time."""
    return dt.datetime.combine(day, cutoff, rules.SHANGHAI)


@dataclass(frozen=True)
class Report:
    """Everything the briefing and the tables show, as of ``cutoff``."""

    street: dict[str, str]
    day: dt.date
    cutoff: dt.datetime
    summary: dict[str, Any]
    committees: pd.DataFrame  # COMMITTEE_COLUMNS, one row per committee (+ UNASSIGNED when needed)
    trend: pd.DataFrame  # 14 rows, oldest first: day, one column per category
    committee_trend: pd.DataFrame  # per committee and category: the daily counts of the 7 days to the cut-off
    overdue: pd.DataFrame  # action items: overdue orders with their owner, 催办/督办 and how late, latest first
    supervised: pd.DataFrame  # action items: the overdue orders gone up to 督办, which the meeting reviews
    tier_changes: pd.DataFrame  # action items: compounds whose tier changes today or tomorrow
    orders_by_category: pd.DataFrame
    longest_open: pd.DataFrame
    gates: pd.DataFrame  # closed or understaffed at the cut-off
    understaffed: pd.DataFrame  # action items: the gates among those with fewer guards than required
    observations_started: pd.DataFrame
    observations_ending: pd.DataFrame  # today and tomorrow
    missed_checkins: pd.DataFrame
    shops: pd.DataFrame  # closed or unverified (workbook); the briefing summarises them (shop_summary)
    shop_summary: pd.DataFrame  # per committee: closed, unverified, open
    alerts: pd.DataFrame  # last 24 h
    registrations: pd.DataFrame  # workbook: per committee, masked
    observations: pd.DataFrame  # workbook: active at the cut-off, day N/14 and check-in status
    orders: pd.DataFrame  # workbook: open at the cut-off or closed in the last 24 h, with SLA status
    #: the briefing map's points by layer, [lng, lat] each: read by dashboard.briefing.make in the
    #: report's own session (the map's layers are above this package), so they are the same moment's
    marks: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def withheld(self, committees: set[str]) -> Report:
        """The report for a reader who sees persons only in ``committees`` (names): elsewhere
        the rows stay (counts and places), their person-level cells read WITHHELD."""
        def shown(df: pd.DataFrame) -> pd.DataFrame:
            cols = [c for c in PERSON_COLUMNS if c in df.columns]
            if not cols or df.empty or "committee" not in df.columns:
                return df
            df = df.copy()
            df.loc[~df["committee"].isin(committees), cols] = WITHHELD
            return df

        return replace(self, **{f.name: shown(getattr(self, f.name)) for f in fields(self)
                                if isinstance(getattr(self, f.name), pd.DataFrame)})

    def ending_today(self) -> int:
        """Observations whose term ends on the briefing's day."""
        return 0 if self.observations_ending.empty else int((self.observations_ending["ends"] == "今日").sum())

    def totals(self) -> dict[str, int]:
        """The committee table's column sums (the workbook's 合计 row)."""
        return {c: int(self.committees[c].sum()) for c in COMMITTEE_COLUMNS if c != "committee"}


def _local(t: dt.datetime | None) -> str:
    return "" if t is None else t.astimezone(rules.SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def build(session: Session, street_id: str, cutoff: dt.datetime, datasets: Path, policy: Deadlines) -> Report:
    """The report of ``street_id`` frozen at ``cutoff`` (its headline and tables from one reading of the orders)."""
    with queries.one_reading(session):
        return _build(session, street_id, cutoff, datasets, policy)


def _build(session: Session, street_id: str, cutoff: dt.datetime, datasets: Path, policy: Deadlines) -> Report:
    street = session.get(Street, street_id)
    if street is None:
        raise LookupError(f"street {street_id!r} is not loaded")
    day = rules.local_day(cutoff)
    names = dict(session.execute(select(Committee.id, Committee.name).where(Committee.street_id == street_id)
                                 .order_by(Committee.id)).all())
    per: dict[str, dict[str, Any]] = {cid: {c: 0 for c in COMMITTEE_COLUMNS} | {"committee": name}
                                      for cid, name in names.items()}

    def row(committee_id: str | None) -> dict[str, Any]:
        key = committee_id if committee_id in per else UNASSIGNED
        return per.setdefault(key, {c: 0 for c in COMMITTEE_COLUMNS} | {"committee": UNASSIGNED})

    # cases: per committee, and the 14-day trend
    cases = session.execute(select(Case.category, Case.reported_at, Compound.committee_id)
                            .join(Compound, Compound.id == Case.compound_id)
                            .where(Compound.street_id == street_id, Case.reported_at > cutoff - 14 * DAY,
                                   Case.reported_at <= cutoff)).all()
    trend = {k: {c: 0 for c in CASE_CATEGORIES} for k in range(14)}
    spark: dict[tuple[str, str], list[int]] = {}  # (committee name, category) → 7 daily counts, oldest first
    for category, reported_at, committee_id in cases:
        age = int((cutoff - reported_at) / DAY)  # 0: the 24 h to the cut-off
        trend[age][category] += 1
        if age < SPARK_DAYS:
            days = spark.setdefault((names.get(committee_id, UNASSIGNED), category), [0] * SPARK_DAYS)
            days[SPARK_DAYS - 1 - age] += 1
        if category in rules.POSITIVE and age < 2:
            row(committee_id)["confirmed_24h" if age == 0 else "confirmed_prev"] += 1
    trend_df = pd.DataFrame([{"day": (day - k * DAY), **trend[k]} for k in range(13, -1, -1)])

    # observations as they stood at the cut-off
    obs_rows = session.execute(select(HomeObservation, Compound.committee_id, Compound.name, Person.id_masked)
                               .join(Compound, Compound.id == HomeObservation.compound_id)
                               .join(Person, Person.id == HomeObservation.person_id)  # not one query per row
                               .where(Compound.street_id == street_id, HomeObservation.start_at <= cutoff)
                               .order_by(HomeObservation.start_at, HomeObservation.id)).all()
    periods = queries.observation_periods(session, [o for o, *_ in obs_rows], cutoff)
    day_start = rules.day_start(cutoff)
    checked = {oid: ts for oid, ts in session.execute(
        select(HealthCheckIn.observation_id, HealthCheckIn.ts).where(
            HealthCheckIn.ts >= day_start - DAY, HealthCheckIn.ts <= cutoff,
            HealthCheckIn.observation_id.in_([o.id for o, *_ in obs_rows])).order_by(HealthCheckIn.ts))}
    yesterday = set(session.scalars(select(HealthCheckIn.observation_id).where(
        HealthCheckIn.ts >= day_start - DAY, HealthCheckIn.ts < day_start)))
    started, ending, missed, active = [], [], [], []
    for obs, committee_id, compound, person in obs_rows:
        p = periods[obs.id]
        base = {"committee": names.get(committee_id, UNASSIGNED), "compound": compound, "address": obs.address,
                "person": person, "start": _local(obs.start_at), "planned_end": _local(p.planned_end)}
        if obs.start_at > cutoff - DAY:
            started.append(base)
        if not p.active:
            continue
        row(committee_id)["observing"] += 1
        ends = rules.local_day(p.planned_end)
        if ends in (day, day + DAY):
            ending.append(base | {"ends": "今日" if ends == day else "明日"})
        if obs.start_at < day_start - DAY and obs.id not in yesterday:
            missed.append(base | {"day": f"{p.day}/{p.days}"})
            row(committee_id)["missed"] += 1
        last = checked.get(obs.id)
        active.append(base | {"day": f"{p.day}/{p.days}", "checked_in_today": last is not None and last >= day_start,
                              "last_checkin": _local(last)})
    obs_cols = ["committee", "compound", "address", "person", "start", "planned_end"]

    # returnee registrations of the last 14 days (masked)
    regs = []
    reg_from = cutoff - REGISTRATION_DAYS * DAY
    for reg in session.scalars(select(ReturneeRegistration).where(
            ReturneeRegistration.created_at > reg_from, ReturneeRegistration.created_at <= cutoff,
            ReturneeRegistration.committee_id.in_(list(names)))
            .order_by(ReturneeRegistration.created_at, ReturneeRegistration.id)):
        row(reg.committee_id)["registrations"] += 1
        regs.append({"committee": names[reg.committee_id], "person": reg.person_masked, "phone": reg.phone_masked or "",
                     "origin": reg.origin, "status": reg.status, "gate": reg.gate_id or "",
                     "created": _local(reg.created_at)})

    # work orders at the cut-off (the same set and clocks as the summary's counts)
    orders, by_cat, late_rows = [], {}, []
    for order, state in queries.street_orders(session, street_id, cutoff):
        name = state.get("state", order.state)
        committee_id = state.get("committee_id", order.committee_id)
        clocks = queries.order_clocks(order, state, cutoff, policy)
        late = max((c.overdue_by for c in clocks), default=dt.timedelta(0))
        cat = by_cat.setdefault(order.category, {"category": order.category, "opened_24h": 0, "closed_24h": 0,
                                                 "open": 0, "overdue": 0})
        cat["opened_24h"] += order.created_at > cutoff - DAY
        closed_now = name == "closed" and any(e.to_state == "closed" and cutoff - DAY < e.ts <= cutoff
                                              for e in order.steps)
        cat["closed_24h"] += closed_now
        is_open = name in rules.OPEN_STATES
        if not (is_open or closed_now):
            continue
        overdue = is_open and late > dt.timedelta(0)
        if is_open:
            cat["open"] += 1
            cat["overdue"] += overdue
            row(committee_id)["orders_open"] += 1
            row(committee_id)["orders_overdue"] += overdue
        sla_text = queries.clock_text(policy, clocks, cutoff) if is_open else "已关闭"
        if overdue:
            late_rows.append({"committee": names.get(committee_id, UNASSIGNED), "order": order.id,
                              "category": order.category, "state": name, "level": state.get("level") or "",
                              "owner": state.get("assignee") or order.assignee or "（未派）", "late": late,
                              "description": order.description})
        orders.append({"committee": names.get(committee_id, UNASSIGNED), "order": order.id,
                       "category": order.category, "priority": state.get("priority", order.priority), "state": name,
                       "created": _local(order.created_at),
                       "open_hours": round((cutoff - order.created_at) / dt.timedelta(hours=1), 1),
                       "sla": sla_text, "description": order.description})
    orders_df = _frame(orders, ["committee", "order", "category", "priority", "state", "created", "open_hours",
                                "sla", "description"])
    open_orders = orders_df[orders_df["sla"] != "已关闭"]

    # gates and shops as they stood at the cut-off
    gate_rows = session.execute(select(Gate, Compound.name, Compound.committee_id).join(Compound)
                                .where(Compound.street_id == street_id).order_by(Gate.id)).all()
    gstates = states_as_of(session, "gate", cutoff, [g.id for g, _, _ in gate_rows])
    on_duty = queries.guards_on_duty(session, gstates, cutoff)
    gates = []
    for g, compound, cid in gate_rows:
        st = gstates.get(g.id)
        guards = on_duty.get(g.id, 0)
        if st is not None and (st["status"] == "closed" or guards < g.guards_required):
            gates.append({"committee": names.get(cid, UNASSIGNED), "compound": compound, "gate": g.name,
                          "status": st["status"], "guards": f"{guards}/{g.guards_required}",
                          "short": guards < g.guards_required})
    shop_rows = session.scalars(select(Shop).where(Shop.street_id == street_id).order_by(Shop.id)).all()
    sstates = states_as_of(session, "shop", cutoff, [s.id for s in shop_rows])
    shops = [{"committee": names.get(s.committee_id, UNASSIGNED), "shop": s.name, "category": s.category,
              "status": sstates[s.id]["status"], "last_report": _local(_parse(sstates[s.id].get("last_report_at")))}
             for s in shop_rows if s.id in sstates and sstates[s.id]["status"] in ("closed", "unverified")]

    shop_summary = pd.DataFrame([{"committee": names.get(s.committee_id, UNASSIGNED),
                                  "status": sstates[s.id]["status"]} for s in shop_rows if s.id in sstates],
                                columns=["committee", "status"])
    shop_summary = (pd.crosstab(shop_summary["committee"], shop_summary["status"])
                    .reindex(columns=["closed", "unverified", "open"], fill_value=0).reset_index()
                    if not shop_summary.empty else _frame([], ["committee", "closed", "unverified", "open"]))

    alerts = [{"time": _local(a.ts), "kind": a.kind, "severity": a.severity, "message": a.message}
              for a in session.scalars(select(Alert).where(Alert.ts > cutoff - DAY, Alert.ts <= cutoff,
                                                           Alert.geom.is_not(None)).order_by(Alert.ts.desc(), Alert.id))
              if street.geom.covers(a.geom)]

    overdue = sorted(late_rows, key=lambda r: r["late"], reverse=True)
    for r in overdue:
        r["late"] = rules.duration_text(r["late"])
    committees = pd.DataFrame(list(per.values()), columns=list(COMMITTEE_COLUMNS))
    committees["change"] = committees["confirmed_24h"] - committees["confirmed_prev"]
    return Report(
        street={"id": street.id, "name": street.name, "district": street.district}, day=day, cutoff=cutoff,
        summary=summary(session, street_id, cutoff, datasets, policy), committees=committees, trend=trend_df,
        committee_trend=_frame([{"committee": c, "category": k, "days": v} for (c, k), v in sorted(spark.items())],
                               ["committee", "category", "days"]),
        overdue=_frame(overdue, OVERDUE_COLUMNS),
        supervised=_frame([r for r in overdue if r["level"] == "supervised"], OVERDUE_COLUMNS),
        tier_changes=_frame(_tier_changes(session, street_id, cutoff, names),
                            ["committee", "compound", "when", "from_tier", "to_tier"]),
        orders_by_category=_frame(sorted(by_cat.values(), key=lambda r: r["category"]),
                                  ["category", "opened_24h", "closed_24h", "open", "overdue"]),
        longest_open=open_orders.sort_values("open_hours", ascending=False, kind="stable").head(LONGEST),
        gates=_frame([{k: v for k, v in g.items() if k != "short"} for g in gates], GATE_COLUMNS),
        understaffed=_frame([{k: v for k, v in g.items() if k != "short"} for g in gates if g["short"]], GATE_COLUMNS),
        observations_started=_frame(started, obs_cols),
        observations_ending=_frame(ending, [*obs_cols, "ends"]),
        missed_checkins=_frame(missed, [*obs_cols, "day"]),
        shops=_frame(shops, ["committee", "shop", "category", "status", "last_report"]), shop_summary=shop_summary,
        alerts=_frame(alerts, ["time", "kind", "severity", "message"]),
        registrations=_frame(regs, ["committee", "person", "phone", "origin", "status", "gate", "created"]),
        observations=_frame(active, [*obs_cols, "day", "checked_in_today", "last_checkin"]),
        orders=orders_df)


def _tier_changes(session: Session, street_id: str, cutoff: dt.datetime, names: dict[str, str]) -> list[dict[str, Any]]:
    """Compounds whose tier on the briefing's day (or the next) differs from the day before, by
    the positive cases reported up to the cut-off: a compound to seal, or one whose 封控 or 管控
    ends — what the morning meeting has to staff or lift."""
    day = rules.local_day(cutoff)
    newest = queries.newest_positive(session, street_id, rules.day_start(cutoff) - 15 * DAY, cutoff)
    compounds = {c.id: c for c in session.scalars(select(Compound).where(among(Compound.id, newest)))}
    out = []
    for cid, t in sorted(newest.items(), key=lambda item: compounds[item[0]].name):
        tiers = [rules.tier([rules.local_day(t)], day + k * DAY) for k in (-1, 0, 1)]
        for when, before, after in (("今日", tiers[0], tiers[1]), ("明日", tiers[1], tiers[2])):
            if before != after:
                out.append({"committee": names.get(compounds[cid].committee_id or "", UNASSIGNED),
                            "compound": compounds[cid].name, "when": when, "from_tier": before, "to_tier": after})
    return out


def _parse(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)
