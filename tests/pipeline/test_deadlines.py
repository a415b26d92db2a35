"""dl: 12345 deadlines by kind in working days, 催办 and 督办 from the clock, messages that reach the
committee (retried, never doubled), gate duty shifts and silent gates — on a street of their own, so
the rules of the clock meet no other test's orders and gates."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import chinese_calendar
import pandas as pd
import pytest
from sqlalchemy import select

from data.domain import deadlines
from data.domain.privacy import Hasher
from data.domain.rules import SHANGHAI, local_day
from data.models import Alert, DutyShift, Gate, Notification, WorkOrder, WorkOrderEvent
from data.pipeline import clock, streams
from data.pipeline.dead import iter_dead
from data.pipeline.ingest import Worker
from data.read import queries, report
from data.settings import load
from data.sources import roster
from data.store import session_factory
from layers import gates, workorders
from layers.base import Query
from layers.worklist import worklist
from tests.conftest import (
    DATASETS,
    ENGINES,
    FAR_FUTURE_OK,
    KEY,
    config_for,
    free_port,
    own_street,
    person_id,
    wait_for,
)
from tests.ingesting import INGEST, drain, stop, tag, worker_env

#: every kind keeps its default but ``other``: due an hour after creation, 督办 an hour after that
FAST = {"OPSMAP_ORDER_DEADLINES": load(environ={}).order_deadlines.replace("other=5wd", "other=1h"),
        "OPSMAP_SUPERVISE_AFTER": "1h"}


@pytest.fixture(scope="module", params=ENGINES)
def street(request, tmp_path_factory):
    yield from own_street(request.param, tmp_path_factory.mktemp("dl"), request)


def settings_for(tmp_path, **extra: str):
    return config_for(tmp_path, OPSMAP_INGEST_CLAIM_IDLE_MS="500", **FAR_FUTURE_OK, **FAST, **extra)


def order(t: str, data, created: dt.datetime, category: str = "other") -> list[str]:
    """A created order dispatched to the committee of the compound it is at."""
    c = data.compounds[5]
    return [json.dumps({"event_id": f"{t}-c", "ts": created.isoformat(), "order_id": f"O-{t}", "action": "create",
                        "category": category, "priority": "normal", "description": "邻居居家观察期间外出遛狗",
                        "lat": c.lat, "lng": c.lng}, ensure_ascii=False),
            json.dumps({"event_id": f"{t}-d", "ts": (created + dt.timedelta(minutes=10)).isoformat(),
                        "order_id": f"O-{t}", "action": "dispatch", "committee_id": c.committee_id,
                        "assignee": "王干部"}, ensure_ascii=False)]


def test_dl001_a_complaint_before_national_day_skips_the_holiday_and_counts_the_swapped_weekend():
    policy = deadlines.of(load(environ={}))
    created = dt.datetime(2024, 9, 27, 10, 0, tzinfo=SHANGHAI)  # the Friday before the 2024 holiday
    n, day, working = policy.by_kind["complaint"].amount, created.date(), []
    while len(working) < n:  # the expected days from the calendar library itself
        day += dt.timedelta(days=1)
        if chinese_calendar.is_workday(day):
            working.append(day)
    due = policy.due("complaint", created)
    assert due == dt.datetime.combine(working[-1], policy.office.end, SHANGHAI)
    assert dt.date(2024, 9, 29) in working  # the Sunday worked in exchange (调休)
    assert not [d for d in working if dt.date(2024, 10, 1) <= d <= dt.date(2024, 10, 7)]
    assert policy.remaining(due, created) == f"剩余 {n} 个工作日"
    assert policy.remaining(due, due - dt.timedelta(hours=3)) == "剩余 3 小时 0 分"
    assert policy.remaining(due, due + dt.timedelta(hours=3)) == "超时 3 小时 0 分"
    # a year the package does not know yet: Monday to Friday, and /healthz says so
    cal = deadlines.WorkCalendar()
    unknown = cal.known[1] + 1
    first = cal.after(dt.date(unknown - 1, 12, 31), 1)
    assert first.year == unknown and first.weekday() < 5
    assert unknown in cal.health(dt.datetime(unknown - 1, 12, 3, tzinfo=dt.UTC))["weekends_only"]


def test_dl002_the_drill_down_and_the_officer_list_show_the_same_time_left(street, client, tmp_path):
    engine, data = street
    config, t = settings_for(tmp_path), tag()
    created = dt.datetime(2024, 9, 27, 10, 0, tzinfo=SHANGHAI)
    streams.append(client, "workorders", order(t, data, created, "complaint"))
    drain(Worker(engine, client, config, consumer=f"dl-{t}"), client)
    at = created + dt.timedelta(hours=2)
    committee = data.compounds[5].committee_id
    q = Query.from_config(config, data.street.id, at, committee)
    with session_factory(engine)() as s:
        feature = next(f["properties"] for f in workorders.features(s, q)["features"] if f["id"] == f"O-{t}")
        detail = workorders.detail(s, f"O-{t}", q)
        item = next(i for i in worklist(s, q) if i.entity_id == f"O-{t}")
    assert detail["remaining"] == feature["remaining"] == "剩余 5 个工作日"
    assert item.note.endswith(detail["remaining"])


def test_dl003_an_order_left_alone_is_reminded_then_supervised_once(street, client, tmp_path):
    engine, data = street
    config, t = settings_for(tmp_path), tag()
    now = dt.datetime.now(dt.UTC)
    created = now - dt.timedelta(hours=3)
    streams.append(client, "workorders", order(t, data, created))
    a, b = (Worker(engine, client, config, consumer=f"dl-{t}-{n}") for n in "ab")
    drain(a, client)
    policy = deadlines.of(config)
    due = policy.due("other", created)
    with session_factory(engine)() as s:  # not due yet: nothing raised
        assert not [e for e in clock.marks_due(s, policy, due - dt.timedelta(minutes=1)) if e["order_id"] == f"O-{t}"]
    for w in (a, b, a):  # every worker sweeps, each as often as it likes
        w.sweep(now)
        drain(w, client)
    with session_factory(engine)() as s:
        marks = s.execute(select(WorkOrderEvent.action, WorkOrderEvent.ts).where(
            WorkOrderEvent.order_id == f"O-{t}", WorkOrderEvent.action.in_(["remind", "supervise"]))
            .order_by(WorkOrderEvent.ts)).all()
        assert marks == [("remind", due), ("supervise", due + dt.timedelta(hours=1))]
        assert s.get(WorkOrder, f"O-{t}").level == "supervised"
        q = Query.from_config(config, data.street.id, now)
        feature = next(f["properties"] for f in workorders.features(s, q)["features"] if f["id"] == f"O-{t}")
        assert feature["level"] == "supervised" and feature["remaining"].startswith("超时 ")
        between = Query.from_config(config, data.street.id, due + dt.timedelta(minutes=30))  # an as-of moment
        assert workorders.detail(s, f"O-{t}", between)["level"] == "reminded"
        brief = report.build(s, data.street.id, now, DATASETS, policy)
    assert f"O-{t}" in set(brief.supervised["order"]) and f"O-{t}" in set(brief.overdue["order"])
    assert f"O-{t}" in [m["order"] for m in brief.summary["work_orders"]["marked"] if m["level"] == "supervised"]
    texts = [i["text"] for i in streams.feed(client, 200) if f"O-{t}" in i.get("text", "")]
    assert sum("催办" in x for x in texts) == 1 and sum("督办" in x for x in texts) == 1
    with session_factory(engine)() as s:
        assert not [e for e in clock.marks_due(s, policy, now) if e["order_id"] == f"O-{t}"]  # nothing more due


class Receiver:
    """A webhook receiver on loopback: answers 500 to the first two tries of each message, then takes it."""

    def __init__(self) -> None:
        self.tries: dict[str, int] = {}
        self.taken: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers.get("X-Opsmap-Delivery") or hashlib.sha256(body).hexdigest()
                with receiver.lock:
                    receiver.tries[key] = receiver.tries.get(key, 0) + 1
                    ok = receiver.tries[key] > 2
                    if ok:
                        receiver.taken.append((self.path, dict(self.headers), body))
                self.send_response(200 if ok else 500)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"errcode": 0, "errmsg": "ok"}' if ok else b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_dl004_each_dispatch_remind_and_supervise_reaches_the_webhooks_once(street, redis_url, client, tmp_path):
    """Two targets of the committee (a WeCom robot, a signed JSON hook) that fail twice per message;
    the ingest process is killed with every message between a failure and its delivery."""
    engine, data = street
    receiver, t = Receiver(), tag()
    committee = data.compounds[5].committee_id
    env = worker_env(engine, redis_url, tmp_path, OPSMAP_SWEEP_S="0.3", OPSMAP_NOTIFY_BACKOFF_MAX_S="3",
                     OPSMAP_PUBLIC_URL="https://opsmap.example.gov.cn", **FAST)
    for args in (["--wecom", f"{receiver.url}/cgi-bin/webhook/send?key=k"], ["--json", f"{receiver.url}/hook",
                                                                             "--secret", "s3cret-for-tests"]):
        subprocess.run([*INGEST[:-1], "notify", "add", "--committee", committee, *args], env=env, check=True,
                       capture_output=True, timeout=60)
    streams.append(client, "workorders", order(t, data, dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)))

    def notes() -> list[Notification]:
        with session_factory(engine)() as s:
            return list(s.scalars(select(Notification).where(Notification.order_id == f"O-{t}")))

    first = subprocess.Popen(INGEST, env=env)
    try:
        def between() -> bool:  # every message failed and waits for its next try (none held by the sender)
            ns, now = notes(), dt.datetime.now(dt.UTC)
            return len(ns) == 6 and not receiver.taken and all(
                n.attempts >= 1 and n.next_at < now + dt.timedelta(seconds=10) for n in ns)

        wait_for(between, 60, "every message to fail and wait")
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = subprocess.Popen(INGEST, env=env)
        try:
            wait_for(lambda: all(n.delivered_at is not None for n in notes()), 60, "every message to be delivered")
        finally:
            stop(second)
    finally:
        stop(first)
    kinds = sorted(n.kind for n in notes())
    assert kinds == ["dispatch", "dispatch", "remind", "remind", "supervise", "supervise"]
    assert len(receiver.taken) == 6 and all(n == 3 for n in receiver.tries.values())  # each taken once
    wecom = [json.loads(b) for p, _, b in receiver.taken if p.startswith("/cgi-bin/webhook/send")]
    assert {w["msgtype"] for w in wecom} == {"markdown"}
    link = f"https://opsmap.example.gov.cn/officer?order=O-{t}"
    assert all(link in w["markdown"]["content"] for w in wecom)
    assert {w["markdown"]["content"][:4] for w in wecom} == {"【派单】", "【催办】", "【督办】"}
    assert not any("遛狗" in w["markdown"]["content"] for w in wecom)  # the resident's words stay behind the sign-in
    for _, headers, body in (x for x in receiver.taken if x[0] == "/hook"):
        signed = hmac.new(b"s3cret-for-tests", headers["X-Opsmap-Timestamp"].encode() + b"." + body,
                          hashlib.sha256).hexdigest()
        assert headers["X-Opsmap-Signature"] == f"sha256={signed}"
        assert json.loads(body)["delivery"] == headers["X-Opsmap-Delivery"] and json.loads(body)["link"] == link


def _noon() -> dt.datetime:
    """Yesterday's noon in Shanghai: within the gates' hours and always in the past."""
    return dt.datetime.combine(local_day(dt.datetime.now(dt.UTC)) - dt.timedelta(days=1), dt.time(12), SHANGHAI)


def test_dl005_a_silent_gate_greys_and_raises_one_alert_until_a_scan(street, client, tmp_path):
    engine, data = street
    config, t = settings_for(tmp_path, OPSMAP_GATE_SILENT_MINUTES="30"), tag()
    noon = _noon()
    with session_factory(engine)() as s:
        gate = s.scalars(select(Gate).where(Gate.status == "open").order_by(Gate.id)).first()

    def scan(n: int, at: dt.datetime) -> str:
        return json.dumps({"event_id": f"{t}-s{n}", "ts": at.isoformat(), "gate_id": gate.id, "direction": "in",
                           "person_id": person_id(700 + n), "category": "resident", "temperature": 36.5})

    def silent(at: dt.datetime) -> bool:
        with session_factory(engine)() as s:
            return next(f["properties"]["silent"] for f in gates.features(
                s, Query.from_config(config, data.street.id, at))["features"] if f["id"] == gate.id)

    w = Worker(engine, client, config, consumer=f"dl-{t}")
    streams.append(client, "checkins", [scan(1, noon - dt.timedelta(minutes=40))])
    drain(w, client)
    assert silent(noon) and not silent(noon - dt.timedelta(minutes=20))
    for _ in range(2):
        w.sweep(noon)
        drain(w, client)
    with session_factory(engine)() as s:
        alerts = s.scalars(select(Alert).where(Alert.kind == "silent_gate", Alert.entity_id == gate.id)).all()
    assert len(alerts) == 1 and alerts[0].ts == noon - dt.timedelta(minutes=10)  # silent since 30 min after the scan
    streams.append(client, "checkins", [scan(2, noon + dt.timedelta(minutes=1))])
    drain(w, client)
    assert not silent(noon + dt.timedelta(minutes=2))
    w.sweep(noon + dt.timedelta(minutes=2))
    drain(w, client)
    with session_factory(engine)() as s:
        assert len(s.scalars(select(Alert).where(Alert.kind == "silent_gate", Alert.entity_id == gate.id)).all()) == 1
        never = s.scalars(select(Gate.id).where(Gate.status == "open", Gate.id != gate.id)).first()
        assert not next(f["properties"]["silent"] for f in gates.features(
            s, Query.from_config(config, data.street.id, noon))["features"] if f["id"] == never)  # never scanned


def test_dl006_a_roster_staffs_the_gate_for_its_shift(street, client, tmp_path):
    engine, data = street
    config, t = settings_for(tmp_path), tag()
    noon = _noon()
    with session_factory(engine)() as s:
        gate = s.scalars(select(Gate).where(Gate.guards_required >= 2).order_by(Gate.id)).first()
    sheet = tmp_path / "roster.xlsx"
    rows = [{"出入口编号": gate.id, "开始": f"{noon - dt.timedelta(hours=4):%Y-%m-%d %H:%M}",
             "结束": f"{noon + dt.timedelta(hours=4):%Y-%m-%d %H:%M}", "值守人员": "张三、李四、王五"},
            {"出入口编号": gate.id, "开始": f"{noon + dt.timedelta(hours=4):%Y-%m-%d %H:%M}",
             "结束": f"{noon + dt.timedelta(hours=12):%Y-%m-%d %H:%M}", "值守人员": "赵六"}]
    pd.DataFrame(rows).to_excel(sheet, index=False)
    docs = roster.events(sheet, "排班表", noon - dt.timedelta(days=1), Hasher(KEY.encode()))
    pd.DataFrame([*rows, {**rows[0], "出入口编号": "no-such-gate"}, {**rows[0], "结束": rows[0]["开始"]}]) \
        .to_excel(bad := tmp_path / "bad.xlsx", index=False)
    with pytest.raises(ValueError, match="row 5: ends_at"):
        roster.events(bad, "排班表", noon, Hasher(KEY.encode()))
    streams.append(client, "duty", [json.dumps(d, ensure_ascii=False) for d in docs]
                   + [json.dumps({**docs[0], "event_id": f"{t}-x", "gate_id": "no-such-gate"})])
    drain(Worker(engine, client, config, consumer=f"dl-{t}"), client)

    def shown(at: dt.datetime) -> dict:
        with session_factory(engine)() as s:
            q = Query.from_config(config, data.street.id, at)
            return {"feature": next(f["properties"] for f in gates.features(s, q)["features"] if f["id"] == gate.id),
                    "detail": gates.detail(s, gate.id, q)}

    morning, evening = shown(noon), shown(noon + dt.timedelta(hours=6))
    assert morning["feature"]["guards_on_duty"] == 3 and not morning["feature"]["understaffed"]
    assert morning["detail"]["on_duty"] == "张三、李四、王五"
    assert evening["feature"]["guards_on_duty"] == 1 and evening["feature"]["understaffed"]
    with session_factory(engine)() as s:
        assert len(s.scalars(select(DutyShift).where(DutyShift.gate_id == gate.id)).all()) == 2
        assert queries.duty_shifts(s, [gate.id], noon + dt.timedelta(hours=13)) == {}
    assert any("no-such-gate" in d["reason"] for d in iter_dead(client))
