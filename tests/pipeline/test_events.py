"""evt: the event contract — every problem names its field; personal numbers never pass raw."""

from __future__ import annotations

import datetime as dt
import json
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.domain.privacy import Hasher, id_problem, mask_id, mask_phone
from data.pipeline.events import COMMON, SPECS, STREAMS, EventError, Spec, _fast, _readable, seal_personal, validate
from tests.conftest import person_id, phone

H = Hasher(b"k" * 32)
TS = "2022-04-10T08:00:00+08:00"


def checkin(**over):
    base = {"event_id": "e1", "ts": TS, "gate_id": "S194-C001-G1", "direction": "in",
            "person_id": person_id(1), "category": "resident", "temperature": 36.6}
    return {**base, **over}


def fields(exc: pytest.ExceptionInfo) -> dict[str, str]:
    return {e.field: e.problem for e in exc.value.errors}


def test_evt001_valid_checkin_is_normalised_and_personal_numbers_hashed():
    ev = validate("checkins", json.dumps(checkin(phone=phone(8000))), H)
    assert ev.event_id == "e1" and ev.ts.utcoffset().total_seconds() == 8 * 3600
    assert "person_id" not in ev.data and "phone" not in ev.data
    assert ev.data["person_id_masked"] == mask_id(person_id(1)) == person_id(1)[:4] + "*" * 10 + person_id(1)[-4:]
    assert ev.data["phone_masked"] == "139****8000"
    assert ev.data["person_id_hash"] == H(person_id(1)) != Hasher(b"x" * 32)(person_id(1))


@pytest.mark.parametrize(("over", "field", "problem"), [
    ({"person_id": person_id(1)[:17] + ("0" if person_id(1)[17] != "0" else "1")}, "person_id", "check digit"),
    ({"person_id": "31010119901301001X"}, "person_id", "birth date"),
    ({"person_id": "12345"}, "person_id", "17 digits"),
    ({"phone": "12345678901"}, "phone", "11-digit mobile"),
    ({"direction": "sideways"}, "direction", "one of in, out"),
    ({"temperature": "hot"}, "temperature", "must be a number"),
    ({"temperature": 55}, "temperature", "between 30 and 45"),
    ({"ts": "2022-04-10T08:00:00"}, "ts", "no UTC offset"),
    ({"ts": "yesterday"}, "ts", "not ISO 8601"),
    ({"health_code": "blue"}, "health_code", "one of green, yellow, red"),
    ({"gate_id": ""}, "gate_id", "non-empty"),
    ({"colour": "red"}, "colour", "unknown field"),
    ({"event_id": None}, "event_id", "required"),
])
def test_evt002_each_problem_names_its_field(over, field, problem):
    with pytest.raises(EventError) as err:
        validate("checkins", json.dumps(checkin(**over)), H)
    assert problem in fields(err)[field]


def test_evt003_all_problems_are_reported_together():
    with pytest.raises(EventError) as err:
        validate("checkins", json.dumps({"event_id": "e", "ts": TS, "direction": "up"}), H)
    assert {"gate_id", "direction", "person_id", "category", "temperature"} <= fields(err).keys()


@pytest.mark.parametrize(("raw", "problem"), [
    (b"{not json", "not JSON"), (b"[1, 2]", "must be a JSON object"), (b"\xff\xfe", "not JSON"),
    (b"x" * 20000, "larger than"),
])
def test_evt004_undecodable_payloads(raw, problem):
    with pytest.raises(EventError) as err:
        validate("checkins", raw, H)
    assert problem in fields(err)["event"]


def test_evt005_work_order_actions_need_their_fields():
    base = {"event_id": "w1", "ts": TS, "order_id": "O1"}
    with pytest.raises(EventError) as err:
        validate("workorders", {**base, "action": "create"}, H)
    assert {"category", "priority", "description", "address"} <= fields(err).keys()
    with pytest.raises(EventError) as err:
        validate("workorders", {**base, "action": "dispatch"}, H)
    assert fields(err) == {"committee_id": "required when action is dispatch",
                           "assignee": "required when action is dispatch"}
    ok = validate("workorders", {**base, "action": "create", "category": "supplies", "priority": "normal",
                                 "description": "缺米", "lat": 31.23, "lng": 121.47}, H)
    assert ok.data["lat"] == 31.23


def test_evt006_case_needs_a_place_and_lat_lng_go_together():
    base = {"event_id": "c1", "ts": TS, "person_id": person_id(2), "category": "confirmed"}
    with pytest.raises(EventError) as err:
        validate("cases", base, H)
    assert "compound_id" in fields(err)
    with pytest.raises(EventError) as err:
        validate("cases", {**base, "lat": 31.2}, H)
    assert fields(err)["lng"] == "lat and lng go together"


