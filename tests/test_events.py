"""evt: the event contract — every problem names its field; personal numbers never pass raw."""

from __future__ import annotations

import json

import pytest

from data.events import EventError, seal_personal, validate
from data.privacy import Hasher, id_problem, mask_id, mask_phone
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
