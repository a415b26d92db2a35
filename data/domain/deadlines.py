"""12345 deadlines as the city counts them: by the order's kind, in hours or in working days of
China's official calendar (public holidays and the weekend days swapped to working days, 调休).

Why a policy object: the map, the officer's list, the drill-down, the briefing and the ingest
sweep that raises 催办/督办 all ask "when is this order due, and how much is left?" — one
answer, from one place, so they can never disagree.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from functools import cache, lru_cache

import chinese_calendar
from chinese_calendar import constants as calendar_data

from data.domain import rules
from data.settings import Config

log = logging.getLogger(__name__)

#: unit → what it counts: clock time (m, h, d) or working days (wd), due at the end of office hours
UNITS = {"m": dt.timedelta(minutes=1), "h": dt.timedelta(hours=1), "d": dt.timedelta(days=1), "wd": None}


@dataclass(frozen=True)
class Span:
    """An allowance: ``2h`` of clock time or ``5wd`` working days."""

    amount: int
    unit: str

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


def parse_span(text: str) -> Span:
    m = re.fullmatch(r"\s*(\d+)\s*(wd|m|h|d)\s*", text)
    if not m or int(m[1]) > 10_000:
        raise ValueError(f"bad allowance {text!r}: expected e.g. 30m, 2h, 1d or 5wd (working days)")
    return Span(int(m[1]), m[2])


def parse_rules(text: str, categories: tuple[str, ...]) -> dict[str, Span]:
    """``complaint=5wd,quarantine_violation=2h`` → the allowance of each order kind; every kind
    needs one (a kind without a deadline would never be overdue)."""
    out: dict[str, Span] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, span = part.partition("=")
        if name.strip() not in categories:
            raise ValueError(f"unknown order kind {name.strip()!r} (one of {', '.join(categories)})")
        out[name.strip()] = parse_span(span)
    missing = [c for c in categories if c not in out]
    if missing:
        raise ValueError(f"no deadline for {', '.join(missing)}")
    return out


@dataclass(frozen=True)
class OfficeHours:
    """When the street office works: a working-day deadline falls due at the end of its day."""

    start: dt.time
    end: dt.time

    @classmethod
    def parse(cls, text: str) -> OfficeHours:
        m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
        if not m:
            raise ValueError(f"bad office hours {text!r}: expected e.g. 09:00-17:00")
        try:  # 24:00 ends the day (hours round the clock: 00:00-24:00)
            start = dt.time(int(m[1]), int(m[2]))
            end = dt.time.max if (m[3], m[4]) == ("24", "00") else dt.time(int(m[3]), int(m[4]))
        except ValueError as exc:
            raise ValueError(f"bad office hours {text!r}: {exc}") from None
        if end <= start:
            raise ValueError(f"bad office hours {text!r}: they end before they start")
        return cls(start, end)


@dataclass
class WorkCalendar:
    """China's working days from ``chinese-calendar`` (holidays and 调休 as the State Council
    publishes them). A year it does not know yet counts Monday to Friday and is remembered, so
    /healthz and the log say that deadlines in it ignore holidays until the package is updated."""

    known: tuple[int, int] = field(default_factory=lambda: (min(calendar_data.holidays).year,
                                                            max(calendar_data.holidays).year))
    fallback_years: set[int] = field(default_factory=set)

    def is_workday(self, day: dt.date) -> bool:
        if self.known[0] <= day.year <= self.known[1]:
            return _listed_workday(day)
        if day.year not in self.fallback_years:
            self.fallback_years.add(day.year)
            log.warning("the holiday calendar has no data for %d (it knows %d–%d): working days there are "
                        "Monday to Friday until chinese-calendar is updated", day.year, *self.known)
        return day.weekday() < 5

    def after(self, day: dt.date, n: int) -> dt.date:
        """The ``n``-th working day after ``day`` (the day of receipt never counts)."""
        while n > 0:
            day += dt.timedelta(days=1)
            n -= self.is_workday(day)
        return day

    def between(self, first: dt.date, last: dt.date) -> int:
        """Working days after ``first`` up to and including ``last``."""
        return sum(self.is_workday(first + dt.timedelta(days=i)) for i in range(1, (last - first).days + 1))

    def health(self, now: dt.datetime) -> dict[str, object]:
        """What /healthz shows: the years known, and every year counted by weekends only — the ones
        a deadline fell in so far, and this year and the next when the package does not know them
        (a deadline set in December may fall in January)."""
        ahead = {y for y in (now.year, now.year + 1) if not self.known[0] <= y <= self.known[1]}
        return {"known": f"{self.known[0]}-{self.known[1]}", "weekends_only": sorted(self.fallback_years | ahead)}


@lru_cache(maxsize=4096)
def _listed_workday(day: dt.date) -> bool:
    """``chinese_calendar.is_workday``, remembered: it checks its argument and three tables on every
    call, and a briefing asks about the same few weeks of days for every open order."""
    return chinese_calendar.is_workday(day)


#: one calendar per process, so /healthz sees every year any deadline fell back on
CALENDAR = WorkCalendar()


@dataclass(frozen=True)
class Deadlines:
    """The order clocks the settings give: per priority, milestone targets counted from creation
    (dispatch, arrive: operational, in clock time); per kind, the 12345 deadline to resolve
    (办结时限) and the further period after which an order still open goes up to 督办."""

    sla: dict[str, dict[str, dt.timedelta]]
    by_kind: dict[str, Span]
    supervise_after: Span
    office: OfficeHours
    calendar: WorkCalendar = field(default_factory=lambda: CALENDAR)

    def add(self, t: dt.datetime, span: Span) -> dt.datetime:
        """``t`` plus ``span``: clock time, or the end of office hours of the N-th working day after."""
        step = UNITS[span.unit]
        if step is not None:
            return t + span.amount * step
        day = self.calendar.after(rules.local_day(t), span.amount)
        return dt.datetime.combine(day, self.office.end, rules.SHANGHAI)

    def due(self, category: str, created_at: dt.datetime) -> dt.datetime:
        return self.add(created_at, self.by_kind.get(category, self.by_kind["other"]))

    def supervise_at(self, category: str, created_at: dt.datetime) -> dt.datetime:
        return self.add(self.due(category, created_at), self.supervise_after)

    def remaining(self, due: dt.datetime, at: dt.datetime) -> str:
        """How a person reads the clock at ``at``: 剩余 2 个工作日, 剩余 3 小时 5 分, 超时 3 小时 0 分."""
        if at >= due:
            return f"超时 {rules.duration_text(at - due)}"
        days = self.calendar.between(rules.local_day(at), rules.local_day(due))
        return f"剩余 {days} 个工作日" if days else f"剩余 {rules.duration_text(due - at)}"


def of(config: Config) -> Deadlines:
    """The deadlines the settings give (cached per configuration: parsed once, not per request)."""
    return _of(config.sla_urgent, config.sla_normal, config.order_deadlines, config.supervise_after,
               config.office_hours)


@cache
def _of(urgent: str, normal: str, by_kind: str, supervise_after: str, office: str) -> Deadlines:
    from data.pipeline.events import WORK_ORDER_CATEGORIES

    return Deadlines({"urgent": rules.parse_sla(urgent), "normal": rules.parse_sla(normal)},
                     parse_rules(by_kind, WORK_ORDER_CATEGORIES), parse_span(supervise_after),
                     OfficeHours.parse(office))
