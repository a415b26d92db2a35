"""The public event contract (docs/events.md): stream names and per-stream validation.

Why declarative field specs: one validator serves the HTTP intake, the ingest worker and
the simulator, and every problem is reported as (field, problem) so a producer knows
exactly what to fix. Personal numbers are validated here and replaced by their keyed
hash and masked form at once, so nothing downstream ever holds the raw value.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal

import msgspec
import orjson

from data.domain.privacy import (
    Hasher,
    id_problem,
    mask_id,
    mask_phone,
    normalise_id,
    normalise_phone,
    phone_problem,
    scrub,
)

PREFIX = "opsmap:"
STREAMS = ("checkins", "workorders", "cases", "health", "facilities", "work", "observations", "duty", "rules")
DEAD = PREFIX + "dead"
GROUP = "opsmap-ingest"
MAX_EVENT_BYTES = 16_384
#: the order opsmap opens for a quarantine violation is ``auto-<event_id>``: producers may not use it
AUTO_ORDER = "auto-"


def stream_key(name: str) -> str:
    return PREFIX + name


@dataclass(frozen=True)
class FieldError:
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"


class EventError(ValueError):
    """An event is invalid; ``errors`` name each field and its problem."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(map(str, errors)))
        self.errors = errors


@dataclass(frozen=True)
class Event:
    """A validated event; ``data`` holds normalised fields (personal numbers hashed and masked)."""

    stream: str
    event_id: str
    ts: dt.datetime
    data: dict[str, Any]


# --- field kinds: each returns the normalised value or raises ValueError(problem) ----------


#: characters no stored text may hold: C0 controls but tab and newlines (PostgreSQL refuses NUL,
#: SQLite keeps it: refused here, so every engine behaves alike), DEL, and lone surrogates (not
#: encodable as UTF-8: a valid JSON escape that no engine can store)
_UNSTORABLE_CHARS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff"
_UNSTORABLE = re.compile(f"[{_UNSTORABLE_CHARS}]")
#: an identifier a producer chooses: visible characters, no spaces; ``#`` is kept for ids opsmap
#: derives from it (``<event_id>#released``), so a producer's id never meets a derived one
_IDENT = re.compile(r"[^\s#]+")
#: the values ``_text`` and ``_ident`` accept unchanged (nothing to strip): what the compiled
#: validator accepts; anything else takes the checks above, which normalise it or say why not
_CANON_TEXT = rf"\A(?=\S)[^{_UNSTORABLE_CHARS}]*(?<=\S)\Z"
_CANON_IDENT = rf"\A[^\s#{_UNSTORABLE_CHARS}]+\Z"


def _text(max_len: int) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if not isinstance(v, str) or not v.strip():
            raise ValueError("must be a non-empty string")
        if len(v) > max_len:
            raise ValueError(f"longer than {max_len} characters")
        bad = _UNSTORABLE.search(v)
        if bad:
            raise ValueError(f"contains the control character U+{ord(bad.group()):04X} at {bad.start()}")
        return v.strip()
    check.fast = Annotated[str, msgspec.Meta(max_length=max_len, pattern=_CANON_TEXT)]  # type: ignore[attr-defined]
    return check


def _ident(max_len: int) -> Callable[[Any], str]:
    """An id: bounded text without spaces or ``#``."""
    bounded = _text(max_len)

    def check(v: Any) -> str:
        v = bounded(v)
        if not _IDENT.fullmatch(v):
            raise ValueError("may not contain spaces or '#'")
        return v
    check.fast = Annotated[str, msgspec.Meta(max_length=max_len, pattern=_CANON_IDENT)]  # type: ignore[attr-defined]
    return check


def _free(max_len: int) -> Callable[[Any], str]:
    """Free text a person typed: bounded, and any ID-like or mobile-like number in it masked."""
    bounded = _text(max_len)

    def check(v: Any) -> str:
        return scrub(bounded(v))
    check.fast = bounded.fast  # type: ignore[attr-defined]
    check.after = scrub  # type: ignore[attr-defined]
    return check


