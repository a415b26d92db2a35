"""sum: the panel numbers at a moment, and the read API that serves them and the drill-downs."""

from __future__ import annotations

import datetime as dt
import json
import time
from urllib.parse import quote

import pandas as pd
import pytest
import redis

from dashboard.app import create_app
from data.domain import deadlines
from data.read.summary import DAILY, official, summary
from data.settings import load
from data.store import session_factory
from tests.conftest import DATASETS, KEY, config_for, signed_in


@pytest.fixture
def api(scenario, redis_url, tmp_path):
    engine = scenario["engine"]
    cfg = config_for(tmp_path, engine)
    return signed_in(create_app(cfg, redis_url).server)


def test_sum001_street_numbers_follow_the_scenario(scenario):
    scn = scenario
    cfg = load(environ={})
    with session_factory(scn["engine"])() as s:
        got = summary(s, scn["data"].street.id, scn["at"](15), DATASETS, deadlines.of(cfg))
        before = summary(s, scn["data"].street.id, scn["at"](-1), DATASETS, deadlines.of(cfg))
    street = got["cases"]["street"]
    assert street["confirmed"]["new"] - before["cases"]["street"]["confirmed"]["new"] == 1
    assert got["facilities"]["gates"]["closed"] == before["facilities"]["gates"]["closed"] + 1
    assert got["facilities"]["shops"]["checked_today"] == 1
    assert got["alerts_24h"].get("fever", 0) >= 1 and got["alerts_24h"].get("closed_gate_scan", 0) >= 1
    assert got["work_orders"]["overdue"] >= 1 and got["work_orders"]["by_state"].get("created", 0) >= 1
    assert got["work"]["key_person_visit"]["target"] >= 2  # two people under observation
    assert got["work"]["screening"]["target"] == sum(c.households for c in scn["data"].compounds)
    assert got["tiers"]["sealed"] >= 1
    assert got["cases"]["district"] is None and got["cases"]["city"] is None  # 2031: outside the 2022 data


def test_sum002_district_and_city_come_from_the_official_daily_counts():
    df = pd.read_csv(DATASETS / DAILY)
    day = dt.date(2022, 4, 10)
    rows = df[(df.region == "黄浦区") & (pd.to_datetime(df.date).dt.date <= day)]
    got = official(DATASETS, "黄浦区", day)
    assert got["confirmed"]["total"] == rows.confirm.sum()
    assert got["asymptomatic"]["new"] == rows[rows.date == "2022-04-10"].wzz.sum()
    city = official(DATASETS, "上海市", day)
    assert city["confirmed"]["total"] > got["confirmed"]["total"]
    assert official(DATASETS, "黄浦区", dt.date(2023, 1, 1)) is None


def test_sum003_read_api(api, scenario):
    scn = scenario
    street, at = scn["data"].street.id, quote(scn["at"](6).isoformat())
    fc = api.get(f"/api/v1/layers/alerts?street={street}&as_of={at}").get_json()
    assert sorted(f["properties"]["kind"] for f in fc["features"]) == ["closed_gate_scan", "fever"]
    gate = api.get(f"/api/v1/entities/gates/{scn['gate'].id}?as_of={at}").get_json()
    assert gate["history"][0]["status"] == "closed" and gate["status"] == "closed"
    before = api.get(f"/api/v1/entities/gates/{scn['gate'].id}?as_of={quote(scn['at'](0).isoformat())}").get_json()
    assert before["status"] == "open" and before["history"][0]["status"] == "open"  # the drill-down of that moment
    assert api.get("/api/v1/entities/gates/nope").status_code == 404
    assert api.get("/api/v1/entities/nope/x").status_code == 404
    numbers = api.get(f"/api/v1/summary?street={street}&as_of={at}").get_json()
    assert numbers["street"]["name"] == "南京东路" and numbers["as_of"] == scn["at"](6).isoformat()
    unencoded = api.get(f"/api/v1/summary?street={street}&as_of={scn['at'](6).isoformat()}").get_json()
    assert unencoded["as_of"] == numbers["as_of"]
    assert api.get("/api/v1/summary").status_code == 400
    assert api.get("/api/v1/summary?street=S999").status_code == 403  # not one of the reader's streets
    assert api.get(f"/api/v1/layers/gates?street={street}&as_of=soon").status_code == 400


