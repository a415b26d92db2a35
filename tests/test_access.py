"""acc: who may see and do what — sign-in, roles scoped to street and committee, producer tokens,
screens, CSRF and the audit trail, on the real app (Flask test client), real Redis and each database."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import uuid
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import select

from dashboard.access import CSRF_COOKIE, SESSION_COOKIE
from dashboard.app import create_app
from data.access import accounts, audit, devices
from data.access.models import AuditEntry, ProducerToken
from data.access.policy import Actor, Place, Role
from data.domain.privacy import mask_id, mask_phone
from data.models import Gate, HomeObservation, WorkOrder
from data.pipeline import streams
from data.pipeline.ingest import Worker
from data.settings import PROJECT_ROOT
from data.store import session_factory, transaction
from tests.conftest import config_for, person_id, phone, signed_in
from tests.ingesting import drain

STREET = "S194"


# --- the decision itself ------------------------------------------------------------------------------


def test_acc001_roles_matrix():
    commander = Actor("user", "c", (Role("commander", STREET),))
    officer = Actor("user", "o", (Role("officer", STREET, "S194-J01"),))
    viewer = Actor("user", "v", (Role("viewer", STREET),))
    admin = Actor("user", "a", (Role("admin"),))
    screen = Actor("screen", "1-大屏", (Role("screen", STREET),))
    token = Actor("token", "scanner", (Role("producer", STREET),), streams=frozenset({"checkins"}))
    j01, j02, other = Place(STREET, "S194-J01"), Place(STREET, "S194-J02"), Place("S195", "S195-J01")
    rows = {who.name: (who.may_view(STREET), who.person_scope(STREET).covers("S194-J01"),
                       who.person_scope(STREET).covers("S194-J02"), who.may_act(j01), who.may_act(j02),
                       who.may_act(other), who.may_open("map"), who.may_open("screen"), who.may_open("admin"))
            for who in (commander, officer, viewer, admin, screen, token)}
    assert rows == {
        #             view   pers01 pers02 act01  act02  actS195 map    screen admin
        "c": (True, True, True, True, True, False, True, True, False),
        "o": (True, True, False, True, False, False, True, True, False),
        "v": (True, False, False, False, False, False, True, True, False),
        "a": (False, False, False, False, False, False, True, True, True),
        "1-大屏": (True, False, False, False, False, False, False, True, False),
        "scanner": (False, False, False, False, False, False, False, False, False),
    }
    assert token.may_post("checkins", STREET) and not token.may_post("checkins", "S195")
    assert not token.may_post("cases", STREET) and not commander.may_post("checkins", STREET)


# --- a small live street ------------------------------------------------------------------------------


@pytest.fixture
def world(loaded, redis_url, client, tmp_path):
    """Two home observations in two committees (A and B), one of them walking out of a gate with
    a phone number, an order dispatched to committee B; all ingested through the real pipeline."""
    engine, data = loaded
    cfg = config_for(tmp_path, engine, OPSMAP_SIGNIN_LIMIT_ACCOUNT="3 per 15 minutes",
                     OPSMAP_SIGNIN_LIMIT_ADDRESS="6 per 15 minutes", OPSMAP_TOKEN_RATE_LIMIT="4 per minute")
    server = create_app(cfg, redis_url).server
    ca = data.compounds[11]
    cb = next(c for c in data.compounds if c.committee_id != ca.committee_id)
    with session_factory(engine)() as s:
        gate = s.scalars(select(Gate).where(Gate.compound_id == ca.id)).first() \
            or s.scalars(select(Gate)).first()
    n = uuid.uuid4().int % 900
    birth = f"19{uuid.uuid4().int % 90 + 10}0{uuid.uuid4().int % 9 + 1}{uuid.uuid4().int % 18 + 10}"
    pa, pb, mobile = person_id(n, birth), person_id(n + 1, birth), phone(70_000_000 + n)
    now = dt.datetime.now(dt.UTC)
    tag = f"acc-{uuid.uuid4().hex[:12]}"
    send = [  # (stream, batch): the order is created and dispatched before the officers act on it
        ("cases", [{"event_id": f"{tag}-oa", "ts": (now - dt.timedelta(hours=2)).isoformat(), "person_id": pa,
                   "category": "home_observation", "compound_id": ca.id, "address": f"{ca.address}{n}号楼302室"},
                  {"event_id": f"{tag}-ob", "ts": (now - dt.timedelta(hours=2)).isoformat(), "person_id": pb,
                   "category": "home_observation", "compound_id": cb.id, "address": f"{cb.address}{n}号楼501室"}]),
        ("workorders", [{"event_id": f"{tag}-w1", "ts": (now - dt.timedelta(seconds=2)).isoformat(),
                         "order_id": f"{tag}-B", "action": "create", "category": "quarantine_violation",
                         "priority": "normal", "description": f"邻居电话 {mobile} 反映", "lat": cb.lat, "lng": cb.lng},
                        {"event_id": f"{tag}-w2", "ts": (now - dt.timedelta(seconds=1)).isoformat(),
                         "order_id": f"{tag}-B", "action": "dispatch", "committee_id": cb.committee_id,
                         "assignee": "居委值班"}]),
    ]
    worker = Worker(engine, streams.connect(redis_url), cfg, consumer=f"acc-{n}")
    commander = signed_in(server)
    for stream, batch in send:
        assert commander.post(f"/api/v1/events/{stream}", json=batch).status_code == 202
        drain(worker, streams.connect(redis_url))
    walk = {"event_id": f"{tag}-out", "ts": now.isoformat(), "gate_id": gate.id, "direction": "out",
            "person_id": pa, "phone": mobile, "category": "resident", "temperature": 36.6}
    assert commander.post("/api/v1/events/checkins", json=walk).status_code == 202
    drain(worker, streams.connect(redis_url))
    with session_factory(engine)() as s:
        obs = {o.compound_id: o for o in s.scalars(select(HomeObservation).where(
            HomeObservation.compound_id.in_([ca.id, cb.id]), HomeObservation.ended_at.is_(None)))}
    return {"server": server, "engine": engine, "cfg": cfg, "ca": ca, "cb": cb, "gate": gate,
            "obs_a": obs[ca.id], "obs_b": obs[cb.id], "order_b": f"{tag}-B", "commander": commander,
            "mobile": mobile, "secrets": [mask_id(pa), mask_phone(mobile), obs[ca.id].address, obs[cb.id].address]}


def _officer(world, committee_id: str):
    return signed_in(world["server"], [Role("officer", STREET, committee_id)])


def _feature(fc: dict, fid: str) -> dict | None:
    return next((f for f in fc["features"] if str(f["id"]) == fid), None)


# --- no sign-in, no way in -----------------------------------------------------------------------------


def test_acc002_without_a_session_every_read_is_401_and_pages_ask_to_sign_in(world):
    anon, oid = world["server"].test_client(), world["obs_a"].id
    for path in (f"/api/v1/layers/observations?street={STREET}", f"/api/v1/entities/observations/{oid}",
                 f"/api/v1/summary?street={STREET}", "/api/v1/feed", "/api/v1/stream", "/_dash-layout",
                 "/_dash-dependencies"):
        got = anon.get(path)
        assert got.status_code == 401, path
        assert got.get_json() == {"error": "sign in first"}
    for path in ("/", "/officer", "/screen", "/briefing.pdf?date=2022-04-10", "/admin"):
        got = anon.get(path)
        assert got.status_code == 302 and got.headers["Location"].startswith("/signin?next="), path
    assert "opsmap 登录" in anon.get("/signin").get_data(as_text=True)


def test_acc003_intake_needs_a_token_of_its_stream_and_street(world, redis_url):
    engine, server = world["engine"], world["server"]
    event = {"event_id": f"acc003-{dt.datetime.now().timestamp()}", "ts": dt.datetime.now(dt.UTC).isoformat(),
             "gate_id": world["gate"].id, "direction": "in", "person_id": person_id(3), "category": "resident",
             "temperature": 36.5}
    web = server.test_client()
    assert web.post("/api/v1/events/checkins", json=event).status_code == 401
    name = f"scan-{event['event_id']}"
    token = devices.create_token(engine, name, ["checkins"], STREET)
    other = "opsmap_other-street-token"  # a token of a street this database does not hold
    with transaction(engine) as s:
        s.add(ProducerToken(name=name + "-x", token_hash=accounts.digest(other), streams="checkins", street_id="S195",
                            created_at=dt.datetime.now(dt.UTC)))
    bearer = {"Authorization": f"Bearer {token}"}
    assert web.post("/api/v1/events/cases", json=event, headers=bearer).status_code == 403  # not its stream
    refused = web.post("/api/v1/events/checkins", json=event, headers={"Authorization": f"Bearer {other}"})
    assert refused.status_code == 403 and "outside the street" in refused.get_json()["error"]
    assert web.post("/api/v1/events/checkins", json=event, headers=bearer).status_code == 202
    assert web.get(f"/api/v1/summary?street={STREET}", headers=bearer).status_code == 401  # a token reads nothing
    assert [web.post("/api/v1/events/checkins", json=event, headers=bearer).status_code
            for _ in range(4)] == [202, 202, 202, 429]  # OPSMAP_TOKEN_RATE_LIMIT, 4 a minute here, per token
    devices.revoke_token(engine, name)
    assert web.post("/api/v1/events/checkins", json=event, headers=bearer).status_code == 401


# --- person-level details by committee ----------------------------------------------------------------


def test_acc004_an_officer_sees_persons_of_own_committee_and_counts_elsewhere(world):
    a, b = world["obs_a"], world["obs_b"]
    officer = _officer(world, world["ca"].committee_id)
    fc = officer.get(f"/api/v1/layers/observations?street={STREET}").get_json()
    assert officer.get(f"/api/v1/layers/observations?street={STREET}").headers["Cache-Control"] == "no-store"
    viewer = signed_in(world["server"], [Role("viewer", STREET)])
    assert viewer.get(f"/api/v1/layers/observations?street={STREET}").headers["Cache-Control"] != "no-store"
    mine = _feature(fc, str(a.id))
    assert mine is not None and mine["properties"]["address"] == a.address
    assert _feature(fc, str(b.id)) is None  # the other committee's point is not sent …
    counted = _feature(fc, f"c-{world['cb'].id}")  # … only a count at its compound
    assert counted["properties"]["count"] >= 1 and "address" not in counted["properties"]
    assert b.address not in json.dumps(fc, ensure_ascii=False)
    full = world["commander"].get(f"/api/v1/layers/observations?street={STREET}").get_json()
    assert _feature(full, str(b.id))["properties"]["address"] == b.address  # a commander sees both
    own = officer.get(f"/api/v1/entities/observations/{a.id}").get_json()
    assert own["person"] == world["secrets"][0] and own["address"] == a.address
    other = officer.get(f"/api/v1/entities/observations/{b.id}").get_json()
    assert set(other) == {"id", "compound_id", "active", "day", "days", "checked_in_today"}
    order = officer.get(f"/api/v1/entities/workorders/{world['order_b']}").get_json()
    assert "description" not in order and world["secrets"][1] not in json.dumps(order, ensure_ascii=False)
    with session_factory(world["engine"])() as s:
        viewed = s.scalars(select(AuditEntry).where(AuditEntry.action == "view.person",
                                                    AuditEntry.target == f"observations:{a.id}")).all()
        layer_views = s.scalars(select(AuditEntry.detail).where(AuditEntry.action == "view.layer",
                                                                AuditEntry.target == f"observations:{STREET}")).all()
    assert viewed and all(e.ok for e in viewed)
    assert {"scope": world["ca"].committee_id} in layer_views and {"scope": "all"} in layer_views
    assert officer.get("/api/v1/layers/gates?street=S195").status_code == 403  # not a street of theirs


def _act_payload(action: str, entity_layer: str, entity_id: str, inputs: dict[str, str]) -> dict:
    """The body dash-renderer posts when an officer taps an action's button (assets/officer.js
    sets the store officer-submit; officer_page.act answers)."""
    return {"output": "..officer-msg.children...officer-msg.className...officer-done.data..",
            "outputs": [{"id": "officer-msg", "property": "children"}, {"id": "officer-msg", "property": "className"},
                        {"id": "officer-done", "property": "data"}],
            "inputs": [{"id": "officer-submit", "property": "data",
                        "value": {"action": action, "values": inputs, "n": 1}}],
            "changedPropIds": ["officer-submit.data"],
            "state": [{"id": "officer-selected", "property": "data", "value": {"layer": entity_layer, "id": entity_id}},
                      {"id": "officer-done", "property": "data", "value": 0}]}


def test_acc005_a_forged_callback_changes_nothing_and_a_foreign_order_is_refused(world, client):
    gate = world["gate"].id
    body = _act_payload("gate_status", "gates", gate, {"status": "open", "guards_on_duty": "50"})
    before = client.xlen("opsmap:facilities")
    anon = world["server"].test_client()
    assert anon.post("/_dash-update-component", json=body).status_code == 403  # no session
    officer = _officer(world, world["ca"].committee_id)
    bare = world["server"].test_client()
    bare.set_cookie(SESSION_COOKIE, officer.get_cookie(SESSION_COOKIE).value)
    assert bare.post("/_dash-update-component", json=body).status_code == 403  # a session, no CSRF token
    assert bare.post("/_dash-update-component", json=body,
                     headers={"X-CSRFToken": "guess", "Origin": "http://evil.example"}).status_code == 403
    assert client.xlen("opsmap:facilities") == before
    # the same body with the session's token goes through (the forged ones above were refused for
    # the token alone): here, as an officer of committee A acting on committee B's order, it is refused
    order = _act_payload("accept", "workorders", world["order_b"], {"note": "我来"})
    answer = officer.post("/_dash-update-component", json=order)
    assert answer.status_code == 200
    assert "无权操作" in answer.get_data(as_text=True)
    with session_factory(world["engine"])() as s:
        assert s.get(WorkOrder, world["order_b"]).state == "dispatched"
        refused = s.scalars(select(AuditEntry).where(AuditEntry.action == "action.accept",
                                                     AuditEntry.target == f"workorders:{world['order_b']}")).all()
    assert refused and not refused[-1].ok
    mine = _officer(world, world["cb"].committee_id)  # the order's own committee may
    before = client.xlen("opsmap:workorders")
    answer = mine.post("/_dash-update-component", json=order)
    assert answer.status_code == 200 and "无权" not in answer.get_data(as_text=True)
    assert client.xlen("opsmap:workorders") == before + 1
    viewer = signed_in(world["server"], [Role("viewer", STREET)])
    assert "无权操作" in viewer.post("/_dash-update-component", json=order).get_data(as_text=True)
    # a form is bounded whoever sends it: each problem named, nothing appended
    before = client.xlen("opsmap:workorders")
    for values, said in (({"note": "长" * 2001}, "备注：不能超过 2000 个字"), ({"note": {"$gt": ""}}, "备注：填写有误"),
                         ({"note": "x", "assignee": "别人"}, "未完成：该项：填写有误"), ("note", "未完成：该项")):
        forged = _act_payload("accept", "workorders", world["order_b"], {})
        forged["inputs"][0]["value"]["values"] = values
        answer = mine.post("/_dash-update-component", json=forged).get_data(as_text=True)
        assert said in answer, answer
    forged = _act_payload("accept", "workorders", world["order_b"], {"note": "x"})
    forged["state"][0]["value"] = ["not", "a", "point"]  # a selection that names no point: nothing done
    answer = mine.post("/_dash-update-component", json=forged)
    assert answer.status_code in (200, 204) and "officer-msg" not in answer.get_data(as_text=True)
    assert client.xlen("opsmap:workorders") == before


# --- screens -------------------------------------------------------------------------------------------


def _pair(server, engine) -> tuple:
    device, code = devices.add_screen(engine, "大屏一", STREET)
    web = server.test_client()
    page = web.get(f"/screen/pair/{code}").get_data(as_text=True)
    form = re.search(r'name="form" value="([^"]+)"', page).group(1)
    paired = web.post(f"/screen/pair/{code}", data={"form": form})
    assert paired.status_code == 303 and paired.headers["Location"] == "/screen"
    again = server.test_client().post(f"/screen/pair/{code}", data={"form": form})
    assert again.status_code in (401, 403)  # a pairing code works once
    return device, web


def _stream_bytes(web) -> bytes:
    """The change stream's first message from its beginning (every notice of the test, merged)."""
    got = web.get("/api/v1/stream?since=0-0", buffered=False)
    assert got.status_code == 200
    chunks, out = iter(got.response), b""
    for _ in range(2):  # "retry:", then the first message
        chunk = next(chunks)
        out += chunk if isinstance(chunk, bytes) else chunk.encode()
    got.close()
    return out


