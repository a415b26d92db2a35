"""pii: personal numbers end where they should, and input cannot hurt — on the real app, real Redis
and each database: sealed intake, raw entries deleted, free text scrubbed, one person one hash,
future times, exports, bounded streams and exports, retention, files and headers."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from unittest import mock

import openpyxl
import pytest
import redis
import shapely
from sqlalchemy import select, update

from dashboard import briefing
from dashboard.app import create_app
from data.access import accounts
from data.access.policy import Role
from data.domain.privacy import Hasher, mask_id, mask_phone, normalise_id, scrub
from data.models import (
    Alert,
    CheckIn,
    Gate,
    HealthCheckIn,
    HomeObservation,
    Person,
    ProcessedEvent,
    ReturneeRegistration,
    WorkOrder,
)
from data.pipeline import streams
from data.pipeline.dead import iter_dead
from data.pipeline.events import EventError, public_alert, validate
from data.pipeline.ingest import Worker
from data.retention import GONE, anonymise, anonymise_feed
from data.settings import PROJECT_ROOT, load
from data.store import make_engine, session_factory
from tests.conftest import (
    KEY,
    config_for,
    file_bytes,
    free_port,
    person_id,
    phone,
    shared_deployment,
    signed_in,
    wait_healthy,
)
from tests.ingesting import count, drain

STREET = "S194"
FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")  # digits NFKC leaves as they are


@pytest.fixture
def app(loaded, redis_url, client, tmp_path):
    engine, data = loaded
    cfg = config_for(tmp_path, engine)
    server = create_app(cfg, redis_url).server
    return {"server": server, "web": signed_in(server), "engine": engine, "data": data, "cfg": cfg,
            "worker": Worker(engine, streams.connect(redis_url), cfg, consumer=f"pii-{uuid.uuid4().hex[:6]}")}


def _now(minutes: float = 0) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat()


def test_pii001_the_intake_appends_no_raw_number_and_raw_entries_leave_at_ack(app, client):
    pid, mobile, gate = person_id(11, "19850505"), phone(88_000_011), app["data"].gates[3].id
    scan = {"event_id": f"pii001-{uuid.uuid4().hex}", "ts": _now(), "gate_id": gate, "direction": "in",
            "person_id": pid, "phone": mobile, "category": "resident", "temperature": 36.4}
    assert app["web"].post("/api/v1/events/checkins", json=scan).status_code == 202
    direct = {**scan, "event_id": f"pii001-direct-{uuid.uuid4().hex}"}  # a producer writing Redis itself
    streams.append(client, "checkins", [json.dumps(direct)])
    entries = client.xrange("opsmap:checkins")
    stored = b"".join(v for _, fields in entries for v in fields.values())
    assert pid.encode() in stored  # the direct write is raw (for now) …
    sealed = [f for _, f in entries if f.get(b"sealed")]
    assert len(sealed) == 1 and pid.encode() not in sealed[0][b"event"] and mobile.encode() not in sealed[0][b"event"]
    drain(app["worker"], client)
    left = b"".join(v for _, fields in client.xrange("opsmap:checkins") for v in fields.values())
    assert pid.encode() not in left and mobile.encode() not in left  # … and gone once stored
    assert count(app["engine"], CheckIn, CheckIn.event_id.in_([scan["event_id"], direct["event_id"]])) == 2
    with session_factory(app["engine"])() as s:
        hashes = set(s.scalars(select(CheckIn.person_hash).where(
            CheckIn.event_id.in_([scan["event_id"], direct["event_id"]]))))
    assert len(hashes) == 1  # the sealed and the raw event are the same person


def test_pii002_one_person_one_hash_so_a_full_width_or_padded_id_still_raises_the_alert(app, client):
    base = person_id(22, "19770707")
    gate = app["data"].gates[5].id
    obs = {"event_id": f"pii002-o-{uuid.uuid4().hex}", "ts": _now(-120), "person_id": base,
           "category": "home_observation", "compound_id": app["data"].compounds[5].id}
    assert app["web"].post("/api/v1/events/cases", json=obs).status_code == 202
    drain(app["worker"], client)
    variants = [base, base.translate(FULL_WIDTH), base + "\n", " " + base[:6] + " " + base[6:], base.lower(),
                base.translate(ARABIC_INDIC)]
    ids = []
    for i, variant in enumerate(variants):
        out = {"event_id": f"pii002-out-{i}-{uuid.uuid4().hex}", "ts": _now(), "gate_id": gate, "direction": "out",
               "person_id": variant, "category": "resident", "temperature": 36.5}
        assert app["web"].post("/api/v1/events/checkins", json=out).status_code == 202, variant
        ids.append(out["event_id"])
    drain(app["worker"], client)
    assert count(app["engine"], Alert, Alert.kind == "quarantine_violation", Alert.event_id.in_(ids)) == len(variants)
    hasher = Hasher(KEY.encode())
    assert {validate("cases", {**obs, "person_id": v}, hasher).data["person_id_hash"] for v in variants} == {
        hasher(normalise_id(base))}
    with pytest.raises(EventError, match="person_id"):
        validate("cases", {**obs, "person_id": base[:-1] + "Y"}, hasher)


def test_pii003_numbers_typed_into_free_text_are_masked_everywhere(app, client):
    mobile, pid = phone(88_000_033), person_id(33, "19660606")
    spaced = f"{mobile[:3]} {mobile[3:7]} {mobile[7:]}"
    order = f"pii003-{uuid.uuid4().hex[:8]}"
    c = app["data"].compounds[7]
    create = {"event_id": f"{order}-c", "ts": _now(), "order_id": order, "action": "create", "category": "other",
              "priority": "normal", "description": f"联系人 {spaced}，身份证 {pid.translate(FULL_WIDTH)}",
              "lat": c.lat, "lng": c.lng}
    assert app["web"].post("/api/v1/events/workorders", json=create).status_code == 202
    bad = {**create, "event_id": f"{order}-bad", "action": "fly", "note": f"再打 {mobile}"}  # parked, scrubbed
    streams.append(client, "workorders", [json.dumps(bad, ensure_ascii=False)])
    drain(app["worker"], client)
    with session_factory(app["engine"])() as s:
        description = s.get(WorkOrder, order).description
    assert mask_phone(mobile) in description and mobile not in description and pid not in description
    assert "310***********" in description  # the ID's first 3 and last 4 kept
    seen = json.dumps(app["web"].get("/api/v1/feed?n=500").get_json(), ensure_ascii=False)
    seen += json.dumps(app["web"].get(f"/api/v1/entities/workorders/{order}").get_json(), ensure_ascii=False)
    seen += json.dumps(list(iter_dead(client)), ensure_ascii=False)
    assert bad["event_id"] in seen  # the dead letter is there …
    for raw in (mobile, spaced, pid, pid.translate(FULL_WIDTH)):
        assert raw not in seen  # … without the numbers
    assert scrub("门牌 558号，订单 2022041012，电话 13912345678") == "门牌 558号，订单 2022041012，电话 139****5678"


def test_pii004_an_event_from_the_future_is_refused_with_the_reason(app, client):
    soon, later = _now(5), _now(60 * 24 * 365 * 7000)  # five minutes ahead is a clock's drift; 9000 AD is not
    gate = app["data"].gates[8].id
    report = {"event_id": f"pii004-{uuid.uuid4().hex}", "facility_id": gate, "status": "closed", "reporter": "测试"}
    refused = app["web"].post("/api/v1/events/facilities", json={**report, "ts": later})
    assert refused.status_code == 422
    assert refused.get_json()["rejected"][0]["errors"] == [
        {"field": "ts", "problem": "more than 10 minutes in the future (check the producer's clock)"}]
    ok = app["web"].post("/api/v1/events/facilities", json={**report, "event_id": report["event_id"] + "-ok",
                                                           "ts": soon})
    assert ok.status_code == 202
    past = app["web"].post("/api/v1/events/facilities", json={**report, "event_id": report["event_id"] + "-2022",
                                                             "ts": "2022-04-10T08:00:00+08:00"})
    assert past.status_code == 202  # history replays
    streams.append(client, "facilities", [json.dumps({**report, "event_id": report["event_id"] + "-direct",
                                                      "ts": later})])
    drain(app["worker"], client)
    parked = [d for d in iter_dead(client) if report["event_id"] + "-direct" in d["event"]]
    assert parked and "ts: more than 10 minutes in the future" in parked[0]["reason"]


def test_pii005_a_formula_in_a_description_stays_text_and_exports_say_who(app, client):
    order = f"pii005-{uuid.uuid4().hex[:8]}"
    c = app["data"].compounds[9]
    formula = '=HYPERLINK("http://x","y")'
    assert app["web"].post("/api/v1/events/workorders", json={
        "event_id": f"{order}-c", "ts": _now(-30), "order_id": order, "action": "create", "category": "other",
        "priority": "normal", "description": formula, "lat": c.lat, "lng": c.lng}).status_code == 202
    drain(app["worker"], client)
    day = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    got = app["web"].get(f"/briefing.xlsx?date={day}&cutoff=23:59")
    assert got.status_code == 200 and got.headers["Cache-Control"] == "no-store"
    book = openpyxl.load_workbook(io.BytesIO(got.data))
    cells = [cell for sheet in book.worksheets for row in sheet.iter_rows() for cell in row if cell.value == formula]
    assert cells and all(cell.data_type == "s" for cell in cells)
    about = {row[0].value: row[1].value for row in book["说明"].iter_rows(min_row=2)}
    assert about["导出"].startswith("t-")  # the signed-in exporter's name, and when


def test_pii006_ten_parallel_pdf_requests_render_it_once(app):
    web = app["web"]
    cookie = web.get_cookie("opsmap_session").value
    path = "/briefing.pdf?date=2022-04-10&cutoff=07:00"
    with mock.patch.object(briefing, "pdf", wraps=briefing.pdf) as rendered:
        def one(_: int) -> int:
            client = app["server"].test_client()
            client.set_cookie("opsmap_session", cookie)
            return client.get(path).status_code

        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            assert list(pool.map(one, range(10))) == [200] * 10
    assert rendered.call_count == 1


def test_pii007_retention_anonymises_person_level_rows_and_keeps_counts(loaded, tmp_path):
    engine, data = loaded
    before = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
    from data.store import transaction

    tag = uuid.uuid4().hex[:8]
    with transaction(engine) as s:
        reg = ReturneeRegistration(person_hash="a" * 64, person_masked="3101**********0001", phone_masked="139****0001",
                                   origin="湖北省", status="required", created_at=before - dt.timedelta(days=1))
        s.add(reg)
        s.flush()
        person = Person(id_hash=uuid.uuid4().hex * 2, id_masked="3101**********0002")
        s.add(person)
        s.flush()
        c = data.compounds[0]
        obs = HomeObservation(person_id=person.id, compound_id=c.id, address=c.address,
                              geom=shapely.Point(c.lng, c.lat), start_at=before - dt.timedelta(days=3),
                              planned_end_at=before + dt.timedelta(days=11))
        s.add(obs)
        s.flush()
        old = HealthCheckIn(observation_id=obs.id, ts=before - dt.timedelta(days=1), temperature=37.9, symptoms="咳嗽")
        recent = HealthCheckIn(observation_id=obs.id, ts=before + dt.timedelta(days=1), temperature=36.5)
        s.add_all([old, recent])
        s.flush()
        health_id, recent_id = old.id, recent.id
        s.add_all([CheckIn(event_id=f"{tag}-{i}", gate_id=data.gates[0].id, ts=before - dt.timedelta(days=i + 1),
                           direction="in", person_hash="a" * 64, person_masked="3101**********0001",
                           phone_masked="139****0001", category="returnee", temperature=36.5, origin="湖北省",
                           registration_id=reg.id) for i in range(3)])
    env = {"DATABASE_URL": engine.url.render_as_string(hide_password=False), "OPSMAP_VAR_DIR": str(tmp_path),
           "PATH": os.environ["PATH"]}
    out = subprocess.run([sys.executable, str(PROJECT_ROOT / "app.py"), "purge", "--before", "2001-01-01"],
                         env=env, capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert out.returncode == 0, out.stderr
    with session_factory(engine)() as s:
        scans = s.scalars(select(CheckIn).where(CheckIn.event_id.like(f"{tag}-%"))).all()
        assert len(scans) == 3  # the counts stay …
        assert {(c.person_hash, c.person_masked, c.phone_masked, c.origin) for c in scans} == {("", GONE, None, None)}
        kept = s.get(ReturneeRegistration, reg.id)
        assert (kept.person_hash, kept.person_masked, kept.phone_masked) == ("", GONE, None)  # … who goes
    assert anonymise(engine, before)["checkins"] == 0  # once only
    with session_factory(engine)() as s:
        assert s.get(HealthCheckIn, health_id) is None and s.get(HealthCheckIn, recent_id) is not None


def test_pii015_retention_takes_the_person_out_of_alerts_the_feed_violation_orders_and_the_ledger(
        loaded, client, config):
    engine, data = loaded
    t, pid = uuid.uuid4().hex[:8], person_id(715, "19750505")
    masked = mask_id(pid)
    comp = data.compounds[12]
    gate = next(g for g in data.gates if g.compound_id == comp.id)
    day = dt.datetime(2000, 1, 3, 9, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # before the cut-off below
    worker = Worker(engine, client, config, consumer=f"test-{t}")
    streams.append(client, "cases", [json.dumps({"event_id": f"{t}-obs", "ts": day.isoformat(), "person_id": pid,
                                                 "category": "home_observation", "compound_id": comp.id})])
    drain(worker, client)
    out = (day + dt.timedelta(days=2)).isoformat()  # walks out, with a fever: two alerts and an order
    streams.append(client, "checkins", [json.dumps({"event_id": f"{t}-out", "ts": out, "gate_id": gate.id,
                                                    "direction": "out", "person_id": pid, "category": "resident",
                                                    "temperature": 38.6})])
    drain(worker, client)
    streams.append(client, "workorders", [json.dumps({"event_id": f"{t}-cancel", "ts": out, "order_id": f"auto-{t}-out",
                                                      "action": "cancel", "note": "已劝返"})])
    drain(worker, client)
    ids = [f"{t}-obs", f"{t}-out", f"{t}-cancel"]

    def person_named() -> dict[str, list[str]]:
        """Where the masked number still is, by place."""
        with session_factory(engine)() as s:
            alerts = s.scalars(select(Alert).where(Alert.event_id == f"{t}-out")).all()
            order = s.get(WorkOrder, f"auto-{t}-out")
            ledger = s.scalars(select(ProcessedEvent).where(ProcessedEvent.event_id.in_(ids))).all()
            places = {"alerts": [a.message for a in alerts], "order": [order.description],
                      "ledger": [json.dumps(r.effects, ensure_ascii=False) for r in ledger]}
            home = [order.address] if order.address == comp.address else []  # where the person lives
        places["feed"] = [raw.decode() for name in streams.FEED_STREAMS
                          for raw in client.lrange(streams.feed_key(name), 0, -1)]
        named = {where: [text for text in texts if masked in text] for where, texts in places.items()}
        named["order"] += home
        return named

    named = person_named()
    assert all(named.values()), named  # the person is named in each place before …
    before = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
    with session_factory(engine, write=True)() as s, s.begin():  # … and these ledger rows are that old too
        s.execute(update(ProcessedEvent).where(ProcessedEvent.event_id.in_(ids)).values(processed_at=day))
    feed_before = {name: client.llen(streams.feed_key(name)) for name in streams.FEED_STREAMS}
    done = anonymise(engine, before)
    assert done["alerts"] >= 2 and done["violation_orders"] >= 1 and done["ledger_effects"] >= 3
    assert anonymise_feed(client, before) >= 2
    assert person_named() == {"alerts": [], "order": [], "ledger": [], "feed": []}
    with session_factory(engine)() as s:  # what happened and where stays
        messages = {a.kind: a.message for a in s.scalars(select(Alert).where(Alert.event_id == f"{t}-out"))}
        assert messages == {kind: public_alert(kind, gate.name) for kind in ("fever", "quarantine_violation")}
        assert s.get(WorkOrder, f"auto-{t}-out").state == "cancelled"
    assert {name: client.llen(streams.feed_key(name)) for name in streams.FEED_STREAMS} == feed_before
    assert anonymise(engine, before)["alerts"] == 0 and anonymise_feed(client, before) == 0  # once only


def test_pii008_headers_errors_and_hosts(app):
    web = app["web"]
    page = web.get("/signin")
    for header in ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options"):
        assert header in page.headers, header
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert "script-src 'self' 'sha256-" in page.headers["Content-Security-Policy"]
    payload = "<svg onload=alert(1)>"
    bad = web.get(f"/api/v1/summary?street={STREET}&as_of={payload}")
    assert bad.status_code == 400 and bad.mimetype == "application/json" and "<svg" in bad.get_json()["error"]
    brief = web.get(f"/briefing?street={STREET}&date={payload}")
    assert brief.status_code == 400 and brief.mimetype == "text/plain"
    assert web.get(f"/api/v1/entities/gates/{app['data'].gates[0].id}").headers["Cache-Control"] == "no-store"
    assert web.get("/healthz", headers={"Host": "evil.example"}).status_code == 400  # DNS rebinding
    assert web.post("/api/v1/events/checkins", data=b"[" + b" " * (9 * 1024 * 1024) + b"]",
                    content_type="application/json").status_code == 413


def test_pii009_change_streams_are_bounded_and_healthz_answers_under_gunicorn(tmp_path, redis_url):
    env = shared_deployment(tmp_path, redis_url) | {"OPSMAP_STREAM_KEEPALIVE_S": "1"}
    engine = make_engine(env["DATABASE_URL"])
    cookies = []
    for n in range(3):
        account = accounts.add_user(engine, f"pii009-{n}", [Role("viewer", "S195")])
        cookies.append(accounts.open_session(engine, dt.timedelta(hours=1), account_id=account.id).secret)
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("gunicorn")), "-w", "1", "-b", f"127.0.0.1:{port}",
                             "app:server"], env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # threads from gunicorn.conf.py
    url, held = f"http://127.0.0.1:{port}", []
    try:
        wait_healthy(url, proc)

        def stream(cookie: str) -> int:
            req = urllib.request.Request(f"{url}/api/v1/stream", headers={"Cookie": f"opsmap_session={cookie}"})
            try:
                held.append(urllib.request.urlopen(req, timeout=30))
                return held[-1].status
            except urllib.error.HTTPError as err:
                assert err.headers["Retry-After"]
                return err.code

        assert [stream(cookies[i // 4]) for i in range(8)] == [200] * 8  # two sessions, four each
        assert stream(cookies[0]) == 503  # a fifth of one session
        start = time.monotonic()
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as resp:
            assert resp.status == 200
        assert time.monotonic() - start < 1.0
        held.pop().close()  # a closed stream gives its slot back (when its next keep-alive finds it gone)
        deadline = time.monotonic() + 10  # keep-alives 1 s apart here (15 by default)
        while (code := stream(cookies[1])) != 200:
            assert time.monotonic() < deadline and code == 503
            time.sleep(0.2)
    finally:
        for resp in held:
            resp.close()
        proc.terminate()
        proc.wait(timeout=30)


def test_pii010_the_var_directory_is_private(app_url, app_var):
    assert oct(app_var.stat().st_mode & 0o777) == "0o700"
    loose = [str(p) for p in app_var.rglob("*") if p.stat().st_mode & 0o077]
    assert loose == []
    assert oct((app_var / "redis" / "redis.pass").stat().st_mode & 0o777) == "0o600"


def _scan_at_rest(app_var, secrets: list[str]) -> list[str]:
    """Where any of ``secrets`` is found: the embedded Redis's files, the SQLite files, every log
    in the var directory, every stream entry and the feed."""
    found = []
    for path in app_var.rglob("*"):
        if path.is_file():
            data = file_bytes(path)  # not opened here: the test process holds connections to the database
            found += [f"{path.name}:{s}" for s in secrets if s.encode() in data]
    info = json.loads((app_var / "redis" / "server.json").read_text())
    r = redis.Redis.from_url(info["url"])
    for key in r.scan_iter("*"):
        if r.type(key) == b"stream":
            blob = b"".join(v for _, fields in r.xrange(key) for v in fields.values())
            found += [f"{key.decode()}:{s}" for s in secrets if s.encode() in blob]
    return found


def test_pii011_after_a_thousand_scans_no_raw_number_rests_anywhere(app_url, app_var):
    from tests.conftest import open_url, post_event

    db = make_engine(f"sqlite:///{app_var / 'opsmap.db'}")
    with session_factory(db)() as s:
        gate = s.scalars(select(Gate.id).order_by(Gate.id)).first()
    tag = uuid.uuid4().hex[:8]
    ids, phones = [person_id(i, "19920202") for i in range(1000)], [phone(55_000_000 + i) for i in range(1000)]
    batch = [{"event_id": f"pii011-{tag}-{i}", "ts": _now(), "gate_id": gate, "direction": "in", "person_id": ids[i],
              "phone": phones[i], "category": "visitor", "temperature": 36.6} for i in range(1000)]
    req = urllib.request.Request(f"{app_url}/api/v1/events/checkins", data=json.dumps(batch).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with open_url(req, timeout=60) as resp:
        assert resp.status == 202
    typed = phone(55_999_999)
    post_event(app_url, "workorders", {"event_id": f"pii011-{tag}-w", "ts": _now(), "order_id": f"pii011-{tag}",
                                       "action": "create", "category": "other", "priority": "normal",
                                       "description": f"请回电 {typed}", "lat": 31.2395, "lng": 121.4829})
    deadline = time.monotonic() + 60
    while count(db, CheckIn, CheckIn.event_id.like(f"pii011-{tag}-%")) < 1000:
        assert time.monotonic() < deadline, "the scans were not ingested"
        time.sleep(0.3)
    day = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    with open_url(f"{app_url}/briefing.pdf?date={day}&cutoff=23:59", timeout=120) as resp:
        shown = subprocess.run(["pdftotext", "-", "-"], input=resp.read(), capture_output=True, timeout=60).stdout
    with open_url(f"{app_url}/briefing.xlsx?date={day}&cutoff=23:59", timeout=120) as resp:
        book = openpyxl.load_workbook(io.BytesIO(resp.read()))
    shown += "".join(str(c.value) for sheet in book.worksheets for row in sheet.iter_rows() for c in row).encode()
    with open_url(f"{app_url}/api/v1/feed?n=500") as resp:
        shown += resp.read()
    assert f"pii011-{tag}".encode() in shown  # the order is in the exports and the feed …
    assert "导出人".encode() in shown and "测试指挥".encode() in shown  # the PDF says who exported it
    secrets = [ids[0], ids[500], ids[999], phones[0], phones[999], typed]
    assert _scan_at_rest(app_var, secrets) == []  # … and no raw number is in any of them, or at rest
    assert [s for s in secrets if s.encode() in shown] == []


def test_pii012_the_hmac_key_can_come_from_a_file(tmp_path):
    key = tmp_path / "key"
    key.write_text("a-key-from-a-file-0123456789\n")
    from_file = Hasher.from_config(load(environ={"OPSMAP_HMAC_KEY_FILE": str(key), "OPSMAP_VAR_DIR": str(tmp_path)}))
    inline = Hasher.from_config(load(environ={"OPSMAP_HMAC_KEY": "a-key-from-a-file-0123456789"}))
    assert from_file("x") == inline("x") and not (tmp_path / "hmac.key").exists()


def test_pii013_a_raw_entry_leaves_the_embedded_redis_files_too(loaded, tmp_path, config):
    from data.pipeline.redis_server import EmbeddedRedis

    engine, data = loaded
    server = EmbeddedRedis(tmp_path / "redis")
    client = redis.Redis.from_url(server.start())
    try:
        pid = person_id(131, "19510101")
        streams.append(client, "checkins", [json.dumps({
            "event_id": f"pii013-{uuid.uuid4().hex}", "ts": _now(), "gate_id": data.gates[2].id, "direction": "in",
            "person_id": pid, "category": "resident", "temperature": 36.5})])
        worker = Worker(engine, client, config, consumer="pii013")
        worker.compact_every_s = 0  # at once, for the test (the default is every ten minutes)
        aof = tmp_path / "redis" / "appendonly.aof"
        assert pid.encode() in aof.read_bytes()  # a producer wrote it raw
        drain(worker, client)
        worker.step(block_ms=10)  # the step after the deletion asks for the rewrite
        deadline = time.monotonic() + 20
        while client.info("persistence")["aof_rewrite_in_progress"] or pid.encode() in aof.read_bytes():
            assert time.monotonic() < deadline, "the append-only file still holds the raw number"
            time.sleep(0.1)
        assert client.xlen("opsmap:checkins") == 0
    finally:
        server.stop()


def test_pii014_making_the_var_directory_private_survives_files_that_come_and_go(tmp_path):
    """Another process's SQLite journal or WAL files come and go while a start walks the var
    directory (two gunicorn workers start at once): a file gone between the listing and its
    chmod is skipped, not a failed start (the likely cause of a gunicorn worker that failed to
    boot in one CI run, srv002: exit 3)."""
    import threading

    import app as opsmap_app
    from data.settings import load

    config = load(environ={"OPSMAP_VAR_DIR": str(tmp_path)})
    (tmp_path / "kept").write_text("x")
    stop = threading.Event()

    def churn() -> None:  # as SQLite makes and removes a journal next to its database
        while not stop.is_set():
            for i in range(20):
                (tmp_path / f"db-journal-{i}").write_bytes(b"")
            for i in range(20):
                (tmp_path / f"db-journal-{i}").unlink()

    walker = threading.Thread(target=churn)
    walker.start()
    try:
        for _ in range(300):
            opsmap_app.private_files(config)
    finally:
        stop.set()
        walker.join()
    assert oct((tmp_path / "kept").stat().st_mode & 0o777) == "0o600"


def test_pii016_panels_travel_as_text_and_nothing_that_could_run_is_drawn():
    """The panels go to the page as plain data that assets/panels.js draws (components.plain):
    what an event said stays a text node, and a component, tag, prop or style that could carry
    markup, a link or a handler is refused on the server, naming it."""
    from dash import dcc, html

    from dashboard import components

    markup = '<img src=x onerror="window.__pwned=1">'
    feed = components.feed_panel([{"text": markup, "ts": "2022-04-10T00:05:00+00:00", "severity": "urgent"}])
    assert components.plain(feed) == [["div", {"class": "opsmap-card", "id": "panel-feed"}, {}, [
        ["h2", {}, {}, ["实时播报"]],
        ["ul", {"class": "feed"}, {}, [["li", {"class": "feed-item urgent", "data-time": "08:05"}, {}, [markup]]]]]]]
    assert components.plain(html.Div(["a", 1, None, [html.Span("b")]], style={"--share": "40%"})) == [
        ["div", {}, {"--share": "40%"}, ["a", "1", ["span", {}, {}, ["b"]]]]]
    for refused, named in ((html.A("x", href="javascript:alert(1)"), "^A is not"), (dcc.Input(value="x"), "^Input "),
                           (html.Div(n_clicks=1), "the prop n_clicks"), (html.Div(style={"background": "url(x)"}),
                                                                        "not \\['background'\\]"),
                           (html.Div([html.Img(src="x")]), "^Img "), (b"<b>ok</b>", "^bytes "),
                           (components.Control("image", {"src": "x"}), "type 'image'"),
                           (components.Control("text", {"onfocus": "x"}), "\\['onfocus'\\]"),
                           (components.Control("text", {"formaction": "x"}), "\\['formaction'\\]")):
        with pytest.raises(TypeError, match=named):
            components.plain(refused)
    # the officer's forms: inputs of three types with no handlers, what they hold as a value
    typed = html.Label(["备注", components.Control("text", {"value": markup, "data-field": "note", "maxlength": 9})])
    assert components.plain(typed) == [["label", {}, {}, ["备注", ["input", {
        "type": "text", "value": markup, "data-field": "note", "maxlength": "9"}, {}, []]]]]