def test_evt007_dead_letters_seal_personal_numbers_even_in_broken_events():
    raw_id, raw_phone = person_id(3), phone(12345678)
    good = seal_personal("checkins", json.dumps(checkin(person_id=raw_id, phone=raw_phone, temperature=99)), H)
    broken = seal_personal("checkins", '{"person_id": "' + raw_id + '", "phone": ' + raw_phone, H)
    odd = seal_personal("checkins", json.dumps({"note": f"call {raw_phone} about {raw_id}"}), H)
    for text in (good, broken, odd):
        assert raw_id not in text and raw_phone not in text
    assert mask_phone(raw_phone) in good
    # sealed, so a replay after a fix is the same person: the corrected event validates to the same hash
    fixed = validate("checkins", json.dumps({**json.loads(good), "temperature": 36.6}), H)
    assert fixed.data["person_id_hash"] == H(raw_id)


def test_evt008_id_check_digit_known_values():
    assert id_problem("11010519491231002X") is None  # the standard's worked example
    assert id_problem("110105194912310021") == "check digit does not match"


# --- the compiled validator (msgspec) against the readable one --------------------------------

_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 2**60), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["in", "out", "resident", "returnee", "green", "red", "create", "dispatch", "extend", "end",
                     "released", "urgent", "normal", "other", "silent_gate", "screening", TS, "2022-04-10T08:00:00",
                     "2022-04-10T08:00:00Z", person_id(7), person_id(7).lower()[:-1] + "x", phone(5),
                     "+86 139-0000-0005", "a" * 2001, "张三、李四", "S194-C001-G1"]),
    st.text(alphabet=st.sampled_from(" \t\n#a中1X\x00\x7f\u3000\u2028"), max_size=70),
    st.lists(st.integers(0, 3), max_size=2))


_TEXT = st.one_of(*[st.from_regex(r"[a-z0-9中\-]{1,20}", fullmatch=True)] * 3,
                  st.text(alphabet=st.sampled_from(" \t\n#a中1X\x00\x7f\u3000\u2028\U0001f600"), max_size=70))
_PERSONAL = {"id": [person_id(7), f" {person_id(8)} ", person_id(9).lower()[:-1] + "x", person_id(9)[:-1] + "0"],
             "phone": [phone(5), "+86 139-0000-0005", "12345678901"]}


def _good(name: str, spec: Spec) -> st.SearchStrategy:
    """Values of the field's own kind (mostly valid), the edge cases of each kind among them."""
    fast = getattr(spec.check, "fast", None)
    if hasattr(spec.check, "options"):
        return st.sampled_from(spec.check.options)
    if fast is not None and typing.get_args(fast)[0] in (int, float):
        meta = typing.get_args(fast)[1]
        return st.one_of(st.integers(int(meta.ge), int(meta.le)), st.floats(meta.ge, meta.le),
                         st.sampled_from([meta.ge - 1, meta.le + 0.5, float(int(meta.ge))]))
    if getattr(spec.check, "personal", None):
        return st.sampled_from(_PERSONAL[spec.check.personal])
    if name in {"ts", "starts_at", "ends_at", "since"}:
        return st.sampled_from([TS, TS, "2022-04-10T16:00:00+08:00", "2022-04-10T08:00:00.5+08:00",
                                "2022-04-10 08:00Z", "2022-04-10T08:00:00", "2122-04-10T08:00:00+08:00"])
    return _TEXT


@st.composite
def _events(draw: st.DrawFn) -> tuple[str, str]:
    """Any stream, any subset of its fields (sealed forms and an unknown one too), mostly values
    of each field's kind, sometimes any value at all."""
    stream = draw(st.sampled_from(STREAMS))
    specs = {**COMMON, **SPECS[stream]}
    obj = {n: draw(_good(n, spec) if draw(st.integers(0, 19)) else _VALUES)
           for n, spec in specs.items() if draw(st.integers(0, 19) if spec.required else st.booleans())}
    obj |= {n: draw(_VALUES) for n in ("person_id_hash", "person_id_masked", "colour") if not draw(st.integers(0, 6))}
    if "person_id_hash" in obj and draw(st.booleans()):
        obj["person_id_hash"], obj["person_id_masked"] = H(person_id(3)), mask_id(person_id(3))
    return stream, json.dumps(obj, ensure_ascii=draw(st.booleans()))


def _outcome(fn, *args):
    try:
        return fn(*args)
    except EventError as exc:
        return str(exc)