def test_acc006_a_paired_screen_receives_no_person_anywhere(world):
    server, engine = world["server"], world["engine"]
    device, screen = _pair(server, engine)
    reads = [f"/api/v1/layers/{layer}?street={STREET}" for layer in
             ("basemap", "boundaries", "compounds", "sites", "shops", "gates", "cases", "observations",
              "workorders", "alerts")] + [f"/api/v1/summary?street={STREET}", "/api/v1/feed?n=500",
                                          f"/api/v1/entities/gates/{world['gate'].id}"]
    seen = b"".join(screen.get(path).get_data() for path in reads) + _stream_bytes(screen)
    full = b"".join(world["commander"].get(path).get_data() for path in reads) + _stream_bytes(world["commander"])
    for secret in world["secrets"]:
        assert secret.encode() in full, f"the commander's answers should hold {secret} (else the test proves nothing)"
        assert secret.encode() not in seen, f"a screen received {secret}"
    assert world["mobile"].encode() not in full + seen  # the raw number typed into a description: masked for all
    assert f"居家观察外出：{world['gate'].name}".encode() in seen  # the banner says what and where
    assert screen.get(f"/api/v1/entities/observations/{world['obs_a'].id}").status_code == 403
    assert screen.get("/").status_code == 302 and screen.get("/officer").headers["Location"] == "/screen"
    devices.revoke_screen(engine, device.id)
    assert screen.get(f"/api/v1/summary?street={STREET}").status_code == 401


