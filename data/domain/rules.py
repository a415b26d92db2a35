"""The street's rules as plain functions: work-order states and SLA clocks, home-observation
days, 2022 three-zone tiers, and the thresholds alerts use.

Why plain functions over data: ingest applies them to events, the map and the briefing ask
them about any moment ("overdue at 07:00?"), and tests call them directly.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
FEVER_C = 37.3
OBSERVATION_DAYS = 14
ALERT_CODES = {"yellow": "medium", "red": "high"}

# --- work orders ------------------------------------------------------------------------

#: action → (states it may follow, state it leads to); "create" starts from nothing
TRANSITIONS: dict[str, tuple[frozenset[str | None], str]] = {
    "create": (frozenset({None}), "created"),
    "dispatch": (frozenset({"created", "reopened", "escalated"}), "dispatched"),
    "accept": (frozenset({"dispatched"}), "accepted"),
    "arrive": (frozenset({"accepted"}), "arrived"),
    "resolve": (frozenset({"accepted", "arrived"}), "resolved"),
    "close": (frozenset({"resolved"}), "closed"),
    "reopen": (frozenset({"resolved", "closed"}), "reopened"),
    "escalate": (frozenset({"created", "dispatched", "accepted", "arrived", "reopened"}), "escalated"),
    "cancel": (frozenset({"created", "dispatched", "accepted", "reopened", "escalated"}), "cancelled"),
}
OPEN_STATES = frozenset({"created", "dispatched", "accepted", "arrived", "reopened", "escalated"})
#: marks an open order gets from the clock: 催办 at its deadline, 督办 a further period later; they
#: leave its state as it is and raise its ``level`` (the higher mark stays)
MARKS = {"remind": "reminded", "supervise": "supervised"}
#: the SLA milestone each action completes
MILESTONE_OF = {"dispatch": "dispatch", "arrive": "arrive", "resolve": "resolve"}


class IllegalTransition(ValueError):
    """An action that the order's current state does not allow."""


def allowed_actions(state: str | None) -> list[str]:
    return sorted(a for a, (frm, _) in TRANSITIONS.items() if state in frm)


def next_state(state: str | None, action: str) -> str:
    """The state after ``action``, or IllegalTransition naming what the state allows."""
    if action in MARKS:
        if state not in OPEN_STATES:
            raise IllegalTransition(f"cannot {action} an order in state {state or 'none'} (only an open one)")
        return state
    allowed, target = TRANSITIONS[action]
    if state not in allowed:
        raise IllegalTransition(f"cannot {action} an order in state {state or 'none'}"
                                f" (allowed: {', '.join(allowed_actions(state)) or 'nothing'})")
    return target


def raised_level(level: str | None, action: str) -> str | None:
    """The order's mark after ``action``: 督办 outranks 催办, whatever arrives last."""
    marks = [None, *MARKS.values()]
    return max(level, MARKS.get(action), key=marks.index)


def parse_sla(text: str) -> dict[str, dt.timedelta]:
    """``dispatch=5m,arrive=30m,resolve=2h`` → milestone deadlines from creation."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"(dispatch|arrive|resolve)=(\d+)([smhd])", part)
        if not m:
            raise ValueError(f"bad SLA entry {part!r}: expected e.g. dispatch=5m")
        out[m[1]] = dt.timedelta(seconds=int(m[2]) * units[m[3]])
    return out


@dataclass(frozen=True)
class Clock:
    """One SLA milestone of an order at a moment: its deadline, when met, how late."""

    milestone: str
    deadline: dt.datetime
    met_at: dt.datetime | None
    overdue_by: dt.timedelta  # zero when on time (so far)

    @property
    def overdue(self) -> bool:
        return self.overdue_by > dt.timedelta(0)


def sla_clocks(created_at: dt.datetime, sla: Mapping[str, dt.timedelta],
               milestones: Mapping[str, dt.datetime], at: dt.datetime,
               closed_at: dt.datetime | None = None) -> list[Clock]:
    """Every milestone's clock at moment ``at``. A milestone met late stays overdue by the
    delay; an unmet one counts up until the order is closed or cancelled."""
    clocks = []
    for name, allowance in sla.items():
        deadline = created_at + allowance
        met = milestones.get(name)
        if met is not None and met > at:
            met = None  # not yet met at that moment
        end = met or (closed_at if closed_at is not None and closed_at <= at else at)
        clocks.append(Clock(name, deadline, met, max(end - deadline, dt.timedelta(0))))
    return clocks


# --- home observation -----------------------------------------------------------------------


def observation_day(start: dt.datetime, at: dt.datetime) -> int:
    """Day N of observation at ``at``: day 1 is the first 24 hours, day 14 the last before the
    planned end (start + 14 days), so N never exceeds 14 while the observation runs."""
    return (at - start) // dt.timedelta(days=1) + 1


def observation_days(start: dt.datetime, planned_end: dt.datetime) -> int:
    """The observation's length in days: 14, or more once extended (so "day N of M", not N/14)."""
    return round((planned_end - start) / dt.timedelta(days=1))


def observation_progress(start: dt.datetime, planned_end: dt.datetime, at: dt.datetime) -> str:
    """第N/M天 at ``at``, M the observation's real length."""
    days = observation_days(start, planned_end)
    return f"第{max(1, min(observation_day(start, at), days))}/{days}天"


def observation_active(start: dt.datetime, planned_end: dt.datetime, ended_at: dt.datetime | None,
                       at: dt.datetime) -> bool:
    """Under observation at ``at``: started, not ended, not past its (possibly extended) end."""
    return start <= at < planned_end and (ended_at is None or at < ended_at)


def planned_end(start: dt.datetime, days: int = OBSERVATION_DAYS) -> dt.datetime:
    return start + dt.timedelta(days=days)


# --- 2022 three-zone tiers ------------------------------------------------------------------

#: case categories that are a positive infection: they tier a compound and make the 阳性 headline
#: (``positive`` is what the 2022 address lists published: confirmed or asymptomatic, not told apart)
POSITIVE = ("positive", "confirmed")


def tier(case_dates: Iterable[dt.date], day: dt.date) -> str:
    """封控 ``sealed`` with a positive case in the 7 days to ``day``, 管控 ``controlled`` with
    none in 7 but one in 14, otherwise 防范 ``precaution``."""
    ages = [(day - d).days for d in case_dates if d <= day]
    if any(a < 7 for a in ages):
        return "sealed"
    if any(a < 14 for a in ages):
        return "controlled"
    return "precaution"


def duration_text(span: dt.timedelta) -> str:
    """How long, as a person says it: 45 分钟, 3 小时 5 分, 2 天 4 小时."""
    minutes = int(span.total_seconds() // 60)
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    if days:
        return f"{days} 天 {hours} 小时"
    return f"{hours} 小时 {mins} 分" if hours else f"{mins} 分钟"


def local_day(t: dt.datetime) -> dt.date:
    return t.astimezone(SHANGHAI).date()


def day_start(t: dt.datetime) -> dt.datetime:
    """Midnight in Shanghai of the day ``t`` falls on: where "today" begins for the street."""
    return dt.datetime.combine(local_day(t), dt.time(), SHANGHAI)


def is_outside_shanghai(origin: str | None) -> bool:
    """A returnee's origin counts as outside unless it names Shanghai."""
    return bool(origin) and not any(k in origin.lower() for k in ("上海", "shanghai", "沪"))
