"""Officer actions: what a street officer can do to a map point, turned into stream events.

Why events, not direct writes: an action taken on a phone must travel the same validation and
ingest pipeline as every other producer, so the big screen, the history and the briefing see
it like any event. ``submit`` refuses at once what the pipeline would refuse (the contract's
validation, then ingest's own handlers in a rolled-back transaction), appends the rest, and
waits briefly for ingest to report the outcome.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from data.domain import rules
from data.domain.labels import label
from data.domain.privacy import Hasher
from data.pipeline import events, ingest, streams
from data.pipeline.events import EventError
from data.read import queries
from data.settings import Config

REPLY_WAIT_S = 5.0


@dataclass(frozen=True)
class Field:
    """One input of an action's form; ``options`` make it a choice (value, label)."""

    name: str
    label: str
    kind: str = "text"  # text | number | choice | check (a confirmation: never sent in the event)
    required: bool = False
    options: tuple[tuple[str, str], ...] = ()
    #: the range a value usually falls in; outside it the officer confirms (a typo, or a real 45 °C?)
    plausible: tuple[float, float] | None = None


@dataclass(frozen=True)
class Action:
    """An action on one kind of map point (a layer id), and the stream its event goes to."""

    id: str
    label: str
    layer: str
    stream: str
    fields: tuple[Field, ...] = ()


NOTE = Field("note", "备注")
GATE_STATUS = tuple((s, label(s)) for s in ("open", "restricted", "closed"))
SHOP_STATUS = (("open", "营业"), ("closed", "关闭"), ("unverified", "待核实"))


ACTIONS: tuple[Action, ...] = (
    Action("accept", "接单", "workorders", "workorders", (NOTE,)),
    Action("arrive", "到场", "workorders", "workorders", (NOTE,)),
    Action("resolve", "办结", "workorders", "workorders", (Field("note", "办理结果", required=True),)),
    Action("gate_status", "更新出入口", "gates", "facilities",
           (Field("status", "状态", "choice", True, GATE_STATUS), Field("guards_on_duty", "在岗人数", "number", True))),
    Action("shop_status", "核实商铺", "shops", "facilities", (Field("status", "状态", "choice", True, SHOP_STATUS),)),
    Action("health_checkin", "代为健康打卡", "observations", "health",
           (Field("temperature", "体温 °C", "number", True, plausible=(35.0, 42.0)), Field("symptoms", "症状"),
            Field("confirm", "体温确认无误", "check"))),
    Action("correct_checkin", "更正最近一次打卡", "observations", "health",
           (Field("temperature", "体温 °C", "number", True, plausible=(35.0, 42.0)), Field("symptoms", "症状"),
            Field("confirm", "体温确认无误", "check"))),
    Action("extend", "延长观察", "observations", "observations", (Field("days", "延长天数", "number", True), NOTE)),
    Action("end", "结束观察", "observations", "observations",
           (Field("reason", "原因", "choice", True, tuple((r, label(r)) for r in events.END_REASONS)), NOTE)),
    Action("start_observation", "新增居家观察", "compounds", "cases", (Field("person_id", "身份证号", required=True),)),
)
BY_ID = {a.id: a for a in ACTIONS}


def for_layer(layer: str) -> list[Action]:
    return [a for a in ACTIONS if a.layer == layer]


def available(layer: str, detail: Mapping[str, Any] | None) -> list[Action]:
    """The actions a point's state allows now: an order's next steps only, nothing on an
    observation that has ended (an officer is not offered a button that can only be refused)."""
    if detail is None:
        return []
    if layer == "workorders":
        allowed = set(rules.allowed_actions(detail.get("state")))
        return [a for a in for_layer(layer) if a.id in allowed]
    if layer == "observations" and not detail.get("active", True):
        return []
    if layer == "observations" and not detail.get("checkins"):  # nothing recorded yet: nothing to correct
        return [a for a in for_layer(layer) if a.id != "correct_checkin"]
    return for_layer(layer)


@dataclass(frozen=True)
class Result:
    """What became of an action: ``ok`` with ``pending`` when ingest has not answered yet."""

    ok: bool
    message: str
    event_id: str | None = None
    pending: bool = False
    errors: tuple[events.FieldError, ...] = ()


#: the longest text a form field takes (the contract's longest free text, a note); the page's
#: inputs stop there (maxlength) and ``read_form`` refuses more
FORM_TEXT_MAX = 2000