# --- signing in ------------------------------------------------------------------------------------------


def _form(web, path: str) -> str:
    return re.search(r'name="form" value="([^"]+)"', web.get(path).get_data(as_text=True)).group(1)


def test_acc007_password_sign_in_lockout_and_sign_out(world):
    server, engine = world["server"], world["engine"]
    name = f"pw-{dt.datetime.now().timestamp():.0f}"
    accounts.add_user(engine, name, [Role("viewer", STREET)], password="correct horse battery")
    web = server.test_client()
    form = _form(web, "/signin")
    wrong = [web.post("/signin", data={"form": form, "name": name, "password": f"nope{i}"}).status_code
             for i in range(3)]
    assert wrong == [401, 401, 401]
    locked = web.post("/signin", data={"form": form, "name": name, "password": "correct horse battery"})
    assert locked.status_code == 429 and "登录失败次数过多" in locked.get_data(as_text=True)
    assert int(locked.headers["Retry-After"]) > 0
    other = f"{name}-2"
    accounts.add_user(engine, other, [Role("viewer", STREET)], password="another good one")
    ok = web.post("/signin", data={"form": form, "name": other, "password": "another good one", "next": "//evil.com"})
    assert ok.status_code == 303 and ok.headers["Location"] == "/"  # no open redirect
    cookie = web.get_cookie(SESSION_COOKIE)
    assert cookie.http_only and cookie.same_site == "Lax"
    assert web.get(f"/api/v1/summary?street={STREET}").status_code == 200
    csrf = web.get_cookie(CSRF_COOKIE).value
    assert web.post("/signin/out", data={"csrf": csrf}, headers={"Origin": "http://evil.example"}).status_code == 403
    assert web.get(f"/api/v1/summary?street={STREET}").status_code == 200  # a cross-site sign-out did nothing
    web.post("/signin/out", data={"csrf": csrf})
    assert web.get(f"/api/v1/summary?street={STREET}").status_code == 401
    with session_factory(engine)() as s:
        lines = [(e.action, e.ok) for e in s.scalars(select(AuditEntry).where(
            AuditEntry.actor.in_([f"user:{name}", f"user:{other}"])).order_by(AuditEntry.id))]
    assert lines[:4] == [("signin", False)] * 3 + [("signin.locked", False)]
    assert ("signin", True) in lines and ("signout", True) in lines