def _names(most: int) -> Callable[[Any], list[str]]:
    """People's names in one text (``张三、李四``; commas or spaces work too): at most ``most``."""
    bounded = _text(256)

    def check(v: Any) -> list[str]:
        names = [n for n in re.split(r"[、,，;；\s]+", bounded(v)) if n]
        if len(names) > most:
            raise ValueError(f"more than {most} names")
        if any(len(n) > 32 for n in names):
            raise ValueError("a name longer than 32 characters")
        return names
    return check


def _choice(*options: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            got = repr(v)[:40] if isinstance(v, str | int | float) else type(v).__name__
            raise ValueError(f"must be one of {', '.join(options)} (got {got})")
        return str(v)
    check.fast = Literal[options]  # type: ignore[attr-defined]
    check.options = options  # type: ignore[attr-defined]  # the codes (data/domain/labels.py names each)
    return check


def _number(lo: float, hi: float, integer: bool = False) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError("must be a number")
        if (isinstance(v, int) and not -(2**53) <= v <= 2**53) or (isinstance(v, float) and not math.isfinite(v)):
            raise ValueError("must be a finite number of at most 16 digits")
        if integer and int(v) != v:
            raise ValueError("must be a whole number")
        if not lo <= v <= hi:
            raise ValueError(f"must be between {lo:g} and {hi:g} (got {v:g})")
        return int(v) if integer else float(v)
    check.fast = Annotated[int if integer else float, msgspec.Meta(ge=lo, le=hi)]  # type: ignore[attr-defined]
    return check


def parse_ts(v: Any) -> dt.datetime:
    """ISO 8601 with an offset; a time without one is refused (ambiguous across zones)."""
    if not isinstance(v, str):
        raise ValueError("must be an ISO 8601 string with offset, e.g. 2022-04-10T08:00:00+08:00")
    try:
        t = dt.datetime.fromisoformat(v)
    except ValueError:
        raise ValueError(f"not ISO 8601: {v[:40]!r}") from None
    if t.tzinfo is None:
        raise ValueError("has no UTC offset (add +08:00)")
    return t


@dataclass(frozen=True)
class Spec:
    check: Callable[[Any], Any]
    required: bool = True


def _personal(kind: str) -> Callable[[Any], str]:
    """Marker kinds: normalised (one person, one hash) and checked here, hashed in ``validate``
    where the hasher is at hand."""
    def check(v: Any) -> str:
        if not isinstance(v, str) or len(v) > 64:
            raise ValueError("must be a string (at most 64 characters)")
        v = normalise_id(v) if kind == "id" else normalise_phone(v)
        problem = id_problem(v) if kind == "id" else phone_problem(v)
        if problem:
            raise ValueError(problem)
        return v
    check.personal = kind  # type: ignore[attr-defined]
    return check


ID = _personal("id")
PHONE = _personal("phone")
LAT = _number(-90, 90)
LNG = _number(-180, 180)
WORK_ORDER_ACTIONS = ("create", "dispatch", "accept", "arrive", "resolve", "close", "reopen", "escalate", "cancel",
                      "remind", "supervise")
WORK_ORDER_CATEGORIES = ("quarantine_violation", "medical_need", "supplies", "gate", "shop", "sanitation",
                         "enquiry", "complaint", "other")
CASE_CATEGORIES = ("positive", "confirmed", "suspected", "close_contact", "home_observation", "released")
CASE_LABELS = dict(zip(CASE_CATEGORIES, ("阳性感染者", "确诊", "疑似", "密接", "居家观察", "解除观察"), strict=True))
#: alerts the rules raise, by kind
ALERT_LABELS = {"quarantine_violation": "居家观察外出", "fever": "发热", "health_code": "黄/红码",
                "closed_gate_scan": "关闭出入口扫码", "registration_required": "外省返沪待登记",
                "missed_checkin": "未健康打卡", "silent_gate": "出入口长时间无扫码"}


def public_alert(kind: str, place: str | None) -> str:
    """An alert as anyone of the street may read it — what happened and where, never who
    (screens, viewers, officers of other committees)."""
    label = ALERT_LABELS.get(kind, kind)
    return f"{label}：{place}" if place else label
WORK_TASKS = ("screening", "disinfection", "mask_reservation", "mask_distribution", "key_person_visit")
OBSERVATION_ACTIONS = ("extend", "end")
END_REASONS = ("released", "hospitalized", "moved_out", "other")
OBSERVATION_ID = _number(1, 2**31 - 1, integer=True)

SPECS: dict[str, dict[str, Spec]] = {
    "checkins": {
        "gate_id": Spec(_text(32)), "direction": Spec(_choice("in", "out")), "person_id": Spec(ID),
        "phone": Spec(PHONE, False),
        "category": Spec(_choice("resident", "returnee", "visitor", "courier", "staff")),
        "temperature": Spec(_number(30, 45)), "origin": Spec(_free(64), False),
        "health_code": Spec(_choice("green", "yellow", "red"), False),
    },
    "workorders": {
        "order_id": Spec(_ident(64 + len(AUTO_ORDER))), "action": Spec(_choice(*WORK_ORDER_ACTIONS)),
        "category": Spec(_choice(*WORK_ORDER_CATEGORIES), False), "priority": Spec(_choice("urgent", "normal"), False),
        "address": Spec(_free(128), False), "lat": Spec(LAT, False), "lng": Spec(LNG, False),
        "description": Spec(_free(2000), False), "committee_id": Spec(_text(24), False),
        "assignee": Spec(_free(64), False), "note": Spec(_free(2000), False),
    },
    "cases": {
        "person_id": Spec(ID), "category": Spec(_choice(*CASE_CATEGORIES)), "compound_id": Spec(_text(24), False),
        "address": Spec(_free(128), False), "lat": Spec(LAT, False), "lng": Spec(LNG, False),
        "source": Spec(_free(64), False),
    },
    "health": {
        "person_id": Spec(ID, False), "observation_id": Spec(OBSERVATION_ID, False),
        "temperature": Spec(_number(30, 45)), "symptoms": Spec(_free(256), False), "reporter": Spec(_free(64), False),
        "corrects": Spec(_ident(64), False),
    },
    "observations": {
        "observation_id": Spec(OBSERVATION_ID), "action": Spec(_choice(*OBSERVATION_ACTIONS)),
        "days": Spec(_number(1, 14, integer=True), False), "reason": Spec(_choice(*END_REASONS), False),
        "reporter": Spec(_free(64)), "note": Spec(_free(2000), False),
    },
    "facilities": {
        "facility_id": Spec(_text(32)), "status": Spec(_choice("open", "closed", "restricted", "unverified")),
        "guards_on_duty": Spec(_number(0, 50, integer=True), False), "reporter": Spec(_free(64)),
    },
    "duty": {
        "gate_id": Spec(_text(32)), "starts_at": Spec(parse_ts), "ends_at": Spec(parse_ts),
        "guards": Spec(_names(20), False), "reporter": Spec(_free(64)),
    },
    "rules": {"rule": Spec(_choice("silent_gate")), "gate_id": Spec(_text(32)), "since": Spec(parse_ts)},
    "work": {
        "task": Spec(_choice(*WORK_TASKS)), "target_id": Spec(_text(32)),
        "count": Spec(_number(0, 1_000_000, integer=True)), "reporter": Spec(_free(64)),
    },
}
COMMON = {"event_id": Spec(_ident(64)), "ts": Spec(parse_ts)}


def codes() -> set[str]:
    """Every code the contract defines (the options of its choice fields, the states orders
    reach, the alert kinds): what a person must never read raw."""
    from data.domain.rules import TRANSITIONS

    options = {o for spec in SPECS.values() for s in spec.values() for o in getattr(s.check, "options", ())}
    return options | {target for _, target in TRANSITIONS.values()} | set(ALERT_LABELS)


def _cross_checks(stream: str, d: Mapping[str, Any]) -> list[FieldError]:
    """Rules that tie fields together (which fields an action or a location needs)."""
    errors = []
    if stream == "workorders" and d.get("action") == "create" and str(d.get("order_id", "")).startswith(AUTO_ORDER):
        errors.append(FieldError("order_id", f"ids starting with {AUTO_ORDER!r} are reserved for those opsmap makes"))
    if stream == "workorders" and d.get("action") == "create":
        errors += [FieldError(f, "required when action is create") for f in ("category", "priority", "description")
                   if f not in d]
        if "address" not in d and ("lat" not in d or "lng" not in d):
            errors.append(FieldError("address", "create needs address or lat and lng"))
    if stream == "workorders" and d.get("action") == "dispatch":
        errors += [FieldError(f, "required when action is dispatch") for f in ("committee_id", "assignee")
                   if f not in d]
    if stream == "health" and ("person_id_hash" in d) == ("observation_id" in d):
        errors.append(FieldError("person_id", "give either person_id or observation_id (one of them)"))
    if stream == "duty" and {"starts_at", "ends_at"} <= d.keys() and \
            not dt.timedelta(0) < d["ends_at"] - d["starts_at"] <= dt.timedelta(hours=24):
        errors.append(FieldError("ends_at", "a shift ends after it starts, within 24 hours"))
    if stream == "observations" and d.get("action") == "extend" and "days" not in d:
        errors.append(FieldError("days", "required when action is extend"))
    if stream == "observations" and d.get("action") == "end" and "reason" not in d:
        errors.append(FieldError("reason", "required when action is end"))
    if stream == "cases" and not ({"compound_id", "address"} & d.keys() or {"lat", "lng"} <= d.keys()):
        errors.append(FieldError("compound_id", "a case needs compound_id, address, or lat and lng"))
    if ("lat" in d) != ("lng" in d):
        errors.append(FieldError("lat" if "lat" not in d else "lng", "lat and lng go together"))
    return errors


def decode(raw: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """The event object from a stream entry's ``event`` field (or an already-decoded mapping)."""
    if isinstance(raw, Mapping):
        return dict(raw)
    if len(raw) > MAX_EVENT_BYTES:
        raise EventError([FieldError("event", f"larger than {MAX_EVENT_BYTES} bytes")])
    try:  # orjson reads the well-formed many fast; what it refuses, the standard parser explains
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj = None
    try:
        obj = json.loads(raw) if obj is None else obj
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventError([FieldError("event", f"not JSON ({exc})"[:200])]) from None
    except RecursionError:
        raise EventError([FieldError("event", "nested too deeply")]) from None
    if not isinstance(obj, dict):
        raise EventError([FieldError("event", f"must be a JSON object, not {type(obj).__name__}")])
    return obj


_HASH = re.compile(r"^[0-9a-f]{64}$")
_MASKED = re.compile(r"^[0-9]{3,4}\*{4,10}[0-9]{3}[0-9X]$")


def _sealed(obj: Mapping[str, Any], name: str) -> tuple[str, str] | None:
    """A personal field given already hashed and masked (``<name>_hash``, ``<name>_masked``: the
    form the HTTP intake appends, so no raw number rests in a stream); None when absent."""
    digest, masked = obj.get(f"{name}_hash"), obj.get(f"{name}_masked")
    if digest is None and masked is None:
        return None
    if not (isinstance(digest, str) and _HASH.match(digest) and isinstance(masked, str) and _MASKED.match(masked)):
        raise ValueError(f"{name}_hash must be 64 hex digits and {name}_masked a masked number")
    return digest, masked


@cache
def _fields(stream: str) -> tuple[dict[str, Spec], frozenset[str], frozenset[str]]:
    """A stream's field specs, its personal fields, and the names their sealed forms take
    (worked out once: ``validate`` runs for every event)."""
    specs = {**COMMON, **SPECS[stream]}
    personal = frozenset(n for n, spec in specs.items() if getattr(spec.check, "personal", None))
    return specs, personal, frozenset(f"{n}_{part}" for n in personal for part in ("hash", "masked"))


#: how the compiled validator hands each field on: as decoded, through a check, or as a personal number
_PLAIN, _AFTER, _PERSONAL = range(3)


@cache
def _compiled(stream: str) -> tuple[msgspec.json.Decoder[Any], tuple[tuple[str, int, Any, bool], ...]]:
    """A stream's specs as one msgspec decoder (JSON to typed fields in C) and what is left to do
    per field in Python: a check the decoder cannot express (dates, ID numbers, free text's
    masking), hashing. The decoder accepts only values its checks would keep as they are; the
    rest, valid or not, go the readable way of ``validate``."""
    specs, personal, _ = _fields(stream)
    fields: list[tuple[str, Any, None]] = []
    steps = []
    for name, spec in specs.items():
        fast = getattr(spec.check, "fast", None)
        fields.append((name, (Any if fast is None else fast) | None, None))
        if name in personal:
            fields += [(f"{name}_{part}", Annotated[str, msgspec.Meta(pattern=rx.pattern)] | None, None)
                       for part, rx in (("hash", _HASH), ("masked", _MASKED))]
            steps.append((name, _PERSONAL, spec.check, spec.required))
        elif fast is None or hasattr(spec.check, "after"):
            steps.append((name, _AFTER, getattr(spec.check, "after", spec.check), spec.required))
        else:
            steps.append((name, _PLAIN, None, spec.required))
    struct = msgspec.defstruct(f"{stream}_event", fields, forbid_unknown_fields=True)
    return msgspec.json.Decoder(struct), tuple(steps)


def _fast(stream: str, raw: bytes | str, hasher: Hasher, future: dt.timedelta | None) -> Event | None:
    """The event when the compiled validator accepts it as it is; None sends it the readable way
    (which normalises what it can, and names every field it refuses)."""
    decoder, steps = _compiled(stream)
    try:
        obj = decoder.decode(raw)
    except msgspec.MsgspecError:
        return None
    data: dict[str, Any] = {}
    try:
        for name, how, fn, required in steps:
            value = getattr(obj, name)
            if value is None:
                digest, masked = (getattr(obj, f"{name}_hash"), getattr(obj, f"{name}_masked")) \
                    if how == _PERSONAL else (None, None)
                if (digest is None) != (masked is None) or (digest is None and required):
                    return None
                if digest is not None:
                    data[f"{name}_hash"], data[f"{name}_masked"] = digest, masked
            elif how == _PLAIN:
                data[name] = value
            elif how == _AFTER:
                data[name] = fn(value)
            else:
                value = fn(value)
                data[f"{name}_hash"] = hasher(value)
                data[f"{name}_masked"] = mask_id(value) if fn.personal == "id" else mask_phone(value)
    except ValueError:
        return None
    if _cross_checks(stream, data) or (future is not None and data["ts"] > dt.datetime.now(dt.UTC) + future):
        return None
    event_id, ts = data.pop("event_id"), data.pop("ts")
    return Event(stream, event_id, ts, data)


def validate(stream: str, raw: bytes | str | Mapping[str, Any], hasher: Hasher,
             future: dt.timedelta | None = None) -> Event:
    """A validated Event, or EventError listing every bad field; raw personal numbers never leave.
    With ``future``, an event stamped more than that ahead of now is refused (a clock gone wrong
    would otherwise pin a state for good); the past is always accepted, so history replays.
    Most events pass the compiled validator (``_fast``); the checks below explain the others."""
    if stream not in SPECS:
        raise EventError([FieldError("stream", f"unknown stream {stream!r}; one of {', '.join(STREAMS)}")])
    if isinstance(raw, bytes | str) and len(raw) <= MAX_EVENT_BYTES and (ev := _fast(stream, raw, hasher, future)):
        return ev
    return _readable(stream, raw, hasher, future)


def _readable(stream: str, raw: bytes | str | Mapping[str, Any], hasher: Hasher,
              future: dt.timedelta | None) -> Event:
    """``validate`` field by field in Python: normalises what it can and names every problem."""
    obj = decode(raw)
    specs, personal, sealed_names = _fields(stream)
    errors = [FieldError(str(k)[:40], "unknown field") for k in obj if k not in specs and k not in sealed_names]
    data: dict[str, Any] = {}
    for name, spec in specs.items():
        if name not in obj or obj[name] is None:
            try:
                sealed = _sealed(obj, name) if name in personal else None
            except ValueError as exc:
                errors.append(FieldError(name, str(exc)))
                continue
            if sealed is not None:
                data[f"{name}_hash"], data[f"{name}_masked"] = sealed
            elif spec.required:
                errors.append(FieldError(name, "required"))
            continue
        try:
            value = spec.check(obj[name])
        except ValueError as exc:
            errors.append(FieldError(name, str(exc)))
            continue
        kind = getattr(spec.check, "personal", None)
        if kind is not None:
            data[f"{name}_hash"] = hasher(value)
            data[f"{name}_masked"] = mask_id(value) if kind == "id" else mask_phone(value)
        else:
            data[name] = value
    errors += _cross_checks(stream, data)
    if future is not None and "ts" in data and data["ts"] > dt.datetime.now(dt.UTC) + future:
        errors.append(FieldError("ts", f"more than {future.total_seconds() / 60:g} minutes in the future "
                                       "(check the producer's clock)"))
    if errors:
        raise EventError(errors)
    event_id, ts = data.pop("event_id"), data.pop("ts")
    return Event(stream, event_id, ts, data)


def sealed(ev: Event) -> str:
    """The event as the HTTP intake appends it: valid by the same contract, personal numbers as
    their hash and mask only (``validate`` reads it back to the same Event)."""
    return json.dumps({"event_id": ev.event_id, "ts": ev.ts.isoformat(), **ev.data}, ensure_ascii=False,
                      default=dt.datetime.isoformat)


def seal_personal(stream: str, raw: bytes | str | Mapping[str, Any], hasher: Hasher) -> str:
    """An event that failed validation as JSON for opsmap:dead: each valid personal number sealed
    (hash and mask: a replay after a fix stores the same person), an invalid one masked, any
    number in the rest masked; what is not JSON is kept as scrubbed text."""
    try:
        obj = decode(raw)
    except Exception:  # noqa: BLE001 - whatever it holds, a dead letter says what it was
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return json.dumps({"unparsed": scrub(text[:2000])}, ensure_ascii=False)
    for name, spec in {**COMMON, **SPECS.get(stream, {})}.items():
        kind = getattr(spec.check, "personal", None)
        if kind is None or name not in obj:
            continue
        try:
            value = spec.check(obj.pop(name))
        except ValueError:
            continue  # not a number of that kind: dropped, nothing to protect or replay
        obj[f"{name}_hash"] = hasher(value)
        obj[f"{name}_masked"] = mask_id(value) if kind == "id" else mask_phone(value)
    try:
        text = json.dumps(obj, ensure_ascii=False, default=str)
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate: kept escaped, as it came
        text = json.dumps(obj, default=str)
    except (ValueError, RecursionError):
        return json.dumps({"unparsed": "(too deep or not serialisable)"}, ensure_ascii=False)
    return scrub(text)
