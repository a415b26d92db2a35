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
from data.settings import load
from data.store import session_factory
from data.summary import DAILY, official, summary
from layers.base import sla_of
from tests.conftest import DATASETS


@pytest.fixture
def api(scenario, redis_url, tmp_path):
    engine = scenario["engine"]
    cfg = load(environ={"OPSMAP_VAR_DIR": str(tmp_path), "OPSMAP_HMAC_KEY": "test-hmac-key-0123456789abcdef",
                        "DATABASE_URL": engine.url.render_as_string(hide_password=False)})
    return create_app(cfg, redis_url).server.test_client()


def test_sum001_street_numbers_follow_the_scenario(scenario):
    scn = scenario
    cfg = load(environ={})
    with session_factory(scn["engine"])() as s:
        got = summary(s, scn["data"].street.id, scn["at"](15), DATASETS, sla_of(cfg))
        before = summary(s, scn["data"].street.id, scn["at"](-1), DATASETS, sla_of(cfg))
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
    assert api.get("/api/v1/summary?street=S999").status_code == 404
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

    from data import streams
    from data.ingest import Worker
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
    cfg = load(environ={"OPSMAP_HMAC_KEY": "test-hmac-key-0123456789abcdef"})
    Worker(scn["engine"], client, cfg, consumer="sum006").step(block_ms=100)
    deadline = time.monotonic() + 3  # a live answer is at most a second behind the data
    while api.get(f"/api/v1/summary?street={street}").get_json()["cases"]["street"]["confirmed"]["total"] == before:
        assert time.monotonic() < deadline, "the summary did not follow the new case"
        time.sleep(0.1)
    after = api.get(f"/api/v1/summary?street={street}").get_json()
    assert after["cases"]["street"]["confirmed"]["total"] == before + 1


def test_sum007_change_stream_resumes_after_the_id_a_page_last_saw(api, client):
    from data import streams

    since = streams.changes_top(client)
    pipe = client.pipeline()
    for n, stream in enumerate(("cases", "facilities")):
        streams.announce(pipe, {"applied": 1, "dead": 0, "streams": [stream], "kinds": [], "version": n,
                                "urgent": [{"text": f"u{n}"}], "at": 0})
    pipe.execute()
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