def test_acc008_a_one_time_link_signs_in_once(world):
    server, engine = world["server"], world["engine"]
    name = f"link-{dt.datetime.now().timestamp():.0f}"
    accounts.add_user(engine, name, [Role("commander", STREET)])
    secret = accounts.issue_link(engine, name)
    web = server.test_client()
    form = _form(web, f"/signin/link/{secret}")
    first = web.post(f"/signin/link/{secret}", data={"form": form})
    assert first.status_code == 303 and first.headers["Location"] == "/signin/password"
    second = server.test_client()
    form2 = _form(second, f"/signin/link/{secret}")
    assert second.post(f"/signin/link/{secret}", data={"form": form2}).status_code == 401
    assert web.get(f"/api/v1/summary?street={STREET}").status_code == 200
    accounts.set_disabled(engine, name)  # disabling ends the session at once
    assert web.get(f"/api/v1/summary?street={STREET}").status_code == 401


def test_acc009_single_sign_on_against_a_real_openid_provider(loaded, redis_url, client, tmp_path):
    import httpx
    import oidc_provider_mock

    engine, _ = loaded
    with oidc_provider_mock.run_server_in_thread() as provider:
        issuer = f"http://localhost:{provider.server_port}"
        cfg = config_for(tmp_path, engine, OPSMAP_OIDC_ISSUER=issuer, OPSMAP_OIDC_CLIENT_ID="opsmap",
                         OPSMAP_OIDC_CLIENT_SECRET="s3cret")
        server = create_app(cfg, redis_url).server
        sub = f"alice-{dt.datetime.now().timestamp():.0f}"
        for who, roles in ((sub, ["officer:S194-J03"]), (sub + "-none", [])):
            put = httpx.put(f"{issuer}/users/{quote(who)}", json={"name": "Alice 李", "opsmap_roles": roles})
            assert put.status_code == 204
        web = server.test_client()
        assert "统一身份认证登录" in web.get("/signin").get_data(as_text=True)
        start = web.get("/signin/sso?next=/officer")
        assert start.status_code == 302 and start.headers["Location"].startswith(issuer)
        back = httpx.post(start.headers["Location"], data={"sub": sub})
        done = web.get(back.headers["Location"].removeprefix("http://localhost"))
        assert done.status_code == 303 and done.headers["Location"] == "/officer"
        assert web.get(f"/api/v1/summary?street={STREET}").status_code == 200
        with session_factory(engine)() as s:
            account = s.scalar(select(accounts.Account).where(accounts.Account.oidc_subject == f"{issuer}|{sub}"))
            assert [(g.role, g.committee_id) for g in account.grants] == [("officer", "S194-J03")]
        nobody = server.test_client()
        start = nobody.get("/signin/sso")
        back = httpx.post(start.headers["Location"], data={"sub": sub + "-none"})
        refused = nobody.get(urlsplit(back.headers["Location"]).path + "?" + urlsplit(back.headers["Location"]).query)
        assert refused.status_code == 403 and "没有 opsmap 角色" in refused.get_data(as_text=True)
        assert nobody.get(f"/api/v1/summary?street={STREET}").status_code == 401