def test_sum004_layer_responses_are_cacheable(api, scenario):
    street = scenario["data"].street.id
    first = api.get(f"/api/v1/layers/gates?street={street}")
    assert first.status_code == 200 and first.headers["ETag"]
    again = api.get(f"/api/v1/layers/gates?street={street}", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    past = api.get(f"/api/v1/layers/gates?street={street}&as_of=2022-04-10T08:00:00%2B08:00")
    assert "max-age=3600" in past.headers["Cache-Control"]


def test_sum005_large_layers_are_gzipped_for_clients_that_accept_it(api, scenario):
    import gzip

    street = scenario["data"].street.id
    plain = api.get(f"/api/v1/layers/gates?street={street}")
    packed = api.get(f"/api/v1/layers/gates?street={street}", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in plain.headers and packed.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(packed.data)) == plain.get_json()
    assert len(packed.data) < len(plain.data) / 3


def test_sum006_a_cached_live_answer_changes_when_ingest_applies_a_batch(api, scenario, redis_url):
    import json as _json

    from data.pipeline import streams
    from data.pipeline.ingest import Worker
    from tests.conftest import person_id

    scn = scenario
    street = scn["data"].street.id
    client = redis.Redis.from_url(redis_url)
    first = api.get(f"/api/v1/summary?street={street}").get_json()
    assert api.get(f"/api/v1/summary?street={street}").get_json() == first  # served from the cache
    before = first["cases"]["street"]["confirmed"]["total"]
    streams.append(client, "cases", [_json.dumps({"event_id": f"sum006-{dt.datetime.now().timestamp()}",
                                                  "ts": dt.datetime.now(dt.UTC).isoformat(), "person_id": person_id(9),
                                                  "category": "confirmed", "compound_id": scn["c1"].id})])
    cfg = load(environ={"OPSMAP_HMAC_KEY": KEY})
    Worker(scn["engine"], client, cfg, consumer="sum006").step(block_ms=100)
    deadline = time.monotonic() + 3  # a live answer is at most a second behind the data
    while api.get(f"/api/v1/summary?street={street}").get_json()["cases"]["street"]["confirmed"]["total"] == before:
        assert time.monotonic() < deadline, "the summary did not follow the new case"
        time.sleep(0.1)
    after = api.get(f"/api/v1/summary?street={street}").get_json()
    assert after["cases"]["street"]["confirmed"]["total"] == before + 1


def test_sum007_change_stream_resumes_after_the_id_a_page_last_saw(api, client):
    from data.pipeline import streams

    since = streams.changes_top(client)
    plan = streams.Plan(False, ())
    for n, stream in enumerate(("cases", "facilities")):
        streams.announce(plan, {"applied": 1, "dead": 0, "streams": [stream], "kinds": ["gate"] * n,
                                "version": n, "urgent": [{"text": f"u{n}"}], "at": 0})
    plan.send(client)()
    top = streams.changes_top(client)
    response = api.get(f"/api/v1/stream?since={since}", buffered=False)
    chunks = iter(response.response)
    assert next(chunks).startswith(b"retry:")
    message = next(chunks).decode()  # both notices sent after ``since``, merged into one message
    response.close()
    assert message.startswith(f"id: {top}\ndata: ")
    merged = json.loads(message.split("data: ", 1)[1])
    assert merged["streams"] == ["cases", "facilities"] and [u["text"] for u in merged["urgent"]] == ["u0", "u1"]
    assert merged["applied"] == 2 and merged["version"] == 1
    assert merged["layers"] == ["compounds", "gates", "cases", "observations"]  # what a page re-asks, drawing order


def test_sum010_a_change_stream_outlives_quiet_seconds(api, client):
    """redis-py's default socket timeout (5 s) once ended the stream after 5 quiet seconds."""
    import threading

    from data.pipeline import streams

    response = api.get(f"/api/v1/stream?since={streams.changes_top(client)}", buffered=False)
    chunks = iter(response.response)
    assert next(chunks).startswith(b"retry:")
    notice = {"applied": 1, "dead": 0, "streams": ["cases"], "kinds": [], "version": 1, "urgent": [], "at": 0}
    later = threading.Timer(7, lambda: streams.announce(plan := streams.Plan(False, ()), notice) or plan.send(client)())
    later.start()
    try:
        message = next(chunks).decode()  # blocks in XREAD for 7 s
    finally:
        later.cancel()
        response.close()
    assert json.loads(message.split("data: ", 1)[1])["layers"] == ["compounds", "cases", "observations"]


def test_sum008_a_page_that_names_its_version_receives_only_the_changed_features(api, scenario, redis_url):
    from data.pipeline import streams
    from data.pipeline.ingest import Worker

    scn = scenario
    street, gate = scn["data"].street.id, scn["data"].gates[41]
    url = f"/api/v1/layers/gates?street={street}"
    first = api.get(url)
    v1 = first.headers["X-Opsmap-Version"]
    assert first.headers["ETag"].strip('"') == v1
    assert api.get(f"{url}&base=unknown").get_json() == first.get_json()  # a version not known here: whole
    same = api.get(f"{url}&base={v1}")
    assert same.get_json() == {"type": "Patch", "base": v1, "version": v1, "upsert": [], "remove": []}
    assert "no-store" in same.headers["Cache-Control"]
    assert api.get(f"{url}&v=1000000000").status_code == 200  # a forged version must not pin the answer

    client = redis.Redis.from_url(redis_url)
    status = "restricted" if next(f for f in first.get_json()["features"]
                                  if f["id"] == gate.id)["properties"]["kind"] != "restricted" else "open"
    streams.append(client, "facilities", [json.dumps({
        "event_id": f"sum008-{time.time()}", "ts": dt.datetime.now(dt.UTC).isoformat(), "facility_id": gate.id,
        "status": status, "guards_on_duty": 2, "reporter": "巡查"})])
    cfg = load(environ={"OPSMAP_HMAC_KEY": KEY})
    Worker(scn["engine"], client, cfg, consumer="sum008").step(block_ms=100)
    version = int(client.get("opsmap:version"))
    patch = api.get(f"{url}&base={v1}&v={version}").get_json()
    whole = api.get(f"{url}&v={version}")
    assert patch["base"] == v1 and patch["version"] == whole.headers["X-Opsmap-Version"] != v1
    assert [f["id"] for f in patch["upsert"]] == [gate.id] and patch["remove"] == []
    assert patch["upsert"][0]["properties"]["kind"] == status
    merged = {f["id"]: f for f in first.get_json()["features"]} | {f["id"]: f for f in patch["upsert"]}
    assert merged == {f["id"]: f for f in whole.get_json()["features"]}  # base + patch = the new version


def test_sum009_a_patch_names_features_that_went_away():
    from dashboard.answers import Encoded

    def fc(*features: tuple[str, str]) -> dict:
        return {"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": i, "geometry": {"type": "Point", "coordinates": [121.48, 31.23]},
             "properties": {"id": i, "kind": kind}} for i, kind in features]}

    old, new = Encoded.of(fc(("a", "open"), ("b", "open"), ("c", "open"))), Encoded.of(fc(("a", "open"), ("c", "x")))
    assert json.loads(new.body) == fc(("a", "open"), ("c", "x"))
    patch = json.loads(new.patch(old.etag).body)
    assert [f["id"] for f in patch["upsert"]] == ["c"] and patch["remove"] == ["b"]
    assert new.patch("never-seen") is None
    no_ids = Encoded.of({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": None,
                                                                   "properties": {}}]})
    assert no_ids.parts is None and no_ids.patch(old.etag) is None  # without ids: always whole
    # but from its own version, any answer patches to nothing (a page that opened on it is current)
    for same in (no_ids, new):
        nothing = json.loads(same.patch(same.etag).body)
        assert nothing == {"type": "Patch", "base": same.etag, "version": same.etag, "upsert": [], "remove": []}