@settings(max_examples=3000, deadline=None)
@given(_events())
def test_evt009_compiled_validator_accepts_only_what_the_readable_one_stores_unchanged(case):
    """The fast path may pass an event on (None) but never disagree: what it accepts is exactly
    the Event the field-by-field checks make of it, personal numbers hashed alike."""
    stream, raw = case
    fast = _fast(stream, raw, H, dt.timedelta(minutes=5))
    if fast is not None:
        assert fast == _outcome(_readable, stream, raw, H, dt.timedelta(minutes=5))
    assert _outcome(validate, stream, raw, H, dt.timedelta(minutes=5)) == \
        _outcome(_readable, stream, raw, H, dt.timedelta(minutes=5))


_USUAL = {
    "checkins": checkin(phone=phone(8000), health_code="green", origin="江苏"),
    "workorders": {"event_id": "w1", "ts": TS, "order_id": "o1", "action": "create", "category": "supplies",
                   "priority": "normal", "description": "缺米", "lat": 31.23, "lng": 121.47},
    "cases": {"event_id": "c1", "ts": TS, "person_id_hash": H(person_id(2)), "person_id_masked": mask_id(person_id(2)),
              "category": "positive", "compound_id": "C1"},
    "health": {"event_id": "h1", "ts": TS, "observation_id": 3, "temperature": 36.8, "symptoms": "咳嗽"},
    "facilities": {"event_id": "f1", "ts": TS, "facility_id": "G1", "status": "closed", "guards_on_duty": 2,
                   "reporter": "王"},
    "work": {"event_id": "k1", "ts": TS, "task": "screening", "target_id": "C1", "count": 120, "reporter": "王"},
    "observations": {"event_id": "o1", "ts": TS, "observation_id": 3, "action": "extend", "days": 7, "reporter": "王"},
    "duty": {"event_id": "d1", "ts": TS, "gate_id": "G1", "starts_at": TS, "ends_at": "2022-04-10T16:00:00+08:00",
             "guards": "张三、李四", "reporter": "王"},
    "rules": {"event_id": "r1", "ts": TS, "rule": "silent_gate", "gate_id": "G1", "since": TS},
}
_EDGES = [None, "", " ", "x", " x", "x ", "a#b", "a b", "中文", "x\x00", "\u3000x", "a" * 65, 0, 2, 36.5, 37, 30, 45,
          45.01, -1, 1.5, 7.0, True, 10**20, [], {}, TS, "2022-04-10T08:00:00", "2022-04-10T08:00:00Z", person_id(4),
          f" {person_id(4)}", person_id(4)[:-1] + "0", phone(4), "+86 139 0000 0004", "139 0000 0004 或 " + phone(5)]


def test_evt010_the_usual_events_take_the_compiled_path():
    """Well-formed events of every stream are accepted by the compiled validator itself."""
    assert _USUAL.keys() == set(STREAMS)
    for stream, obj in _USUAL.items():
        fast = _fast(stream, json.dumps(obj, ensure_ascii=False), H, None)
        assert fast is not None and fast == _readable(stream, obj, H, None), stream


def test_evt011_one_field_changed_both_validators_agree():
    """Each field of each usual event set to each edge value (or dropped): the compiled validator
    accepts exactly the same Event or passes it on; and what validate says is the readable word."""
    accepted = 0
    for stream, obj in _USUAL.items():
        for name in {**COMMON, **SPECS[stream], "person_id_hash": 0}:
            for value in [*_EDGES, ...]:
                changed = {k: v for k, v in obj.items() if k != name} | ({} if value is ... else {name: value})
                raw = json.dumps(changed, ensure_ascii=False)
                fast, readable = _fast(stream, raw, H, None), _outcome(_readable, stream, raw, H, None)
                assert fast is None or fast == readable, (stream, name, value)
                assert _outcome(validate, stream, raw, H, None) == readable
                accepted += fast is not None
    assert accepted > 200  # the compiled path is exercised, not only passed over


def test_evt012_a_number_is_one_hash_in_any_script_and_the_check_digit_is_the_standards():
    """Digits NFKC leaves alone (Arabic-Indic) are the same number as ASCII ones, for the ID and the
    phone; the check character agrees with GB 11643's own examples, not only with our generator."""
    arabic = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
    ascii_ev = validate("checkins", json.dumps(checkin(phone=phone(8000))), H)
    other = validate("checkins", json.dumps(checkin(person_id=person_id(1).translate(arabic),
                                                    phone=phone(8000).translate(arabic)), ensure_ascii=False), H)
    assert {k: other.data[k] for k in ("person_id_hash", "person_id_masked", "phone_hash", "phone_masked")} == {
        k: ascii_ev.data[k] for k in ("person_id_hash", "person_id_masked", "phone_hash", "phone_masked")}
    assert id_problem("11010519491231002X") is None and id_problem("440524188001010014") is None
    assert "check digit" in id_problem("110105194912310021")
    assert "17 digits" in id_problem("１１０１０５１９４９１２３１００２Ｘ")  # normalised before, never checked raw