def test_acc010_the_audit_trail_prints_by_command(world, tmp_path):
    engine = world["engine"]
    name = f"aud-{dt.datetime.now().timestamp():.0f}"
    audit.record(engine, f"user:{name}", "export.pdf", "briefing:S194:2022-04-10", True, "127.0.0.1")
    env = {"DATABASE_URL": engine.url.render_as_string(hide_password=False), "OPSMAP_VAR_DIR": str(tmp_path),
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, str(PROJECT_ROOT / "app.py"), "audit", "--user", name],
                         env=env, capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().split("\t")[1:5] == [f"user:{name}", "export.pdf", "briefing:S194:2022-04-10", "ok"]


def _layout_page(web, referer: str | None) -> tuple[object, object]:
    """What Dash's first layout holds for the renderer's request: the page div's children and page-opened."""
    found: dict[str, object] = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            props = node.get("props", {})
            if props.get("id") in ("page", "page-opened"):
                found[props["id"]] = props.get("children") if props["id"] == "page" else props.get("data")
            walk(props.get("children"))
        elif isinstance(node, list):
            for item in node:
                walk(item)

    answer = web.get("/_dash-layout", headers={"Referer": referer} if referer else {})
    assert answer.status_code == 200
    walk(answer.get_json())
    return found["page"], found["page-opened"]