def test_sum011_no_figure_above_its_target_without_saying_why_and_positives_by_that_name(scenario):
    """重点人员 is a daily round: today's visits against the persons under observation now (all
    visits ever against today's persons read 285 / 134); a figure above its target says why; the
    big screen's headline counts 阳性感染者 (the 2022 lists' category and confirmed alike)."""
    from dash import html

    from dashboard import components

    scn = scenario
    with session_factory(scn["engine"])() as s:
        got = summary(s, scn["data"].street.id, scn["at"](15), DATASETS, deadlines.of(load(environ={})))
    visits = got["work"]["key_person_visit"]
    assert visits["daily"] and visits["total"] == visits["new"]

    def text(node) -> str:
        if isinstance(node, str | int):
            return str(node)
        children = getattr(node, "children", None)
        children = children if isinstance(children, list) else [children] if children is not None else []
        return "".join(text(c) for c in children)

    over = got | {"work": got["work"] | {"key_person_visit": visits | {"new": visits["target"] + 3,
                                                                       "total": visits["target"] + 3}}}
    panel = text(components.work_panel(over))
    assert f"重点人员 今日{visits['target'] + 3:,} / {visits['target']:,} 人" in panel
    assert "超出目标 3：同一人当日多次走访" in panel
    assert "超出目标" not in text(components.work_panel(got))
    street = got["cases"]["street"]
    figures = [text(f) for f in components.headline(got)]
    assert figures[0] == f"{street['positive']['new'] + street['confirmed']['new']}今日新增阳性"
    assert isinstance(components.headline(got)[0], html.Div)