def read_form(action: Action, values: Any) -> dict[str, Any]:
    """A form as the officer's page sends it (assets/officer.js: each field's text, a confirmation
    as ``["yes"]`` or ``[]``), refused unless it holds only the action's fields within bounds —
    with an EventError naming each field, whether a person typed it or a script forged it."""
    if not isinstance(values, dict) or len(values) > len(action.fields):
        raise EventError([events.FieldError("form", f"must hold at most the {len(action.fields)} fields "
                                                    f"of {action.id}")])
    fields = {f.name: f for f in action.fields}
    errors, form = [], {}
    for name, value in values.items():
        f = fields.get(name)
        if f is None:
            errors.append(events.FieldError(str(name)[:40], f"not a field of {action.id}"))
        elif f.kind == "check" and value not in ([], ["yes"]):
            errors.append(events.FieldError(name, 'must be [] or ["yes"]'))
        elif f.kind != "check" and not isinstance(value, str):
            errors.append(events.FieldError(name, "must be text"))
        elif f.kind != "check" and len(value) > FORM_TEXT_MAX:
            errors.append(events.FieldError(name, f"longer than {FORM_TEXT_MAX} characters"))
        else:
            form[name] = value
    if errors:
        raise EventError(errors)
    return form


def _value(f: Field, raw: Any) -> Any:
    """A form value as the contract wants it; what cannot be converted is passed on for the
    contract's validation to name (so the message is the same as for any producer)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if f.kind == "number" and isinstance(raw, str):
        try:
            number = float(raw)
        except ValueError:
            return raw
        return int(number) if number.is_integer() else number
    return raw.strip() if isinstance(raw, str) else raw


def build(action: Action, entity_id: str, form: Mapping[str, Any], officer: str, at: dt.datetime) -> dict[str, Any]:
    """The event an action stands for (not yet validated)."""
    values = {f.name: _value(f, form.get(f.name)) for f in action.fields if f.kind != "check"}
    values = {k: v for k, v in values.items() if v is not None}
    ev: dict[str, Any] = {"event_id": f"officer-{uuid.uuid4().hex}", "ts": at.astimezone(rules.SHANGHAI).isoformat()}
    if action.stream == "workorders":
        return ev | {"order_id": entity_id, "action": action.id, "assignee": officer} | values
    if action.stream == "facilities":
        return ev | {"facility_id": entity_id, "reporter": officer} | values
    if action.stream == "health":  # a correction names the check-in it puts right (submit finds it)
        corrects = {"corrects": form["corrects"]} if form.get("corrects") else {}
        return ev | {"observation_id": _id(entity_id), "reporter": officer} | values | corrects
    if action.stream == "observations":
        return ev | {"observation_id": _id(entity_id), "action": action.id, "reporter": officer} | values
    return ev | {"category": "home_observation", "compound_id": entity_id, "source": f"officer:{officer}"} | values


def _id(entity_id: str) -> int | str:
    return int(entity_id) if entity_id.isdigit() else entity_id


def submit(engine: Engine, client: redis.Redis, config: Config, action_id: str, entity_id: str,
           form: Mapping[str, Any], officer: str, wait_s: float = REPLY_WAIT_S) -> Result:
    """Validate, check against the current state, append with a reply request, await the outcome."""
    action = BY_ID.get(action_id)
    if action is None:
        return Result(False, f"action: unknown action {action_id!r}")
    missing = [events.FieldError(f.name, "required") for f in action.fields
               if f.required and _value(f, form.get(f.name)) is None]
    if not officer.strip():
        missing.insert(0, events.FieldError("reporter", "enter your name first"))
    if missing:
        return Result(False, "; ".join(map(str, missing)), errors=tuple(missing))
    doubtful = [events.FieldError(f.name, f"{value:g} 不在常见范围 {f.plausible[0]:g}–{f.plausible[1]:g} 内：请核对；"
                                          "确实如此请勾选“确认无误”再提交")
                for f in action.fields if f.plausible is not None
                and isinstance(value := _value(f, form.get(f.name)), int | float)
                and not f.plausible[0] <= value <= f.plausible[1]]
    if doubtful and not form.get("confirm"):
        return Result(False, "; ".join(map(str, doubtful)), errors=tuple(doubtful))
    if action.id == "correct_checkin":
        with Session(engine) as session:
            latest = queries.latest_checkin(session, int(entity_id)) if entity_id.isdigit() else None
        if latest is None:
            return Result(False, "corrects: 该观察对象尚无打卡可更正")
        form = {**form, "corrects": latest}
    raw = build(action, entity_id, form, officer.strip(), dt.datetime.now(dt.UTC))
    try:
        ev = events.validate(action.stream, raw, Hasher.from_config(config),
                             dt.timedelta(minutes=config.max_future_minutes))
    except EventError as exc:
        return Result(False, str(exc), errors=tuple(exc.errors))
    problem = ingest.dry_run(engine, config, ev)
    if problem is not None:
        field, _, text = problem.partition(": ")
        return Result(False, problem, ev.event_id, errors=(events.FieldError(field, text),))
    entry_id = streams.append(client, action.stream, [events.sealed(ev)], reply=True, sealed=True)[0]
    outcome = streams.wait_reply(client, action.stream, entry_id, wait_s)
    if outcome is None:
        return Result(True, "已提交，等待入库", ev.event_id, pending=True)
    if not outcome["ok"]:
        return Result(False, outcome["reason"], ev.event_id)
    return Result(True, f"{action.label}：已完成", ev.event_id)