def test_acc011_the_first_layout_holds_the_page_it_names_through_the_same_check(world):
    """The renderer's layout request names its page (Referer, same origin): the layout then holds
    that page, asked of the access check as the routing callback asks; a missing or foreign
    Referer gets the empty shell the routing callback fills."""
    commander, host = world["commander"], "http://localhost"
    page, opened = _layout_page(commander, f"{host}/")
    assert opened == "/" and "map-map" in json.dumps(page)
    page, opened = _layout_page(commander, f"{host}/officer?order=x")
    assert opened == "/officer" and "officer-list" in json.dumps(page)
    for referer in (None, "http://elsewhere.example/", "not a url"):
        assert _layout_page(commander, referer) == (None, None), referer
    _, screen = _pair(world["server"], world["engine"])
    page, _ = _layout_page(screen, f"{host}/")  # a screen names the map: refused as the route refuses it
    assert "map-map" not in json.dumps(page) and "无权打开此页面" in json.dumps(page, ensure_ascii=False)
    page, _ = _layout_page(screen, f"{host}/screen")
    assert "map-map" not in json.dumps(page) and "screen" in json.dumps(page)


def _with_id(node: object, wanted: str) -> dict:
    """The props of the component ``wanted`` in a Dash layout (JSON)."""
    if isinstance(node, dict):
        props = node.get("props", {})
        if props.get("id") == wanted:
            return props
        node = props.get("children")
    for item in node if isinstance(node, list) else [node] if isinstance(node, dict) else []:
        found = _with_id(item, wanted)
        if found:
            return found
    return {}


