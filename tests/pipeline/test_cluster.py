"""clu: opsmap on a real Redis Cluster (three masters): REDIS_URL naming one node is enough;
ingest reads stream by stream, writes one atomic step per hash slot, and a crash between
two slots' steps neither loses nor doubles anything."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import time

import pytest
import redis
from sqlalchemy import select

from dashboard.app import create_app
from data.models import Case, CheckIn
from data.pipeline import streams
from data.pipeline.dead import iter_dead
from data.pipeline.events import public_alert
from data.pipeline.ingest import Worker, pending_total
from data.read import cache
from data.retention import anonymise_feed
from layers import cases
from tests.conftest import config_for, person_id, signed_in
from tests.ingesting import INGEST, at, checkin, count, drain, tag, worker_env

DAY = "2022-04-10"  # the day of tests.pipeline.test_ingest's events


def a_case(eid: str, compound: str) -> str:
    return json.dumps({"event_id": eid, "ts": dt.datetime.now(dt.UTC).isoformat(), "person_id": person_id(4242),
                       "category": "confirmed", "compound_id": compound})


def test_clu001_ingest_through_a_cluster_keeps_every_effect(loaded, cluster, cluster_url, config):
    engine, data = loaded
    client = streams.connect(cluster_url)
    assert streams.is_cluster(client)  # found out from the node the URL names
    t, gate = tag(), data.gates[2].id
    streams.append(client, "checkins", [checkin(f"{t}-{i}", gate, person_id(i)) for i in range(20)]
                   + [checkin(f"{t}-fever", gate, person_id(99), temperature=38.6)])
    streams.append(client, "cases", [a_case(f"{t}-case", data.compounds[9].id)])
    streams.append(client, "work", ["not json"])
    since = streams.changes_top(client)
    drain(Worker(engine, client, config, consumer=f"clu-{t}"), client)

    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) == 21
    assert int(client.hget(f"{{opsmap:checkins}}:count:{DAY}", f"gate:{gate}:in")) == 21
    assert int(client.hget(f"{{opsmap:alerts}}:count:{DAY}", "alert:fever")) == 1  # another slot's step
    kinds = [item["kind"] for item in streams.feed(client, 100)]
    assert kinds.count("alert:fever") == 1 and "case:confirmed" in kinds
    dead = list(iter_dead(client))
    assert [d["stream"] for d in dead] == ["opsmap:work"] and "event" in dead[0]["reason"]
    notices = [n for _, n in streams.changes_since(client, since, 100)]
    assert {"checkins", "cases", "alerts"} <= {s for n in notices for s in n["streams"]}
    with loaded[0].connect() as conn:
        case_id = conn.execute(select(Case.id).where(Case.event_id == f"{t}-case")).scalar_one()
    assert case_id in cache.added_since(client, 0, cache.data_version(client, cases.changed_by), "case")


def test_clu005_retention_rewrites_the_feed_on_a_cluster_too(loaded, cluster, cluster_url, config):
    engine, data = loaded
    client = streams.connect(cluster_url)
    t, gate = tag(), data.gates[3]
    old = dt.datetime(2000, 1, 5, 9, tzinfo=dt.UTC)  # before the cut-off below
    streams.append(client, "checkins", [checkin(f"{t}-fever", gate.id, person_id(98), temperature=38.6,
                                                ts=old.isoformat())])
    drain(Worker(engine, client, config, consumer=f"clu-{t}"), client)
    fever = [i for i in streams.feed(client, 100) if i["kind"] == "alert:fever"]
    assert len(fever) == 1 and "*" in fever[0]["text"]  # names the person, masked

    assert anonymise_feed(client, dt.datetime(2001, 1, 1, tzinfo=dt.UTC)) == 1
    fever = [i for i in streams.feed(client, 100) if i["kind"] == "alert:fever"]
    assert [i["text"] for i in fever] == [public_alert("fever", gate.name)]


class CrashingCluster(redis.RedisCluster):
    """A worker's client that dies after the first slot's step of a batch."""

    def eval(self, script, numkeys, *keys_and_args):
        if script == streams._APPLY:
            self.steps = getattr(self, "steps", 0) + 1
            if self.steps == 2:
                raise SystemExit("killed between two slots' steps")
        return super().eval(script, numkeys, *keys_and_args)


def test_clu002_a_crash_between_two_slots_steps_repeats_nothing(loaded, cluster, cluster_url, config):
    engine, data = loaded
    t, gate = tag(), data.gates[3].id
    client = streams.connect(cluster_url)
    streams.append(client, "checkins", [checkin(f"{t}-{i}", gate, person_id(i)) for i in range(10)]
                   + [checkin(f"{t}-fever", gate, person_id(98), temperature=39.0)])
    with pytest.raises(SystemExit):
        Worker(engine, CrashingCluster.from_url(cluster_url), config, consumer="doomed").step(block_ms=10)
    # the alert's step was done (guarded by its entry's marker), the check-ins' step was not
    assert int(client.hget(f"{{opsmap:alerts}}:count:{DAY}", "alert:fever")) == 1
    assert client.hget(f"{{opsmap:checkins}}:count:{DAY}", f"gate:{gate}:in") is None
    assert streams.lag(client)["checkins"]["pending"] == 11
    time.sleep(0.6)  # past OPSMAP_INGEST_CLAIM_IDLE_MS
    drain(Worker(engine, client, config, consumer="rescuer"), client)
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) == 11
    assert int(client.hget(f"{{opsmap:checkins}}:count:{DAY}", f"gate:{gate}:in")) == 11
    assert int(client.hget(f"{{opsmap:alerts}}:count:{DAY}", "alert:fever")) == 1  # not twice
    assert [item["kind"] for item in streams.feed(client, 100)].count("alert:fever") == 1


def test_clu003_the_app_on_a_cluster(loaded, cluster, cluster_url, config, tmp_path):
    engine, data = loaded
    cfg = config_for(tmp_path, engine)
    web = signed_in(create_app(cfg, cluster_url).server)
    health = web.get("/healthz")
    assert health.status_code == 200 and health.get_json()["redis"] == "ok"
    t, street = tag(), data.street.id
    before = web.get(f"/api/v1/layers/cases?street={street}")
    posted = web.post("/api/v1/events/cases", json=json.loads(a_case(f"{t}-case", data.compounds[11].id)))
    assert posted.status_code == 202
    client = streams.connect(cluster_url)
    since = streams.changes_top(client)
    drain(Worker(engine, client, config, consumer=f"clu-{t}"), client)
    notice = streams.changes_since(client, since, 1000)[-1][1]
    sse = web.get(f"/api/v1/stream?since={since}", buffered=False)
    chunks = iter(sse.response)
    assert next(chunks).startswith(b"retry:")
    assert json.loads(next(chunks).decode().split("data: ", 1)[1])["layers"] == ["compounds", "cases",
                                                                               "observations"]
    sse.close()
    patch = web.get(f"/api/v1/layers/cases?street={street}&base={before.headers['X-Opsmap-Version']}"
                    f"&v={notice['version']}").get_json()
    assert patch["type"] == "Patch" and [f["properties"]["name"] for f in patch["upsert"]] == [
        f"确诊 · {data.compounds[11].address}"]
    assert any(data.compounds[11].name in item["text"] for item in web.get("/api/v1/feed").get_json())
    assert web.get("/healthz").get_json()["ingest"] == {"lag": 0, "pending": 0, "dead": 0, "waiting": []}


def test_clu004_two_ingest_processes_share_a_cluster_and_one_is_killed(loaded, cluster, cluster_url, tmp_path):
    engine, data = loaded
    t, gates = tag(), [g.id for g in data.gates[:20]]
    env = worker_env(engine, cluster_url, tmp_path, OPSMAP_INGEST_BATCH="200")
    client = streams.connect(cluster_url)
    streams.ensure_group(client)
    workers = [subprocess.Popen([*INGEST, "--consumer", name], env=env) for name in ("one", "two")]
    try:  # a failed assertion must not leave a worker behind
        events = [checkin(f"{t}-{i}", gates[i % 20], person_id(i), ts=at(i / 1000)) for i in range(6000)]
        for i in range(0, 6000, 500):
            streams.append(client, "checkins", events[i:i + 500])
            streams.append(client, "cases", [a_case(f"{t}-case-{i}", data.compounds[i // 500].id)])
        deadline = time.monotonic() + 120
        while count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) < 1000:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        workers[0].send_signal(signal.SIGKILL)  # mid-stream, its pending entries to be claimed
        while pending_total(client) > 0:
            assert workers[1].poll() is None and time.monotonic() < deadline, streams.lag(client)
            time.sleep(0.2)
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert count(engine, CheckIn, CheckIn.event_id.like(f"{t}-%")) == 6000
    assert count(engine, Case, Case.event_id.like(f"{t}-case-%")) == 12
    total = sum(int(v) for k, v in client.hgetall(f"{{opsmap:checkins}}:count:{DAY}").items()
                if k.startswith(b"gate:"))
    assert total == 6000  # aggregates exactly once too