def test_acc012_the_map_opens_with_its_panels_and_without_redis(world, loaded):
    """The map page's first layout holds its numbers, work, feed, compounds and clock (no callback
    round trip before them); with Redis unreachable it still opens: the numbers come from SQL,
    the feed is empty and the clock says there is no live data."""
    _, data = loaded
    page, _ = _layout_page(world["commander"], "http://localhost/")
    panels = _with_id(page, "map-panels")["data"]  # drawn into their slots by assets/panels.js
    cases_panel = json.dumps(panels["panel-cases-slot"], ensure_ascii=False)
    assert "疫情发展" in cases_panel and "今日新增" in cases_panel
    assert "重要工作" in json.dumps(panels["panel-work-slot"], ensure_ascii=False)
    assert "feed-item" in json.dumps(panels["panel-feed-slot"])
    assert len(_with_id(page, "map-compound")["options"]) == len(data.compounds) > 100
    assert re.fullmatch(r"\d\d:\d\d:\d\d", _with_id(page, "map-clock")["children"])
    assert _with_id(page, "map-title")["children"].endswith("战疫图")

    cut_off = signed_in(create_app(world["cfg"], "redis://127.0.0.1:1/0").server)
    cut_off.get("/healthz")  # Dash's set-up on its first request builds a layout outside any request's actor
    page, _ = _layout_page(cut_off, "http://localhost/")
    panels = _with_id(page, "map-panels")["data"]
    assert "疫情发展" in json.dumps(panels["panel-cases-slot"], ensure_ascii=False)
    assert "暂无" in json.dumps(panels["panel-feed-slot"], ensure_ascii=False)
    assert _with_id(page, "map-staleness")["children"] == "无实时数据"
